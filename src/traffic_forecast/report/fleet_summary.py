"""``traffic-forecast fleet-summary``: the fleet's backtest in a few lines, after ``fleet-train``.

The aggregate against seasonal naive and the worst series, from ``reports/fleet_metrics.csv``;
no base branch is needed (the PR report, ``traffic-forecast report``, compares with one).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.settings import load_config
from traffic_forecast.pipeline import outputs
from traffic_forecast.report.fleet import RATIO, S, aggregate, parse_fleet_metrics, worst_series

WORST_PRINTED = 5


def summary_lines(table: pd.DataFrame, excluded: int, worst: int = WORST_PRINTED) -> list[str]:
    """The aggregate and the ``worst`` series of a checked per-series table (with its ratio)."""
    fleet = aggregate(table)
    weighted = "-" if fleet.ratio_weighted is None else f"{fleet.ratio_weighted:.3f}"
    lines = [
        f"fleet: {fleet.series} series scored, {excluded} excluded as too short",
        f"  MASE, mean over series           {fleet.mase:8.3f}",
        f"  seasonal naive MASE, mean        {fleet.baseline_mase:8.3f}",
        f"  MASE ratio to naive              {fleet.ratio:8.3f}   (below 1 beats it)",
        f"  MASE ratio, traffic-weighted     {weighted:>8}",
        f"  series beating naive             {fleet.share_beating:8.0%}",
        "",
        f"worst {min(worst, len(table))} series (highest MASE ratio to naive):",
        f"  {'series':<24}{'MASE':>8}{'naive':>8}{'ratio':>8}{'MAE':>10}",
    ]
    for values in worst_series(table, worst).to_dict("records"):
        lines.append(
            f"  {values[S.series_id]:<24}{values[S.mase]:8.3f}{values[S.baseline_mase]:8.3f}"
            f"{values[RATIO]:8.3f}{values[S.mae]:10,.1f}"
        )
    return lines


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    path = outputs.FLEET_METRICS.path(cfg.paths)
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: run `traffic-forecast fleet-train` first")
    table = parse_fleet_metrics(path.read_text(encoding="utf-8"), str(path))
    excluded_path = outputs.FLEET_EXCLUDED.path(cfg.paths)
    excluded = len(pd.read_csv(excluded_path)) if excluded_path.is_file() else 0
    print("\n".join(summary_lines(table, excluded)))
    print(f"\nper series: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast fleet-summary [overrides…]``."""
    return command.run(command.parser("fleet-summary", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
