"""Prediction intervals around served forecasts: any coverage, always holding the forecast.

Conformal models carry a grid of log-residual bounds per bucket of horizon steps
(`forecasting.intervals`), spread over the served hours once per engine (`StepGrids`); models
with native intervals give sktime's quantiles at `NATIVE_LEVELS`, once per state. Either way an
interval of any coverage is a few array operations, per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from traffic_forecast.forecasting.intervals import LEVELS, bucket_of_steps, grid_position

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
# Native intervals: sktime's quantiles at these levels, once per state; any coverage between.
NATIVE_LEVELS = np.linspace(0.005, 0.995, 199)


def bounded(values: Any) -> FloatArray:
    """``values`` as floats, floored at 0: a forecaster's arithmetic can dip below at night."""
    floored: FloatArray = np.maximum(np.asarray(values, dtype=float), 0.0)
    return floored


@dataclass(frozen=True)
class StepGrids:
    """A calibration's per-bucket grids and the bucket of each served hour, made once per engine.

    Serving forecasts further ahead than the backtest's horizon: those hours take the last
    bucket's grid, the furthest ahead the backtest has residuals for (it may understate how
    far a forecast days ahead can miss).
    """

    grids: FloatArray  # a bucket per row: log bounds at tail levels 0, 1/GRID_STEPS, …, 1
    bucket: IntArray  # the row of each served hour, from the origin on
    levels: FloatArray  # the level that gives each nominal coverage of `LEVELS` (coverage_map)

    @classmethod
    def of(cls, calibration: dict[str, Any], hours: int) -> StepGrids:
        """From a calibration of ``intervals.json`` (`calibration_payload`), for ``hours`` hours."""
        buckets = calibration["buckets"]
        grids = np.array([b["log_residual_quantiles"] for b in buckets], dtype=float)
        which = bucket_of_steps([int(b["last_step"]) for b in buckets], hours)
        return cls(grids, which, np.asarray(calibration["coverage_map"], dtype=float))

    def log_bounds(self, coverage: float, hours: int) -> tuple[FloatArray, FloatArray]:
        """The low and high log bounds of the first ``hours`` served hours at ``coverage``."""
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"coverage {coverage} must lie in (0, 1)")
        tail = (1.0 - float(np.interp(coverage, LEVELS, self.levels))) / 2
        which = self.bucket[:hours]
        return self._at(tail)[which], self._at(1.0 - tail)[which]

    def _at(self, level: float) -> FloatArray:
        below, weight = grid_position(level, self.grids.shape[1])
        # as `from_grid` does: where the grid is flat (repeated order statistics) this is exactly
        # its value, so a wider coverage never comes out a rounding error narrower
        low, high = self.grids[:, below], self.grids[:, below + 1]
        at: FloatArray = low + (high - low) * weight
        return at


def model_grids(intervals: dict[str, Any], hours: int) -> StepGrids:
    """The model's conformal grids from ``intervals.json``."""
    return StepGrids.of(intervals, hours)


def fallback_grids(intervals: dict[str, Any], hours: int) -> StepGrids:
    """The seasonal-naive fallback's conformal grids from ``intervals.json``."""
    return StepGrids.of(intervals["baseline"], hours)


def conformal(point: FloatArray, grids: StepGrids, coverage: float) -> tuple[Any, Any]:
    """The ``coverage`` interval from per-bucket log-residual grids, holding ``point``."""
    low, high = grids.log_bounds(coverage, len(point))
    return holding(point, point * np.exp(low), point * np.exp(high))


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
