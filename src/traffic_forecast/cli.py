"""The command line: ``traffic-forecast <command>``. Thin: each command is a module's ``main``.

Commands are listed here and imported only when run, so ``traffic-forecast --help`` is quick.
Every command is built with `traffic_forecast.core.command`: ``--help`` on each, Hydra overrides
after it, and a user error in one line, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    # data
    "simulate": ("traffic_forecast.data.simulate.cli", "write the example raw tables (data/raw)"),
    "data": ("traffic_forecast.data.datastore", "get data/raw at the version data.dvc names"),
    "remote": (
        "traffic_forecast.data.remote",
        "use the cloud DVC remote, or the default without it",
    ),
    "params": (
        "traffic_forecast.core.settings",
        "compose conf/ into params.yaml (as dvc exp run does)",
    ),
    "stage-deps": ("traffic_forecast.pipeline.deps", "write each stage's code deps into dvc.yaml"),
    # the pipeline's stages (DVC runs them as python -m traffic_forecast.pipeline.<stage>)
    "validate": ("traffic_forecast.pipeline.validate", "stage 1: validate the raw tables"),
    "features": ("traffic_forecast.pipeline.features", "stage 2: build the model-ready frame"),
    "train": ("traffic_forecast.pipeline.train", "stage 3: fit the configured forecaster"),
    "evaluate": ("traffic_forecast.pipeline.evaluate", "stage 4: backtest model and baseline"),
    "explain": ("traffic_forecast.pipeline.explain", "stage 5: what drives the forecast"),
    # fleet mode: many series on Spark (data=fleet by default)
    "fleet-data": (
        "traffic_forecast.fleet.cli:data_main",
        "simulate the fleet (data.fleet.raw_dir)",
    ),
    "fleet-validate": ("traffic_forecast.fleet.cli:validate_main", "validate the fleet on Spark"),
    "fleet-train": (
        "traffic_forecast.fleet.cli:train_main",
        "backtest every series vs naive (reports/fleet_metrics.csv)",
    ),
    "batch-predict": (
        "traffic_forecast.fleet.cli:batch_predict_main",
        "publish every series' next hours with lineage",
    ),
    "fleet-summary": (
        "traffic_forecast.report.fleet_summary",
        "the fleet's backtest, worst series",
    ),
    # the pull request
    "summary": (
        "traffic_forecast.report.summary",
        "model vs baseline after a run, and the reports",
    ),
    "check-lock": ("traffic_forecast.report.lockcheck", "fail unless dvc.lock records this commit"),
    "report": (
        "traffic_forecast.report.gather",
        "the PR report: reports/report.md vs a base branch",
    ),
    "gate": ("traffic_forecast.report.gate", "exit non-zero when the PR report failed its gate"),
    # serving and releasing
    "package": ("traffic_forecast.serving.package", "save the model in the BentoML store"),
    "bento": ("traffic_forecast.serving.bento", "save the model and build the Bento"),
    "container": ("traffic_forecast.serving.bento:container_main", "containerize and push a Bento"),
    "deploy": ("traffic_forecast.deploy.cli:deploy_main", "blue/green deploy of a Bento (HAProxy)"),
    "rollback": ("traffic_forecast.deploy.cli:rollback_main", "back to the previous colour"),
    "status": ("traffic_forecast.deploy.cli:status_main", "live colour, versions, slot health"),
    "verify": ("traffic_forecast.deploy.cli:verify_main", "a forecast through the router, or fail"),
    "undeploy": ("traffic_forecast.deploy.cli:undeploy_main", "stop the router and both colours"),
    "serve": ("traffic_forecast.deploy.observe:serve_main", "bentoml serve with the actuals store"),
    "observe": ("traffic_forecast.deploy.observe", "store observed hours from a CSV file"),
    "gate-check": ("traffic_forecast.deploy.cli:gate_check_main", "the deploy gates on given URLs"),
    "k8s": ("traffic_forecast.deploy.kubernetes", "Argo Rollouts blue/green manifests"),
    "prometheus": (
        "traffic_forecast.deploy.cli:prometheus_main",
        "a local Prometheus on the deployment, with the alerts",
    ),
    "alerts": (
        "traffic_forecast.deploy.alerts",
        "PrometheusRule, Grafana dashboard, README table from the rules",
    ),
    # watching the model
    "actuals": ("traffic_forecast.monitor.demo:actuals_main", "fill monitor.actuals_dir"),
    "monitor": ("traffic_forecast.monitor.watch", "drift and decay of the served model"),
    "retrain": ("traffic_forecast.monitor.retrain", "ingest, retrain and propose it as a PR"),
    "drift-demo": ("traffic_forecast.monitor.demo:drift_demo_main", "the monitoring loop, locally"),
    # champion vs challenger on live traffic
    "experiment": (
        "traffic_forecast.experiment.cli",
        "A/B: start, stop, analyse, post, promote a challenger",
    ),
}
EXIT_USAGE = 2


def usage() -> str:
    """The list of commands."""
    width = max(map(len, COMMANDS))
    listed = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return (
        "usage: traffic-forecast <command> [options] [overrides…]\n\n"
        f"commands:\n{listed}\n\n`traffic-forecast <command> --help` tells more."
    )


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``traffic-forecast <command> [args…]`` to the command's module."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"traffic-forecast: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return EXIT_USAGE
    module_name, _, function = COMMANDS[args[0]][0].partition(":")
    entry = getattr(importlib.import_module(module_name), function or "main")
    code: int = entry(args[1:])
    return code


if __name__ == "__main__":
    sys.exit(main())
