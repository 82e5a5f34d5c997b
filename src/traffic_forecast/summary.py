"""``traffic-forecast summary``: model vs baseline after a pipeline run, and where to look."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from traffic_forecast.cli import run_stage
from traffic_forecast.config import load_config
from traffic_forecast.errors import PipelineInputError

ROWS = (
    ("MASE (vs same hour last week)", "mase", "{:.3f}"),
    ("sMAPE %", "smape", "{:.1f}"),
    ("RMSE", "rmse", "{:,.0f}"),
    ("MAE, all hours", "mae", "{:,.0f}"),
    ("MAE, peak hours", "mae_peak_hours", "{:,.0f}"),
    ("MAE, sale hours", "mae_sale_hours", "{:,.0f}"),
    ("interval coverage", "interval_coverage", "{:.0%}"),
)
REPORT_FILES = (
    "validation.md",
    "metrics.json",
    "backtest_folds.csv",
    "forecast.png",
    "error_by_horizon.png",
    "explain.csv",
    "explain.png",
)


def summary_table(metrics: dict[str, Any], model: str, baseline: str) -> str:
    """A fixed-width table of headline metrics, model vs baseline."""
    width = max(len(label) for label, _, _ in ROWS) + 2
    lines = [f"{'':{width}}{model:>20}{baseline:>20}"]
    for label, key, form in ROWS:
        cells = [
            form.format(metrics[side][key]) if metrics[side].get(key) is not None else "-"
            for side in ("model", "baseline")
        ]
        lines.append(f"{label:{width}}{cells[0]:>20}{cells[1]:>20}")
    backtest = metrics["backtest"]
    lines.append(
        f"\n{backtest['folds']} folds, {backtest['horizon_hours']} h ahead, every "
        f"{backtest['step_hours']} h; MASE ratio model/baseline: {metrics['mase_vs_baseline']:.2f}"
    )
    return "\n".join(lines)


def _main(overrides: list[str]) -> int:
    cfg = load_config(overrides)
    reports = Path(cfg.paths.reports_dir)
    metrics_path = reports / "metrics.json"
    if not metrics_path.is_file():
        raise PipelineInputError(f"{metrics_path} not found: run the pipeline (`dvc repro`)")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    print(summary_table(metrics, cfg.model.name, cfg.baseline.name))
    print("\nreports:")
    for name in REPORT_FILES:
        if (reports / name).is_file():
            print(f"  {reports / name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast summary [overrides…]``."""
    return run_stage(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
