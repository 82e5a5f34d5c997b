"""Prediction intervals from backtest residuals (split conformal), per bucket of horizon steps.

The interval is the point forecast times quantiles of ``log(actual / forecast)``, taken
separately for each bucket of ``backtest.bucket_hours`` horizon steps: hours at different
distances from the cutoff err differently (and, the backtest's origins all falling on the same
weekly hour, each bucket is also a time of day with its own noise). Each fold is covered by
quantiles of folds before it only, so the coverage the report shows is out of sample. The
quantiles from all folds are what serving applies; beyond the backtest's horizon it applies
the last bucket, the furthest ahead there is evidence for.

**The level is recalibrated on the folds' own record.** Split conformal assumes tomorrow's
errors are drawn like the past ones; a series drifts (bike rentals' winter storms come late in
the backtest, the example's errors calm as its history grows), and the plain 90 % quantile of
earlier folds covered from 80 % to 93 % of later hours on the data we tried. So the quantile
level is chosen by what it achieved: each earlier fold ``j`` is scored at every level with
quantiles of the folds before ``j``, and the level at which the coverage they achieved equals
the nominal one is used (`coverage_map`), recent folds counting more. Fold ``k`` is covered
with the map learnt before ``k``; serving uses the map of all folds, for any coverage asked.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from traffic_forecast.core.config import BacktestConfig
from traffic_forecast.forecasting.metrics import Fold, interval_scores

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
MIN_CALIBRATION_FOLDS = 4  # folds of residuals before the first fold gets an interval
GRID_STEPS = 200  # serving's bounds at tail levels 0, 0.005, …, 1: any coverage to 0.5 %
# Scored folds (after MIN_CALIBRATION_FOLDS) before their record recalibrates the level
MIN_SCORED_FOLDS = 3
RECORD_HALF_LIFE = 8  # folds: how fast an old fold's record of coverage loses weight
DEFAULT_BUCKET_HOURS = BacktestConfig.bucket_hours
TAILS = np.linspace(0.0, 1.0, GRID_STEPS + 1)  # the tail level of each point of a grid
LEVELS = TAILS  # and, read as central coverages, the levels a coverage map is tabled at


@dataclass(frozen=True)
class BucketCalibration:
    """The log-residual bounds of horizon steps ``first_step``…``last_step``."""

    first_step: int  # 1 = the first hour after the cutoff
    last_step: int
    residuals: int
    low: float  # the bounds at the calibration's coverage (at its recalibrated level)
    high: float
    grid: tuple[float, ...]  # the quantile at tail level j / GRID_STEPS (`from_grid`)


@dataclass(frozen=True)
class IntervalCalibration:
    """Per-bucket bounds: ``lower = forecast·exp(low)``, ``upper = forecast·exp(high)``."""

    coverage: float
    bucket_hours: int
    buckets: tuple[BucketCalibration, ...]
    levels: tuple[float, ...]  # `coverage_map`: the level used for each nominal `LEVELS` value

    def level(self, coverage: float) -> float:
        """The central level whose quantiles covered ``coverage`` of earlier folds' hours."""
        return float(np.interp(coverage, LEVELS, self.levels))

    @property
    def residuals(self) -> int:
        """How many residuals the buckets hold together."""
        return sum(bucket.residuals for bucket in self.buckets)

    def log_bounds(self, steps: int) -> tuple[FloatArray, FloatArray]:
        """The low and high log bounds of steps ``1…steps`` (the last bucket's past the horizon)."""
        which = bucket_of_steps([b.last_step for b in self.buckets], steps)
        low = np.array([bucket.low for bucket in self.buckets])
        high = np.array([bucket.high for bucket in self.buckets])
        return low[which], high[which]

    def apply(self, forecast: pd.Series) -> tuple[pd.Series, pd.Series]:
        """The interval around a point forecast whose first value is step 1."""
        low, high = self.log_bounds(len(forecast))
        return forecast * np.exp(low), forecast * np.exp(high)


def bucket_of_steps(last_steps: list[int], steps: int) -> IntArray:
    """The bucket of each step ``1…steps``, given each bucket's last step; beyond all, the last."""
    found = np.searchsorted(np.asarray(last_steps), np.arange(1, steps + 1), side="left")
    clipped: IntArray = np.minimum(found, len(last_steps) - 1).astype(np.intp)
    return clipped


def bucket_ranges(steps: int, bucket_hours: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each bucket of steps, 0-based; the last may be shorter."""
    if bucket_hours < 1:
        raise ValueError(f"bucket_hours={bucket_hours} must be at least 1")
    return [(start, min(start + bucket_hours, steps)) for start in range(0, steps, bucket_hours)]


def residual_matrix(folds: list[Fold]) -> FloatArray:
    """``log(actual / forecast)``, a row per fold, a column per horizon step (both floored at 1)."""
    lengths = {len(fold.actual) for fold in folds}
    if len(lengths) > 1:
        raise ValueError(f"folds of different lengths {sorted(lengths)}: one horizon is needed")
    actual = np.array([f.actual.to_numpy(dtype=float) for f in folds], ndmin=2)
    forecast = np.array([f.forecast.to_numpy(dtype=float) for f in folds], ndmin=2)
    residuals: FloatArray = np.log(np.maximum(actual, 1.0) / np.maximum(forecast, 1.0))
    return residuals


def quantile_grid(residuals: FloatArray) -> FloatArray:
    """The residuals' quantiles at tail levels ``0, 1/GRID_STEPS, …, 1`` (linear between)."""
    grid: FloatArray = np.quantile(residuals, np.linspace(0.0, 1.0, GRID_STEPS + 1))
    return grid


def _grids(residuals: FloatArray, bucket_hours: int) -> list[FloatArray]:
    """Each bucket's `quantile_grid` over the given folds (rows) of residuals."""
    return [
        quantile_grid(residuals[:, start:stop].ravel())
        for start, stop in bucket_ranges(residuals.shape[1], bucket_hours)
    ]


def achieved_coverage(grids: list[FloatArray], fold: FloatArray, bucket_hours: int) -> FloatArray:
    """The share of one fold's residuals inside the central interval at each `LEVELS` level."""
    inside = np.zeros(len(LEVELS))
    for grid, (start, stop) in zip(grids, bucket_ranges(len(fold), bucket_hours), strict=True):
        low = np.interp((1.0 - LEVELS) / 2, TAILS, grid)[:, None]
        high = np.interp((1.0 + LEVELS) / 2, TAILS, grid)[:, None]
        part = fold[start:stop][None, :]
        inside += ((part >= low) & (part <= high)).sum(axis=1)
    covered: FloatArray = inside / len(fold)
    return covered


def coverage_map(residuals: FloatArray, bucket_hours: int) -> FloatArray:
    """The central level to use for each nominal coverage in `LEVELS`, from the folds' record.

    Folds ``MIN_CALIBRATION_FOLDS`` on are each scored with quantiles of the folds before them;
    the level is where the coverage they achieved crosses the nominal one (linear between
    levels; 1, the extreme residuals, beyond the best achieved). Recent folds count more
    (half-life `RECORD_HALF_LIFE` folds): the series drifts, and tomorrow is more like last
    month than last winter. With fewer than `MIN_SCORED_FOLDS` scored there is no record yet:
    the level is the nominal coverage.
    """
    scored = [
        achieved_coverage(_grids(residuals[:j], bucket_hours), residuals[j], bucket_hours)
        for j in range(MIN_CALIBRATION_FOLDS, len(residuals))
    ]
    if len(scored) < MIN_SCORED_FOLDS:
        return LEVELS.copy()
    age = np.arange(len(scored))[::-1]  # 0 for the newest scored fold
    mean = np.average(scored, axis=0, weights=0.5 ** (age / RECORD_HALF_LIFE))
    # wider never covers less; the tiny ramp keeps ties apart for the interpolation
    achieved = np.maximum.accumulate(mean) + LEVELS * 1e-9
    levels: FloatArray = np.interp(LEVELS, achieved, LEVELS, left=0.0, right=1.0)
    return levels


def calibrate(
    folds: list[Fold], coverage: float, *, bucket_hours: int = DEFAULT_BUCKET_HOURS
) -> IntervalCalibration:
    """Log-residual quantiles per bucket, at the level that covered ``coverage`` in the past."""
    if not folds:
        raise ValueError("no folds to calibrate intervals on")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage {coverage} must lie in (0, 1)")
    residuals = residual_matrix(folds)
    levels = coverage_map(residuals, bucket_hours)
    level = float(np.interp(coverage, LEVELS, levels))
    buckets = []
    ranges = bucket_ranges(residuals.shape[1], bucket_hours)
    for grid, (start, stop) in zip(_grids(residuals, bucket_hours), ranges, strict=True):
        low, high = from_grid(list(grid), level)
        buckets.append(
            BucketCalibration(
                start + 1, stop, residuals[:, start:stop].size, low, high, tuple(grid.tolist())
            )
        )
    return IntervalCalibration(coverage, bucket_hours, tuple(buckets), tuple(levels.tolist()))


def from_grid(grid: list[float], level: float) -> tuple[float, float]:
    """The low and high log bounds of the central ``level`` from a bucket's grid, linear between.

    A level, not a coverage: `IntervalCalibration.level` says which level gives a coverage.
    Plain arithmetic on the list, not numpy: a request asks for one in microseconds.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level {level} must lie in [0, 1]")
    tail = (1.0 - level) / 2
    return _at(grid, tail), _at(grid, 1.0 - tail)


def grid_position(level: float, size: int) -> tuple[int, float]:
    """Where ``level`` in [0, 1] falls on a grid of ``size`` even levels: index below, weight."""
    position = level * (size - 1)
    below = min(math.floor(position), size - 2)
    return below, position - below


def _at(grid: list[float], level: float) -> float:
    below, weight = grid_position(level, len(grid))
    return grid[below] + (grid[below + 1] - grid[below]) * weight


def steps_of(fold: Fold, first_step: int, last_step: int) -> Fold:
    """The fold cut to horizon steps ``first_step…last_step`` (for per-bucket scores)."""
    cut = slice(first_step - 1, last_step)

    def part(series: pd.Series | None) -> pd.Series | None:
        return None if series is None else series.iloc[cut]

    return dataclasses.replace(
        fold,
        actual=fold.actual.iloc[cut],
        forecast=fold.forecast.iloc[cut],
        lower=part(fold.lower),
        upper=part(fold.upper),
    )


def with_conformal_intervals(
    folds: list[Fold], coverage: float, *, bucket_hours: int = DEFAULT_BUCKET_HOURS
) -> list[Fold]:
    """Folds with intervals from earlier folds; the first `MIN_CALIBRATION_FOLDS` get none."""
    covered = list(folds[:MIN_CALIBRATION_FOLDS])
    for k in range(MIN_CALIBRATION_FOLDS, len(folds)):
        calibration = calibrate(folds[:k], coverage, bucket_hours=bucket_hours)
        lower, upper = calibration.apply(folds[k].forecast)
        covered.append(dataclasses.replace(folds[k], lower=lower, upper=upper))
    return covered


def calibration_payload(
    calibration: IntervalCalibration, folds: list[Fold] | None = None
) -> dict[str, Any]:
    """A calibration as ``intervals.json`` holds it; with the backtest's folds, each bucket's score.

    Serving reads each bucket's ``last_step`` and ``log_residual_quantiles`` (the grid).
    """
    covered = [f for f in folds or [] if f.lower is not None and f.upper is not None]
    buckets = []
    for bucket in calibration.buckets:
        entry: dict[str, Any] = {
            "first_step": bucket.first_step,
            "last_step": bucket.last_step,
            "residuals": bucket.residuals,
            "log_residual_low": bucket.low,
            "log_residual_high": bucket.high,
        }
        scores = interval_scores(
            [steps_of(f, bucket.first_step, bucket.last_step) for f in covered]
        )
        if scores:
            entry["backtest_coverage"] = scores["interval_coverage"]
            entry["backtest_width_rel"] = scores["interval_width_rel"]
        buckets.append(entry | {"log_residual_quantiles": list(bucket.grid)})
    return {
        "coverage": calibration.coverage,
        "level": calibration.level(calibration.coverage),
        "bucket_hours": calibration.bucket_hours,
        "residuals": calibration.residuals,
        "buckets": buckets,
        "coverage_map": list(calibration.levels),
    }
