"""Benchmark what an experiment costs the clients: the router's arms, split and shadow.

Deploys the newest Bento of the store (``make bento``) on free ports in a temporary state
directory, then runs the load harness the deploy tests use (`tests/deploy/load.py`: keep-alive
clients and as many opening a new connection per request, each request naming one of 1,000
clients by X-Client-Id) through the router for ``--seconds`` in each phase:

- no experiment (the champion alone);
- ``shadow``: the same Bento as the challenger, sent a copy of every request;
- ``split`` (50 %): the challenger answers half the clients.

Prints requests per second, p50 and p99 latency and failures per phase and client mode, and
stops everything it started. Exits 0 with the figures, whatever they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the load harness the tests use

from tests.deploy.load import Loads  # noqa: E402

from serve import free_port  # noqa: E402  # the serving benchmark's, beside this script
from traffic_forecast.core.config import Config  # noqa: E402
from traffic_forecast.core.settings import load_config  # noqa: E402
from traffic_forecast.deploy import rollout  # noqa: E402
from traffic_forecast.deploy.cli import bento_tag  # noqa: E402
from traffic_forecast.experiment import run  # noqa: E402

CLIENTS = 1_000


def _phase(name: str, cfg: Config, seconds: float) -> None:
    url = f"http://{cfg.deploy.host}:{cfg.deploy.router_port}/forecast"
    with Loads(url, clients=CLIENTS) as loads:
        time.sleep(seconds)
    for mode, load in loads.by_mode.items():
        answers = [a for a in load.answers if a.status == 200]
        took = sorted(1000 * (a.done - a.sent) for a in answers)
        p99 = took[int(0.99 * (len(took) - 1))] if took else float("nan")
        print(
            f"  {name:14} {mode:10} {len(answers) / seconds:8.0f} req/s  "
            f"p50 {statistics.median(took) if took else float('nan'):6.1f} ms  "
            f"p99 {p99:6.1f} ms  failed {len(load.failures)}"
        )


def main() -> int:
    """Run the three phases and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="load per phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="experiment-routing-") as scratch:
        base = load_config([])
        deploy = dataclasses.replace(
            base.deploy,
            state_dir=str(Path(scratch) / "state"),
            router_port=free_port(),
            blue_port=free_port(),
            green_port=free_port(),
        )
        cfg = dataclasses.replace(base, deploy=deploy)
        bento = bento_tag("latest", cfg)
        try:
            rollout.deploy(bento, cfg)
            print(f"{bento}, {CLIENTS} clients, {args.seconds:g} s a phase (2 clients a mode):")
            _phase("no experiment", cfg, args.seconds)
            for mode in ("shadow", "split"):
                settings = dataclasses.replace(cfg.experiment, mode=mode, share=0.5)
                run.start(bento, dataclasses.replace(cfg, experiment=settings))
                _phase(f"{mode}" + (" 50 %" if mode == "split" else ""), cfg, args.seconds)
                run.stop(cfg)
        finally:
            rollout.stop_all(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
