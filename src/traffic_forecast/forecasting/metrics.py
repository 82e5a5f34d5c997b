"""Forecast accuracy measures, computed from backtest folds (pure functions of arrays).

MASE is scaled per fold by the in-sample error of the weekly seasonal-naive forecast on that
fold's training data, so a MASE below 1 means "better than same hour last week".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
MASE_SEASON = 168  # MASE is scaled by the weekly seasonal-naive error, whatever the model
PEAK_QUANTILE = 0.9  # "peak hours": the busiest 10 % of backtest hours, what capacity is sized for


@dataclass(frozen=True)
class Fold:
    """One backtest fold: its cutoff, actuals, point forecast, optional interval, MASE scale."""

    cutoff: pd.Timestamp
    actual: pd.Series
    forecast: pd.Series
    lower: pd.Series | None
    upper: pd.Series | None
    scale: float  # mean |y_t - y_{t-season}| over the fold's training data


def seasonal_scale(y_train: pd.Series, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast: the MASE denominator."""
    values = y_train.to_numpy(dtype=float)
    if len(values) <= season:
        raise ValueError(f"training data of {len(values)} points is shorter than season {season}")
    scale = float(np.mean(np.abs(values[season:] - values[:-season])))
    return scale if scale > 0 else float("nan")


def smape(actual: FloatArray, forecast: FloatArray) -> float:
    """Symmetric MAPE in percent (0 where both are 0)."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(forecast - actual),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(100 * np.mean(ratio))


def summarise(folds: list[Fold], sale_hours: pd.Index) -> dict[str, float | None]:
    """Headline metrics over all folds (MASE averaged per fold, others over all hours)."""
    actual = np.concatenate([f.actual.to_numpy(dtype=float) for f in folds])
    forecast = np.concatenate([f.forecast.to_numpy(dtype=float) for f in folds])
    stamps = pd.DatetimeIndex(np.concatenate([f.actual.index.to_numpy() for f in folds]))
    errors = np.abs(forecast - actual)
    peak = actual >= np.quantile(actual, PEAK_QUANTILE)
    on_sale = stamps.isin(sale_hours)
    result: dict[str, float | None] = {
        "mase": float(np.nanmean([fold_mase(f) for f in folds])),
        "smape": smape(actual, forecast),
        "rmse": float(np.sqrt(np.mean((forecast - actual) ** 2))),
        "mae": float(np.mean(errors)),
        "mae_peak_hours": float(np.mean(errors[peak])),
        # None (JSON null) when no backtest hour had a sale: there is no such error to report.
        "mae_sale_hours": float(np.mean(errors[on_sale])) if on_sale.any() else None,
        "mae_other_hours": float(np.mean(errors[~on_sale])),
        "sale_hours": int(on_sale.sum()),
    }
    result |= interval_scores([f for f in folds if f.lower is not None and f.upper is not None])
    return result


def interval_scores(folds: list[Fold]) -> dict[str, float]:
    """Empirical coverage and mean relative width of the folds that carry an interval."""
    if not folds:
        return {}
    actual = np.concatenate([f.actual.to_numpy(dtype=float) for f in folds])
    lower = np.concatenate([np.asarray(f.lower, dtype=float) for f in folds])
    upper = np.concatenate([np.asarray(f.upper, dtype=float) for f in folds])
    if np.isnan(lower).any() or np.isnan(upper).any():
        return {}  # e.g. a mean-strategy naive forecaster gives no usable variance
    return {
        "interval_coverage": float(np.mean((actual >= lower) & (actual <= upper))),
        "interval_width_rel": float(np.mean((upper - lower) / np.maximum(actual, 1.0))),
        "interval_folds": len(folds),
    }


def fold_mase(fold: Fold) -> float:
    """MASE of one fold."""
    mae = float(
        np.mean(np.abs(fold.forecast.to_numpy(dtype=float) - fold.actual.to_numpy(dtype=float)))
    )
    return mae / fold.scale


def error_by_step(folds: list[Fold]) -> pd.DataFrame:
    """MAE and scaled MAE per horizon step (1 = the first hour after the cutoff)."""
    rows = []
    for fold in folds:
        errors = np.abs(fold.forecast.to_numpy(dtype=float) - fold.actual.to_numpy(dtype=float))
        rows += [
            {"step": step, "abs_error": err, "scaled_error": err / fold.scale}
            for step, err in enumerate(errors, start=1)
        ]
    table = pd.DataFrame(rows).groupby("step", as_index=False).mean()
    return table.rename(columns={"abs_error": "mae", "scaled_error": "mase"})
