"""``traffic-forecast deploy|rollback|status|undeploy``: the blue/green tooling's command line.

Settings come from ``params.yaml`` (``conf/deploy/``) plus Hydra overrides after the command;
``TRAFFIC_FORECAST_DEPLOY_DIR`` sets the state directory (a deploy host keeps it outside the
checkout). ``retire`` is started by a deploy itself, to stop the old colour after the window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import time
from pathlib import Path

import bentoml
import httpx
from bentoml.exceptions import BentoMLException

from traffic_forecast.cli import run_stage
from traffic_forecast.config import Config, DeployConfig, load_config
from traffic_forecast.deploy import checks, rollout
from traffic_forecast.deploy.state import DeployError, state_dir_of

log = logging.getLogger(__name__)


def _config(overrides: list[str]) -> Config:
    cfg = load_config(overrides)
    state_dir = str(state_dir_of(cfg.deploy.state_dir))
    return dataclasses.replace(cfg, deploy=dataclasses.replace(cfg.deploy, state_dir=state_dir))


def _bento_tag(name: str, cfg: Config) -> str:
    """The exact Bento version: of ``latest``, of a tag, or of an exported file (imported)."""
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
    return str(bentoml.get(name).tag)


def _deploy(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="traffic-forecast deploy", description=rollout.__doc__)
    parser.add_argument("bento", help="Bento tag, or latest")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. deploy.canary.enabled=true"
    )
    args = parser.parse_args(argv)
    cfg = _config(args.overrides)
    outcome = rollout.deploy(_bento_tag(args.bento, cfg), cfg)
    print(outcome.summary())
    router = f"http://{cfg.deploy.host}:{cfg.deploy.router_port}"
    print(f"\nforecasts at {router}/forecast, e.g.\n  curl -s -X POST {router}/forecast "
          "-H 'Content-Type: application/json' -d '{\"horizon\": 24}'")  # fmt: skip
    return 0


def _rollback(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="traffic-forecast rollback")
    parser.add_argument("overrides", nargs="*")
    print(rollout.rollback(_config(parser.parse_args(argv).overrides)).summary())
    return 0


def _status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="traffic-forecast status")
    parser.add_argument("--json", action="store_true", help="machine-readable")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    report = rollout.status(_config(args.overrides))
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


def _verify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="traffic-forecast verify")
    parser.add_argument("overrides", nargs="*")
    cfg = _config(parser.parse_args(argv).overrides)
    print(rollout.verify(cfg))
    return 0


def _gate_check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="traffic-forecast gate-check",
        description="The deploy gates against given URLs (Argo Rollouts' prePromotionAnalysis).",
    )
    parser.add_argument("--new", required=True, help="the colour being deployed")
    parser.add_argument("--live", default=None, help="the live colour, for the validation gate")
    parser.add_argument("--smoke-only", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = _config(args.overrides)
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


def _undeploy(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="traffic-forecast undeploy")
    parser.add_argument("overrides", nargs="*")
    rollout.stop_all(_config(parser.parse_args(argv).overrides))
    print("stopped the router and both colours")
    return 0


def _retire(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="traffic_forecast.deploy.cli retire")
    parser.add_argument("colour")
    parser.add_argument("bento")
    parser.add_argument("--after", type=float, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
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


COMMANDS = {
    "deploy": _deploy,
    "rollback": _rollback,
    "status": _status,
    "undeploy": _undeploy,
    "verify": _verify,
    "gate-check": _gate_check,
    "retire": _retire,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m traffic_forecast.deploy.cli <command> …``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: {' | '.join(COMMANDS)} …", file=sys.stderr)
        return 2
    return run_stage(COMMANDS[args[0]], args[1:])


def deploy_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast deploy <bento> [overrides…]``."""
    return run_stage(_deploy, argv)


def rollback_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast rollback [overrides…]``."""
    return run_stage(_rollback, argv)


def status_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast status [--json] [overrides…]``."""
    return run_stage(_status, argv)


def verify_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast verify [overrides…]``."""
    return run_stage(_verify, argv)


def gate_check_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast gate-check --new URL [--live URL] [--smoke-only]``."""
    return run_stage(_gate_check, argv)


def undeploy_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast undeploy [overrides…]``."""
    return run_stage(_undeploy, argv)


if __name__ == "__main__":
    sys.exit(main())
