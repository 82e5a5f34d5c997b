"""Split-conformal intervals: known quantiles, out-of-sample calibration, nominal coverage."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from traffic_forecast.forecasting.intervals import (
    GRID_STEPS,
    MIN_CALIBRATION_FOLDS,
    calibrate,
    from_grid,
    log_residuals,
    quantile_grid,
    with_conformal_intervals,
)
from traffic_forecast.forecasting.metrics import Fold, interval_scores

FloatArray = npt.NDArray[np.float64]


def _fold(number: int, actual: FloatArray, forecast: FloatArray) -> Fold:
    """Fold ``number`` of consecutive, non-overlapping hourly windows."""
    index = pd.date_range("2024-03-01", periods=len(actual), freq="h") + pd.Timedelta(
        hours=number * len(actual)
    )
    return Fold(
        cutoff=index[0] - pd.Timedelta(hours=1),
        actual=pd.Series(actual, index=index, dtype=float),
        forecast=pd.Series(forecast, index=index, dtype=float),
        lower=None,
        upper=None,
        scale=1.0,
    )


def _folds_with_log_errors(errors: list[FloatArray], level: float = 1000.0) -> list[Fold]:
    """Folds forecasting ``level`` whose actuals are ``level * exp(error)``."""
    return [_fold(k, level * np.exp(e), np.full(len(e), level)) for k, e in enumerate(errors)]


# ---------------------------------------------------------------- calibrate


def test_calibration_quantiles_of_known_residuals() -> None:
    # 101 evenly spaced log residuals over [-1, 1], shuffled over five folds: the 5 % and
    # 95 % quantiles fall exactly on points, -0.9 and 0.9, whatever the fold they sit in.
    residuals = np.random.default_rng(3).permutation(np.linspace(-1.0, 1.0, 101))
    folds = _folds_with_log_errors(list(np.array_split(residuals, 5)))

    calibration = calibrate(folds, coverage=0.9)

    assert calibration.low == pytest.approx(-0.9)
    assert calibration.high == pytest.approx(0.9)
    assert calibration.residuals == 101
    assert calibration.coverage == 0.9


@pytest.mark.parametrize(
    ("coverage", "low", "high"),
    [(0.5, -0.5, 0.5), (0.8, -0.8, 0.8), (0.98, -0.98, 0.98)],
    ids=["50pct", "80pct", "98pct"],
)
def test_calibration_interval_widens_with_coverage(
    coverage: float, low: float, high: float
) -> None:
    folds = _folds_with_log_errors([np.linspace(-1.0, 1.0, 101)])

    calibration = calibrate(folds, coverage)

    assert (calibration.low, calibration.high) == pytest.approx((low, high))


def test_calibration_applies_as_a_multiplicative_band() -> None:
    folds = _folds_with_log_errors([np.linspace(-1.0, 1.0, 101)])
    forecast = pd.Series([100.0, 2000.0])

    lower, upper = calibrate(folds, 0.8).apply(forecast)

    assert lower.tolist() == pytest.approx([100 * math.exp(-0.8), 2000 * math.exp(-0.8)])
    assert upper.tolist() == pytest.approx([100 * math.exp(0.8), 2000 * math.exp(0.8)])


@pytest.mark.parametrize("coverage", [0.5, 0.8, 0.9, 0.95, 0.985], ids=str)
def test_the_quantile_grid_serves_any_coverage_as_calibrate_would(coverage: float) -> None:
    residuals = np.random.default_rng(5).normal(0.0, 0.1, 600)
    folds = _folds_with_log_errors(list(np.array_split(residuals, 6)))
    grid = quantile_grid(folds)
    assert len(grid) == GRID_STEPS + 1
    assert (grid[0], grid[-1]) == pytest.approx((residuals.min(), residuals.max()))
    served, direct = from_grid(grid, coverage), calibrate(folds, coverage)
    tail = (1 - coverage) / 2
    for level, ours, exact in (
        (tail, served.low, direct.low),
        (1 - tail, served.high, direct.high),
    ):
        step = level * GRID_STEPS
        if step == round(step):  # on one of the grid's levels: the same quantile
            assert ours == pytest.approx(exact)
        else:  # between two levels: both bounds fall between the same two grid values
            below, above = grid[int(step)], grid[int(step) + 1]
            assert below <= ours <= above
            assert below <= exact <= above


@pytest.mark.parametrize("coverage", [0.0, 1.0, -0.1, 1.5], ids=str)
def test_a_coverage_outside_zero_one_is_refused(coverage: float) -> None:
    with pytest.raises(ValueError, match="coverage"):
        from_grid([-1.0, 0.0, 1.0], coverage)


def test_log_residuals_stay_finite_at_zero() -> None:
    fold = _fold(0, np.array([0.0, 0.0, 10.0, 0.5]), np.array([0.0, 10.0, 0.0, -3.0]))

    residuals = log_residuals([fold])

    # Both sides are floored at 1: 0 vs 0 is no error; 0 vs 10 is log(1/10).
    assert residuals.tolist() == pytest.approx([0.0, math.log(0.1), math.log(10.0), 0.0])


# ---------------------------------------------------------------- with_conformal_intervals


def _bounds(fold: Fold) -> tuple[pd.Series, pd.Series]:
    assert fold.lower is not None, f"fold at {fold.cutoff} has no interval"
    assert fold.upper is not None, f"fold at {fold.cutoff} has no interval"
    return fold.lower, fold.upper


def _calm_then_wild(n_folds: int, wild_from: int) -> list[Fold]:
    """Folds with small log errors, and errors of ±5 (a factor of ~150) from ``wild_from``."""
    rng = np.random.default_rng(7)
    errors = [
        rng.normal(0.0, 0.1, 24) if k < wild_from else rng.choice([-5.0, 5.0], 24)
        for k in range(n_folds)
    ]
    return _folds_with_log_errors(errors)


def test_the_first_folds_get_no_interval() -> None:
    covered = with_conformal_intervals(_calm_then_wild(8, wild_from=8), 0.9)

    assert [f.lower is None for f in covered] == [True] * MIN_CALIBRATION_FOLDS + [False] * 4
    assert [f.upper is None for f in covered] == [True] * MIN_CALIBRATION_FOLDS + [False] * 4


@pytest.mark.parametrize("wild_from", [4, 5, 6, 7], ids=lambda k: f"wild_from_fold_{k}")
def test_intervals_never_use_a_folds_own_or_later_residuals(wild_from: int) -> None:
    calm = with_conformal_intervals(_calm_then_wild(8, wild_from=8), 0.9)
    wild = with_conformal_intervals(_calm_then_wild(8, wild_from=wild_from), 0.9)

    for k in range(MIN_CALIBRATION_FOLDS, wild_from + 1):
        # Fold `wild_from` has huge errors itself; its interval must not know that.
        pd.testing.assert_series_equal(_bounds(calm[k])[0], _bounds(wild[k])[0])
        pd.testing.assert_series_equal(_bounds(calm[k])[1], _bounds(wild[k])[1])
    for k in range(wild_from + 1, 8):
        # ... while the folds after it do widen: the check above can tell them apart.
        assert (_bounds(wild[k])[1] > _bounds(calm[k])[1]).all()


def test_intervals_keep_the_folds_forecasts_and_actuals() -> None:
    folds = _calm_then_wild(6, wild_from=6)

    covered = with_conformal_intervals(folds, 0.9)

    for before, after in zip(folds, covered, strict=True):
        pd.testing.assert_series_equal(before.actual, after.actual)
        pd.testing.assert_series_equal(before.forecast, after.forecast)
        assert before.cutoff == after.cutoff


def test_coverage_is_near_nominal_on_iid_lognormal_errors() -> None:
    # 100 folds of 24 hours, forecasts at random levels, actual = forecast * lognormal noise.
    # 96 folds (2,304 hours) are scored. Over 300 seeds of this set-up the coverage had mean
    # 0.8975 and standard deviation 0.006, about the binomial sqrt(0.9 · 0.1 / 2,304); the mean
    # sits 0.0025 under nominal because quantiles of n residuals cover about n/(n+1) of the
    # mass. A tolerance of 0.025 is four standard deviations; a quantile mix-up (80 % or
    # 95 % intervals, or one tail only) misses it by far.
    rng = np.random.default_rng(20240301)
    folds = []
    for k in range(100):
        forecast = rng.uniform(500.0, 5000.0, 24)
        folds.append(_fold(k, forecast * np.exp(rng.normal(0.0, 0.3, 24)), forecast))

    covered = with_conformal_intervals(folds, 0.9)

    scored = [f for f in covered if f.lower is not None]
    coverage = interval_scores(scored)["interval_coverage"]
    assert coverage == pytest.approx(0.9, abs=0.025)
    # Both tails miss about equally often (5 % each, binomial sd 0.0045): the band is central.
    actual = np.concatenate([f.actual.to_numpy() for f in scored])
    below = np.mean(actual < np.concatenate([np.asarray(f.lower) for f in scored]))
    above = np.mean(actual > np.concatenate([np.asarray(f.upper) for f in scored]))
    assert below == pytest.approx(0.05, abs=0.02)
    assert above == pytest.approx(0.05, abs=0.02)
