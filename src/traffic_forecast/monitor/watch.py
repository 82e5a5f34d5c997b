"""``traffic-forecast monitor``: drift of the inputs and decay of the served model, and a verdict.

Writes ``reports/monitoring.md`` (for people and the retrain pull request), ``monitoring.json``
(for tools: the retrain step reads it) and ``monitoring.png``; exits 1 when a drift or decay
threshold (``conf/monitor/``) is breached, so a scheduler can alert on the exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.core.settings import load_config
from traffic_forecast.deploy.slots import prediction_log_path
from traffic_forecast.deploy.state import load as load_deploy_state
from traffic_forecast.deploy.state import state_dir_of
from traffic_forecast.forecasting import plots
from traffic_forecast.monitor import drift
from traffic_forecast.monitor.drift import Verdict
from traffic_forecast.monitor.served import Served, served_forecast
from traffic_forecast.monitor.sources import (
    ACTUALS_FROM,
    ActualsFrom,
    NewData,
    model_artifacts,
    new_actuals,
    recent_capacity,
    reference,
)
from traffic_forecast.report.charts import xychart

log = logging.getLogger(__name__)

REPORT_MD, REPORT_JSON, REPORT_PNG = "monitoring.md", "monitoring.json", "monitoring.png"
EXIT_BREACHED = 1


@dataclass(frozen=True)
class Watch:
    """One monitoring run: what was compared, and the verdict."""

    served: Served
    new: NewData
    reference: pd.Series
    recent: pd.Series
    training_end: pd.Timestamp
    verdict: Verdict


def _live_model(cfg: Config) -> str:
    """The deployed colour's model if a deployment runs here, else the workspace's."""
    state = load_deploy_state(state_dir_of(cfg.deploy.state_dir))
    if state.live is not None and state.live in state.slots:
        return state.slots[state.live].model
    return "workspace"


def _prediction_logs(cfg: Config) -> str:
    """``monitor.prediction_logs``, else every file the deployed colours log to (any worker)."""
    if cfg.monitor.prediction_logs:
        return cfg.monitor.prediction_logs
    # Any colour, then any worker's file and its rotated ones.
    return str(prediction_log_path(state_dir_of(cfg.deploy.state_dir), "*")) + "*"


def watch(
    cfg: Config, actuals_dir: Path, model: str = "live", actuals_from: ActualsFrom = "auto"
) -> Watch:
    """Compare the new actuals with the served model and its training data.

    ``actuals_from``: ``store`` (the observation store), ``files`` (the raw tables in
    ``actuals_dir``), or ``auto``: the store when it holds hours after the training, else files.
    """
    monitor = cfg.monitor
    tag, loaded = model_artifacts(cfg, _live_model(cfg) if model == "live" else model)
    training_end = pd.Timestamp(loaded.card["training_window"]["end"])
    new = new_actuals(cfg, actuals_dir, training_end, actuals_from)
    if new.traffic.empty:
        raise PipelineInputError(
            f"no actual hour after the training end {training_end} in {new.described}"
        )
    ref_traffic = reference(cfg, training_end)
    reference_window = ref_traffic.iloc[-monitor.reference_weeks * drift.WEEK :]
    # By time, not by count: the store may hold scattered hours.
    weeks = pd.Timedelta(hours=monitor.recent_weeks * drift.WEEK)
    recent = new.traffic[new.traffic.index > new.traffic.index[-1] - weeks]
    kinds, new_kinds = drift.kinds_check(loaded.sale_kinds, new.sale_kinds)
    data_checks = [
        drift.level_check(reference_window, recent, monitor),
        drift.profile_check(reference_window, recent, monitor),
        kinds,
    ]
    capacity = drift.capacity_check(
        None if loaded.capacity is None else loaded.capacity.sessions_per_instance,
        recent_capacity(recent, new.infrastructure, cfg),
        monitor,
    )
    if capacity is not None:
        data_checks.append(capacity)
    served = served_forecast(tag, loaded, _prediction_logs(cfg))
    measured = drift.quality(served.forecast, new.traffic)
    promised = served.nominal(new.traffic.index)  # the coverage the scored answers were asked at
    nominal = (
        float(loaded.intervals.get("coverage", cfg.backtest.coverage))
        if promised is None
        else promised
    )
    quality_checks = drift.quality_checks(
        measured, float(loaded.metrics["model"]["mae"]), nominal, monitor
    )
    days = (new.traffic.index[-1] - training_end) / pd.Timedelta(days=1)
    verdict = drift.decide(
        data_checks, quality_checks, measured, new_kinds, days >= monitor.retrain_every_days
    )
    return Watch(served, new, reference_window, recent, training_end, verdict)


def _profiles(result: Watch) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "end of training": drift.weekly_profile(result.reference),
            "recent": drift.weekly_profile(result.recent),
        }
    )


def _status(check: drift.Check) -> str:
    return "🔴 breached" if check.breached else "🟢 within"


def render_markdown(result: Watch) -> str:
    """The monitoring report: verdict, checks, realised quality, charts, recommendation."""
    verdict, new = result.verdict, result.new.traffic
    lines = [
        f"**{verdict.headline()}**",
        "",
        f"Model `{result.served.tag}`, trained up to {result.training_end:%Y-%m-%d %H:%M}; new "
        f"actuals {new.index[0]:%Y-%m-%d %H:%M} → {new.index[-1]:%Y-%m-%d %H:%M} ({len(new):,} h) "
        f"from {result.new.described}. Forecast: {result.served.source}.",
        "",
        "## Checks",
        "",
        "| check | kind | | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.kind} | {c.text} | {_status(c)} |" for c in verdict.checks]
    yes_no = {True: "yes", False: "no"}
    lines += [
        "",
        f"Data drift: **{yes_no[verdict.data_drift]}** · decay: **{yes_no[verdict.degraded]}** · "
        "concept drift (decay while the inputs look as in training): "
        f"**{yes_no[verdict.concept_drift]}**",
        "",
        "## Realised forecast quality",
        "",
    ]
    lines += _quality_lines(result)
    profiles = _profiles(result)
    chart = xychart(
        "Weekly profile (level removed), x100",
        [str(h) for h in profiles.index],
        "share of the mean x100",
        [(profiles[c] * 100).tolist() for c in profiles.columns],
        1.0,
    )
    lines += ["", "## Weekly profile", "", chart, "lines: end of training, recent"]
    lines += ["", "## Recommendation", ""]
    if verdict.retrain:
        lines.append("Retrain proposed: " + "; ".join(verdict.reasons) + ".")
        lines.append("`traffic-forecast retrain` (the monitor workflow runs it) opens the PR.")
    else:
        lines.append("No retrain needed.")
    return "\n".join(lines) + "\n"


def _quality_lines(result: Watch) -> list[str]:
    quality, new = result.verdict.quality, result.new.traffic
    if quality.mae is None or quality.mape is None or quality.coverage is None:
        return ["No forecast hour has an actual yet."]
    common = result.served.forecast.index.intersection(new.index)
    shown = result.served.forecast.loc[common]
    chart = xychart(
        "Served forecast vs actual",
        [f"{t:%m-%d %H}h" for t in common],
        "sessions (thousands)",
        [new[common].tolist(), shown["value"].tolist()],
        1e3,
    )
    origins = result.served.origins(new.index)
    scored = (
        f"each with the forecast served for it when it came ({origins} forecast "
        f"origin{'s' if origins > 1 else ''})"
        if result.served.logged
        else "with the packaged model's forecast from its training end"
    )
    return [
        f"{quality.hours} hours, {scored}: MAE {quality.mae:,.0f}, MAPE {quality.mape:.1f} %, "
        f"interval coverage {quality.coverage:.0%}.",
        "",
        "| day | MAE | hours |",
        "|---|---:|---:|",
        *[f"| {d['day']} | {d['mae']:,.0f} | {d['hours']} |" for d in quality.by_day],
        "",
        chart,
        "lines: actual, served forecast",
    ]


def write(result: Watch, reports: Path) -> None:
    """The three report files."""
    new = result.new.traffic
    payload = result.verdict.as_json() | {
        "model": result.served.tag,
        "training_end": str(result.training_end),
        "actuals": {
            "first": str(new.index[0]),
            "last": str(new.index[-1]),
            "hours": len(new),
            "source": result.new.source,
            "from": result.new.described,
        },
        "forecast_source": result.served.source,
        "forecast_origins": result.served.origins(new.index),
    }
    write_json_atomic(reports / REPORT_JSON, payload)
    write_text_atomic(reports / REPORT_MD, render_markdown(result))
    plots.monitoring(result.served.forecast, new, _profiles(result), reports / REPORT_PNG)


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    actuals_from = args.actuals_from
    if args.actuals is not None:  # a folder named on the command line: its files, nothing else
        if actuals_from == "store":
            raise PipelineInputError("--actuals DIR reads files: it cannot go with --from store")
        actuals_from = "files"
    result = watch(cfg, args.actuals or Path(cfg.monitor.actuals_dir), args.model, actuals_from)
    reports = Path(cfg.paths.reports_dir)
    write(result, reports)
    print(result.verdict.headline())
    for check in result.verdict.breached:
        print(f"  breached: {check.text}")
    print(f"report: {reports / REPORT_MD}")
    return EXIT_BREACHED if result.verdict.breached else 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast monitor [--from WHERE | --actuals DIR] [--model WHICH] [overrides…]``."""
    parser = command.parser("monitor", __doc__)
    parser.add_argument(
        "--from",
        dest="actuals_from",
        choices=ACTUALS_FROM,
        default="auto",
        help="new actuals from the observation store, the raw files in monitor.actuals_dir, or "
        "auto (default): the store when it holds hours after the training, else the files",
    )
    parser.add_argument(
        "--actuals",
        type=Path,
        default=None,
        metavar="DIR",
        help="read the raw files in DIR (implies --from files; default: monitor.actuals_dir)",
    )
    parser.add_argument(
        "--model", default="live", help="live (default), workspace, latest or a tag"
    )
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
