"""``traffic-forecast deploy|rollback|status|verify|undeploy|gate-check``: the blue/green commands.

Settings come from ``conf/deploy/`` (through ``conf/ops.yaml``) plus Hydra overrides after the
command (``make deploy ARGS="deploy.router_port=9080"``); ``TRAFFIC_FORECAST_DEPLOY_DIR`` sets
the state directory (a deploy host keeps it outside the checkout). Once deployed, the router's
address and the slots' ports are read from the state, not from the config. ``retire`` is
started by a deploy itself, to stop the old colour after the rollback window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import signal
import sys
import time
from pathlib import Path

import httpx

from traffic_forecast.core import command
from traffic_forecast.core.config import Config, DeployConfig
from traffic_forecast.core.settings import load_config
from traffic_forecast.deploy import prometheus, rollout
from traffic_forecast.deploy.state import DeployError, state_dir_of

log = logging.getLogger(__name__)


def config(overrides: list[str]) -> Config:
    """The settings, with the state directory a deploy host sets (TRAFFIC_FORECAST_DEPLOY_DIR)."""
    cfg = load_config(overrides)
    state_dir = str(state_dir_of(cfg.deploy.state_dir))
    return dataclasses.replace(cfg, deploy=dataclasses.replace(cfg.deploy, state_dir=state_dir))


def bento_tag(name: str, cfg: Config) -> str:
    """The exact Bento version: of ``latest``, of a tag, or of an exported file (imported)."""
    import bentoml  # noqa: PLC0415 (seconds to import: only the deploy needs it)
    from bentoml.exceptions import BentoMLException  # noqa: PLC0415

    if name.endswith(".bento") and Path(name).is_file():
        try:
            imported = bentoml.import_bento(str(Path(name).resolve()))  # absolute paths only
        except BentoMLException as exc:
            present = re.search(r"Item '([^']+)' already exists", str(exc))
            if present is None:
                raise
            return present[1]  # the same Bento, deployed again (a re-run of the workflow)
        log.info("imported %s from %s", imported.tag, name)
        return str(imported.tag)
    if name == "latest":
        name = f"{cfg.serving.model_name}:latest"
    try:
        return str(bentoml.get(name).tag)
    except BentoMLException as exc:
        raise DeployError(
            f"no Bento {name!r} in the store ({exc}): build one with `make bento`, or give an "
            "exported .bento file"
        ) from None


def _cancellable() -> None:
    """A cancelled run ends a deploy through its clean-up (new colour stopped, router put back).

    GitHub cancels a job with SIGINT, then SIGTERM, then SIGKILL: the first becomes a
    KeyboardInterrupt, which the rollout handles like a failed step; the next are ignored so
    that the clean-up is not cut short.
    """

    def cancelled(signum: int, _: object) -> None:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for name in (signal.SIGINT, signal.SIGTERM):
        signal.signal(name, cancelled)


def _deploy(args: argparse.Namespace) -> int:
    _cancellable()
    cfg = config(args.overrides)
    outcome = rollout.deploy(bento_tag(args.bento, cfg), cfg)
    print(outcome.summary())
    router = rollout.router_url(cfg)
    print(f"\nforecasts at {router}/forecast, e.g.\n  curl -s -X POST {router}/forecast "
          "-H 'Content-Type: application/json' -d '{\"horizon\": 24}'")  # fmt: skip
    return 0


def _rollback(args: argparse.Namespace) -> int:
    _cancellable()  # past its window, a rollback is a deploy
    print(rollout.rollback(config(args.overrides)).summary())
    return 0


def _status(args: argparse.Namespace) -> int:
    report = rollout.status(config(args.overrides))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    router = report["router"]
    running = "running" if router["running"] else "stopped"
    print(f"router {router['url']}: {running}; live: {report['live']}")
    for colour, slot in report["colours"].items():
        if slot is None:
            print(f"  {colour:5}  -")
            continue
        health = "ready" if slot["ready"] else "running, not ready" if slot["running"] else "down"
        print(f"  {colour:5}  {slot['bento']}  model {slot['model']}  :{slot['port']}  {health}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    print(rollout.verify(config(args.overrides)))
    return 0


def _gate_check(args: argparse.Namespace) -> int:
    from traffic_forecast.deploy import checks  # noqa: PLC0415 (pandas: see rollout)

    cfg = config(args.overrides)
    try:
        model = httpx.get(args.new.rstrip("/") + "/metadata", timeout=30).json()["model_tag"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise DeployError(f"{args.new}/metadata did not answer with a model: {exc!r}") from None
    checks.smoke(args.new.rstrip("/"), model, cfg.deploy.smoke_horizon)
    print(f"smoke: {args.new} answers well-formed from {model}")
    if not args.smoke_only:
        actuals = checks.read_actuals(cfg.deploy.validation, cfg.data)
        live = None if args.live is None else args.live.rstrip("/")
        verdict = checks.validate(args.new.rstrip("/"), live, actuals, cfg.deploy.validation)
        print(f"validation: {verdict.text}")
    return 0


def _undeploy(args: argparse.Namespace) -> int:
    cfg = config(args.overrides)
    rollout.stop_all(cfg)
    print("stopped the router and both colours")
    if prometheus.stop(cfg):
        print("stopped the local prometheus (make observe)")
    return 0


def _retire(args: argparse.Namespace) -> int:
    time.sleep(args.after)
    stopped = rollout.retire(
        args.colour, args.bento, args.state_dir, DeployConfig(stop_timeout_s=args.stop_timeout)
    )
    log.info(
        "retire %s (%s): %s",
        args.colour,
        args.bento,
        "stopped" if stopped else "kept (live again, or replaced)",
    )
    return 0


def _prometheus(args: argparse.Namespace) -> int:
    cfg = config(args.overrides)
    if args.action == "start":
        base = prometheus.start(cfg)
        print(f"prometheus: {base}, its alerts at {base}/alerts")
    elif args.action == "stop":
        print("prometheus: stopped" if prometheus.stop(cfg) else "prometheus: was not running")
    else:
        print(json.dumps(prometheus.status(cfg), indent=2))
    return 0


def deploy_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast deploy <bento> [overrides…]``."""
    parser = command.parser("deploy", rollout.__doc__)
    parser.add_argument("bento", help="a Bento tag, latest, or an exported .bento file")
    return command.run(parser, _deploy, argv)


def rollback_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast rollback [overrides…]``."""
    doc = "Back to the previous colour: instant while it still runs, else a redeploy of its Bento."
    return command.run(command.parser("rollback", doc), _rollback, argv)


def status_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast status [--json] [overrides…]``."""
    parser = command.parser("status", "The router, the live colour, and each slot's Bento, model, "
                            "port and readiness.")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable")
    return command.run(parser, _status, argv)


def verify_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast verify [overrides…]``."""
    doc = "A forecast and a capacity answer through the router, from the live model, or exit 1."
    return command.run(command.parser("verify", doc), _verify, argv)


def gate_check_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast gate-check --new URL [--live URL] [--smoke-only] [overrides…]``."""
    parser = command.parser(
        "gate-check", "The deploy gates against given URLs (Argo Rollouts' prePromotionAnalysis)."
    )
    parser.add_argument("--new", required=True, help="the colour being deployed")
    parser.add_argument("--live", default=None, help="the live colour, for the validation gate")
    parser.add_argument("--smoke-only", action="store_true")
    return command.run(parser, _gate_check, argv)


def undeploy_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast undeploy [overrides…]``."""
    doc = (
        "Stop the router and both colours (and the retirements waiting out their window), "
        "and the local Prometheus of `make observe`."
    )
    return command.run(command.parser("undeploy", doc), _undeploy, argv)


def prometheus_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast prometheus start|stop|status [overrides…]``."""
    parser = command.parser("prometheus", prometheus.__doc__)
    parser.add_argument("action", choices=("start", "stop", "status"))
    return command.run(parser, _prometheus, argv)


def retire_main(argv: list[str] | None = None) -> int:
    """``python -m traffic_forecast.deploy.cli retire …``: started by a deploy, not by people."""
    parser = command.parser(
        "retire", "Stop a colour after the rollback window (started by a deploy).", overrides=False
    )
    parser.add_argument("colour")
    parser.add_argument("bento")
    parser.add_argument("--after", type=float, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    return command.run(parser, _retire, argv)


if __name__ == "__main__":
    # The deploy starts `retire` as `python -m traffic_forecast.deploy.cli retire …`.
    if sys.argv[1:2] != ["retire"]:
        sys.exit(f"usage: python -m {__package__}.cli retire …  (people: traffic-forecast --help)")
    sys.exit(retire_main(sys.argv[2:]))
