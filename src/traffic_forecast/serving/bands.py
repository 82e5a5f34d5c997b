"""Prediction intervals around served forecasts: any coverage, always holding the forecast.

Conformal models carry a grid of log-residual quantiles (`forecasting.intervals`); models with
native intervals give sktime's quantiles at `NATIVE_LEVELS`, once per state. Either way an
interval of any coverage is a few array operations, per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from traffic_forecast.forecasting.intervals import from_grid

FloatArray = npt.NDArray[np.float64]
# Native intervals: sktime's quantiles at these levels, once per state; any coverage between.
NATIVE_LEVELS = np.linspace(0.005, 0.995, 199)


def bounded(values: Any) -> FloatArray:
    """``values`` as floats, floored at 0: a forecaster's arithmetic can dip below at night."""
    floored: FloatArray = np.maximum(np.asarray(values, dtype=float), 0.0)
    return floored


def conformal(point: FloatArray, grid: list[float], coverage: float) -> tuple[Any, Any]:
    """The ``coverage`` interval from a log-residual quantile grid, holding ``point``."""
    calibration = from_grid(grid, coverage)
    return holding(point, point * np.exp(calibration.low), point * np.exp(calibration.high))


def holding(
    point: FloatArray, lower: FloatArray, upper: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The interval, widened where needed to hold the point forecast.

    The residual quantiles need not straddle zero: a model that over-forecasts more often
    than not has a 50 % interval wholly below its point forecast. An interval that does not
    hold its own forecast reads as a contradiction; widening it only raises its coverage.
    """
    n = len(point)
    return bounded(np.minimum(lower[:n], point)), np.maximum(upper[:n], point)


def at_level(quantiles: FloatArray, level: float) -> FloatArray:
    """Each hour's quantile at ``level``, linear between `NATIVE_LEVELS` (clamped to them)."""
    position = float(np.interp(level, NATIVE_LEVELS, np.arange(len(NATIVE_LEVELS))))
    below = int(min(position, len(NATIVE_LEVELS) - 2))
    weight = position - below
    at: FloatArray = quantiles[:, below] * (1.0 - weight) + quantiles[:, below + 1] * weight
    return at
