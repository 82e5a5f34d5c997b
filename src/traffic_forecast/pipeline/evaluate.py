"""Stage 4, evaluate: rolling-origin backtest of the model and the seasonal-naive baseline.

Both are scored on identical folds. Writes ``reports/metrics.json`` (DVC metrics), the per-fold
table, DVC plot data (forecast vs actual, error by horizon) and PNG plots beside them.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import FutureFeatures, TrafficRaw
from traffic_forecast.forecasting import plots
from traffic_forecast.forecasting.backtest import BacktestRun, run_backtest
from traffic_forecast.forecasting.intervals import quantile_grid
from traffic_forecast.forecasting.metrics import error_by_step, fold_mase, summarise
from traffic_forecast.pipeline import outputs

log = logging.getLogger(__name__)


def sale_hours(history: pd.DataFrame) -> pd.DatetimeIndex:
    """The hours on which a sale was running."""
    on_sale = history[FutureFeatures.sale_active] == 1
    return pd.DatetimeIndex(history.loc[on_sale, TrafficRaw.timestamp])


def metrics_payload(
    model: BacktestRun, baseline: BacktestRun, sales: pd.DatetimeIndex, cfg: Config
) -> dict[str, Any]:
    """``metrics.json``: model and baseline headline metrics and their ratio."""
    model_metrics = summarise(model.folds, sales)
    baseline_metrics = summarise(baseline.folds, sales)
    return {
        "model": model_metrics,
        "baseline": baseline_metrics,
        "mase_vs_baseline": _ratio(model_metrics["mase"], baseline_metrics["mase"]),
        "backtest": {
            "folds": len(model.folds),
            "horizon_hours": cfg.backtest.horizon,
            "step_hours": cfg.backtest.step_hours,
            "coverage": cfg.backtest.coverage,
        },
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def interval_payload(model: BacktestRun, baseline: BacktestRun) -> dict[str, Any]:
    """How serving makes intervals: the model's own, or the calibrated residual quantiles.

    The quantile grids (every 0.5 %) let serving answer any coverage a request asks for; the
    baseline's is for the seasonal-naive fallback, which has no intervals of its own.
    """
    payload: dict[str, Any] = {
        "method": "native",
        "baseline_log_residual_quantiles": quantile_grid(baseline.folds),
    }
    if model.calibration is None:
        return payload
    calibration = model.calibration
    return payload | {
        "method": "split_conformal_log_residuals",
        "coverage": calibration.coverage,
        "log_residual_low": calibration.low,
        "log_residual_high": calibration.high,
        "residuals": calibration.residuals,
        "log_residual_quantiles": quantile_grid(model.folds),
    }


def fold_table(model: BacktestRun, baseline: BacktestRun) -> pd.DataFrame:
    """One row per fold: cutoff, model and baseline MASE."""
    return pd.DataFrame(
        {
            "fold": range(1, len(model.folds) + 1),
            "cutoff": [str(f.cutoff) for f in model.folds],
            "model_mase": [fold_mase(f) for f in model.folds],
            "baseline_mase": [fold_mase(f) for f in baseline.folds],
        }
    )


def forecast_table(model: BacktestRun, baseline: BacktestRun) -> pd.DataFrame:
    """Every backtest hour: actual, model, baseline and the model's interval."""
    parts = []
    for number, (ours, theirs) in enumerate(zip(model.folds, baseline.folds, strict=True), 1):
        part = pd.DataFrame(
            {
                "fold": number,
                "timestamp": pd.DatetimeIndex(ours.actual.index).strftime("%Y-%m-%d %H:%M"),
                "actual": ours.actual.to_numpy(),
                "model": ours.forecast.to_numpy(),
                "baseline": theirs.forecast.to_numpy(),
            }
        )
        if ours.lower is not None and ours.upper is not None:
            part["lower"], part["upper"] = ours.lower.to_numpy(), ours.upper.to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def horizon_table(model: BacktestRun, baseline: BacktestRun) -> pd.DataFrame:
    """MAE and MASE per hour ahead, model vs baseline."""
    ours, theirs = error_by_step(model.folds), error_by_step(baseline.folds)
    return pd.DataFrame(
        {
            "step": ours["step"],
            "model_mae": ours["mae"],
            "baseline_mae": theirs["mae"],
            "model_mase": ours["mase"],
            "baseline_mase": theirs["mase"],
        }
    )


def run(cfg: Config) -> dict[str, Any]:
    """Backtest model and baseline, write metrics, tables and plots; return the metrics."""
    paths = cfg.paths
    history, _ = outputs.read_features(paths)
    model = run_backtest(cfg.model, history, cfg.backtest, setting="model")
    baseline = run_backtest(
        cfg.baseline, history, cfg.backtest, setting="baseline", intervals=False
    )
    metrics = metrics_payload(model, baseline, sale_hours(history), cfg)
    write_json_atomic(outputs.METRICS.path(paths), _rounded(metrics))
    write_json_atomic(outputs.INTERVALS.path(paths), _rounded(interval_payload(model, baseline)))
    write_text_atomic(
        outputs.FOLDS.path(paths), fold_table(model, baseline).round(4).to_csv(index=False)
    )
    forecasts = forecast_table(model, baseline)
    horizon = horizon_table(model, baseline)
    write_text_atomic(
        outputs.FORECAST_PLOT_DATA.path(paths), forecasts.round(1).to_csv(index=False)
    )
    write_text_atomic(outputs.HORIZON_PLOT_DATA.path(paths), horizon.round(4).to_csv(index=False))
    plots.forecast_vs_actual(forecasts, outputs.FORECAST_PNG.path(paths))
    plots.error_by_horizon(horizon, outputs.HORIZON_PNG.path(paths))
    return metrics


def _rounded(value: Any) -> Any:
    # Metrics are compared across machines and commits: 6 significant digits are plenty and
    # keep last-bit float noise out of diffs.
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None  # JSON has no NaN
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    metrics = run(cfg)
    log.info(
        "backtest %s vs %s over %d folds: MASE %.3f vs %.3f (ratio %.2f); reports in %s/",
        cfg.model.name,
        cfg.baseline.name,
        metrics["backtest"]["folds"],
        metrics["model"]["mase"],
        metrics["baseline"]["mase"],
        metrics["mase_vs_baseline"],
        cfg.paths.reports_dir,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast evaluate [overrides…]`` (DVC: ``python -m …pipeline.evaluate``)."""
    return command.run(command.parser("evaluate", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
