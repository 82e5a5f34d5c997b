"""``traffic-forecast summary``: model vs baseline after a pipeline run, and where to look."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from traffic_forecast.core import command
from traffic_forecast.core.settings import load_config
from traffic_forecast.pipeline import outputs

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
    outputs.VALIDATION_MD,
    outputs.METRICS,
    outputs.FOLDS,
    outputs.FORECAST_PNG,
    outputs.HORIZON_PNG,
    outputs.EXPLAIN_CSV,
    outputs.EXPLAIN_PNG,
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


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    metrics = outputs.read_json(outputs.METRICS, cfg.paths)
    chosen = metrics.get("selection", {}).get("chosen")  # model=auto: the candidate it chose
    model = f"{chosen} (auto)" if chosen else cfg.model.name
    print(summary_table(metrics, model, cfg.baseline.name))
    print("\nreports:")
    for output in REPORT_FILES:
        if output.path(cfg.paths).is_file():
            print(f"  {output.path(cfg.paths)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast summary [overrides…]``."""
    return command.run(command.parser("summary", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
