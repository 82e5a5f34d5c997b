"""Prediction intervals from backtest residuals (split conformal), for models without their own.

The interval is the point forecast times the empirical quantiles of ``log(actual / forecast)``
over earlier folds. Each fold is covered by quantiles of folds before it only, so the coverage
the report shows is out of sample. The quantiles from all folds are what serving applies.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from traffic_forecast.metrics import Fold

MIN_CALIBRATION_FOLDS = 4  # folds of residuals before the first fold gets an interval


@dataclass(frozen=True)
class IntervalCalibration:
    """Log-residual quantiles: ``lower = forecast·exp(low)``, ``upper = forecast·exp(high)``."""

    coverage: float
    low: float
    high: float
    residuals: int

    def apply(self, forecast: pd.Series) -> tuple[pd.Series, pd.Series]:
        """The interval around a point forecast."""
        return forecast * float(np.exp(self.low)), forecast * float(np.exp(self.high))


def log_residuals(folds: list[Fold]) -> npt.NDArray[np.float64]:
    """``log(actual / forecast)`` over the given folds (both floored at 1 to stay finite)."""
    if not folds:
        return np.empty(0)
    actual = np.concatenate([f.actual.to_numpy(dtype=float) for f in folds])
    forecast = np.concatenate([f.forecast.to_numpy(dtype=float) for f in folds])
    residuals: npt.NDArray[np.float64] = np.log(np.maximum(actual, 1.0) / np.maximum(forecast, 1.0))
    return residuals


def calibrate(folds: list[Fold], coverage: float) -> IntervalCalibration:
    """Quantiles of the log residuals for a central interval of ``coverage``."""
    residuals = log_residuals(folds)
    tail = (1.0 - coverage) / 2
    low, high = np.quantile(residuals, [tail, 1.0 - tail])
    return IntervalCalibration(coverage, float(low), float(high), len(residuals))


def with_conformal_intervals(folds: list[Fold], coverage: float) -> list[Fold]:
    """Folds with intervals from earlier folds; the first `MIN_CALIBRATION_FOLDS` get none."""
    covered = list(folds[:MIN_CALIBRATION_FOLDS])
    for k in range(MIN_CALIBRATION_FOLDS, len(folds)):
        lower, upper = calibrate(folds[:k], coverage).apply(folds[k].forecast)
        covered.append(dataclasses.replace(folds[k], lower=lower, upper=upper))
    return covered
