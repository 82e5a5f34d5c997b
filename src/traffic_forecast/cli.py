"""The command line: ``traffic-forecast <command>``. Thin: each command calls a module's main."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable

from traffic_forecast.errors import TrafficForecastError

log = logging.getLogger("traffic_forecast")

COMMANDS = {
    "simulate": ("traffic_forecast.simulate", "write the example raw tables (data/raw)"),
    "data": ("traffic_forecast.datastore", "get data/raw at the version data.dvc names"),
    "params": ("traffic_forecast.params", "compose conf/ into params.yaml (as dvc exp run does)"),
    "validate": ("traffic_forecast.pipeline.validate", "stage 1: validate the raw tables"),
    "features": ("traffic_forecast.pipeline.features", "stage 2: build the model-ready frame"),
    "train": ("traffic_forecast.pipeline.train", "stage 3: fit the configured forecaster"),
    "evaluate": ("traffic_forecast.pipeline.evaluate", "stage 4: backtest model and baseline"),
    "explain": ("traffic_forecast.pipeline.explain", "stage 5: what drives the forecast"),
    "package": ("traffic_forecast.serving.package", "save the model in the BentoML store"),
    "bento": ("traffic_forecast.serving.bento", "save the model and build the Bento"),
    "container": ("traffic_forecast.serving.bento:container_main", "containerize and push a Bento"),
    "summary": ("traffic_forecast.summary", "model vs baseline after a run, and the reports"),
    "remote": ("traffic_forecast.remote", "use the cloud DVC remote, or the default without it"),
    "report": ("traffic_forecast.report", "the PR report: reports/report.md vs a base branch"),
    "gate": ("traffic_forecast.gate", "exit non-zero when the PR report failed its gate"),
    "check-lock": ("traffic_forecast.lockcheck", "fail unless dvc.lock records this commit"),
    "deploy": ("traffic_forecast.deploy.cli:deploy_main", "blue/green deploy of a Bento (nginx)"),
    "rollback": ("traffic_forecast.deploy.cli:rollback_main", "back to the previous colour"),
    "status": ("traffic_forecast.deploy.cli:status_main", "live colour, versions, slot health"),
    "verify": ("traffic_forecast.deploy.cli:verify_main", "a forecast through the router, or fail"),
    "undeploy": ("traffic_forecast.deploy.cli:undeploy_main", "stop the router and both colours"),
    "gate-check": ("traffic_forecast.deploy.cli:gate_check_main", "the deploy gates on given URLs"),
    "k8s": ("traffic_forecast.deploy.kubernetes", "Argo Rollouts blue/green manifests"),
    "monitor": ("traffic_forecast.monitor.watch", "drift and decay of the served model"),
    "actuals": ("traffic_forecast.monitor.demo:actuals_main", "fill monitor.actuals_dir"),
    "retrain": ("traffic_forecast.monitor.retrain", "ingest, retrain and propose it as a PR"),
    "drift-demo": ("traffic_forecast.monitor.demo:drift_demo_main", "the monitoring loop, locally"),
}


def configure_logging() -> None:
    """Plain messages on stderr; ``TRAFFIC_FORECAST_LOG=DEBUG`` shows more."""
    level = os.environ.get("TRAFFIC_FORECAST_LOG", "INFO").upper()
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise here


def run_stage(body: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run a command body; a `TrafficForecastError` becomes one line and an exit code."""
    configure_logging()
    try:
        return body(list(sys.argv[1:] if argv is None else argv))
    except TrafficForecastError as exc:
        log.error("error: %s", exc)
        return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``traffic-forecast <command> [args…]`` to the command's module."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        usage = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
        print(f"usage: traffic-forecast <command> [args…]\n\ncommands:\n{usage}")
        return 0 if args[:1] in ([], ["-h"], ["--help"]) else 2
    module_name, _, function = COMMANDS[args[0]][0].partition(":")
    entry = getattr(importlib.import_module(module_name), function or "main")
    code: int = entry(args[1:])
    return code


if __name__ == "__main__":
    sys.exit(main())
