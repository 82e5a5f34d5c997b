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

from traffic_forecast.forecasting.metrics import Fold

MIN_CALIBRATION_FOLDS = 4  # folds of residuals before the first fold gets an interval
GRID_STEPS = 200  # serving's residual quantiles at levels 0, 0.005, …, 1: any coverage to 0.5 %


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


def quantile_grid(folds: list[Fold], steps: int = GRID_STEPS) -> list[float]:
    """Log-residual quantiles at levels ``0, 1/steps, …, 1``: serving derives any coverage."""
    return [float(q) for q in np.quantile(log_residuals(folds), np.linspace(0.0, 1.0, steps + 1))]


def from_grid(grid: list[float], coverage: float, residuals: int = 0) -> IntervalCalibration:
    """The calibration for ``coverage`` from a `quantile_grid`, interpolating between levels.

    Plain arithmetic on the list, not numpy: serving asks for one per request (microseconds).
    """
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage {coverage} must lie in (0, 1)")
    tail = (1.0 - coverage) / 2
    return IntervalCalibration(coverage, _at(grid, tail), _at(grid, 1.0 - tail), residuals)


def _at(grid: list[float], level: float) -> float:
    """The grid's value at ``level`` in [0, 1], linear between its evenly spaced levels."""
    position = level * (len(grid) - 1)
    below = min(int(position), len(grid) - 2)
    weight = position - below
    return grid[below] + (grid[below + 1] - grid[below]) * weight


def with_conformal_intervals(folds: list[Fold], coverage: float) -> list[Fold]:
    """Folds with intervals from earlier folds; the first `MIN_CALIBRATION_FOLDS` get none."""
    covered = list(folds[:MIN_CALIBRATION_FOLDS])
    for k in range(MIN_CALIBRATION_FOLDS, len(folds)):
        lower, upper = calibrate(folds[:k], coverage).apply(folds[k].forecast)
        covered.append(dataclasses.replace(folds[k], lower=lower, upper=upper))
    return covered
