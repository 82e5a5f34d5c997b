"""Benchmark the release commands a person runs in an incident, and what clients see meanwhile.

Deploys the newest Bento of the store (``make bento``) twice on free ports in a temporary state
directory, so that both colours run (one live, one in its rollback window). Then times each
command end to end as a user starts it (a new process: interpreter, imports, config, the
switch, its confirmation), first on an idle machine, then while load harnesses run through the
router (`tests/deploy/load.py`: ``--clients`` keep-alive clients and as many opening a new
connection per request, on the same 2 cores):

- ``traffic-forecast rollback`` (``--rollbacks`` times: each goes back to the other colour) and
  the same through ``make rollback``;
- ``traffic-forecast status``.

Prints each time, the medians and maxima against the targets (rollback <= 1.5 s, status <=
1 s; met or MISSED) in each phase, and the requests and failures of each client mode. Stops
everything it started. Exits 0 with the figures, whatever they are; non-zero only when a
deploy failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the load harness the tests use

from tests.deploy.load import Loads  # noqa: E402

from serve import free_port  # noqa: E402  # the serving benchmark's, beside this script

TF = str(Path(sys.executable).parent / "traffic-forecast")
TARGETS = {"rollback": 1.5, "make rollback": 1.5, "status": 1.0}


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> int:
    """Deploy twice, then time rollbacks and status under load; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=6)
    parser.add_argument("--statuses", type=int, default=6)
    parser.add_argument("--clients", type=int, default=2, help="per mode, under load")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="release-bench-"))
    router = free_port()
    overrides = [
        f"deploy.state_dir={work}",
        f"deploy.router_port={router}",
        f"deploy.blue_port={free_port()}",
        f"deploy.green_port={free_port()}",
    ]
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "BENTOML_DO_NOT_TRACK": "True",
        "ITERATIVE_DO_NOT_TRACK": "1",
    }
    env.pop("TRAFFIC_FORECAST_DEPLOY_DIR", None)  # the state directory is this benchmark's own
    env.setdefault("BENTOML_HOME", str(ROOT / ".bentoml"))  # the project's store, as make sets
    times: dict[tuple[str, str], list[float]] = {}

    def phase(name: str) -> None:
        for turn in range(args.rollbacks):
            command = (
                ["make", "--no-print-directory", "rollback", f"ARGS={' '.join(overrides)}"]
                if turn % 2
                else [TF, "rollback", *overrides]
            )
            label = "make rollback" if turn % 2 else "rollback"
            times.setdefault((name, label), []).append(_timed(command, env))
        for _ in range(args.statuses):
            times.setdefault((name, "status"), []).append(_timed([TF, "status", *overrides], env))
        for (when, label), runs in times.items():
            if when == name:
                print(f"{name}, {label}: " + " ".join(f"{s:.2f}" for s in runs) + " s", flush=True)

    try:
        for colour in ("blue", "green"):
            seconds = _timed([TF, "deploy", "latest", *overrides], env)
            print(f"deploy to {colour}: {seconds:.1f} s", flush=True)
        phase("idle")
        url = f"http://127.0.0.1:{router}/forecast"
        with Loads(url, concurrency=args.clients) as loads:
            phase("under load")
        print(f"\nclients through {args.rollbacks} rollbacks: {loads.summary()}")
    finally:
        subprocess.run([TF, "undeploy", *overrides], cwd=ROOT, env=env, check=False)
    print(f"\n{'':<11} {'command':<14} {'runs':>4} {'median':>8} {'max':>8}  target")
    for (when, label), runs in times.items():
        median, worst, limit = statistics.median(runs), max(runs), TARGETS[label]
        verdict = "met" if worst <= limit else "MISSED"
        print(
            f"{when:<11} {label:<14} {len(runs):>4} {median:>7.2f}s {worst:>7.2f}s  "
            f"<= {limit:g} s {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
