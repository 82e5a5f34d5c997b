"""Accuracy measures on arrays small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.forecasting.metrics import (
    Fold,
    error_by_step,
    fold_mase,
    interval_scores,
    seasonal_scale,
    smape,
    summarise,
)


def _fold(
    actual: list[float],
    forecast: list[float],
    *,
    start: str = "2024-03-01",
    scale: float = 1.0,
    lower: list[float] | None = None,
    upper: list[float] | None = None,
) -> Fold:
    index = pd.date_range(start, periods=len(actual), freq="h")

    def series(values: list[float] | None) -> pd.Series | None:
        return None if values is None else pd.Series(values, index=index, dtype=float)

    return Fold(
        cutoff=index[0] - pd.Timedelta(hours=1),
        actual=pd.Series(actual, index=index, dtype=float),
        forecast=pd.Series(forecast, index=index, dtype=float),
        lower=series(lower),
        upper=series(upper),
        scale=scale,
    )


# ---------------------------------------------------------------- seasonal_scale


# (series, season, mean |y_t - y_{t-season}|)
SCALES = {
    "season_2": ([1.0, 2.0, 3.0, 4.0, 5.0, 7.0], 2, (2 + 2 + 2 + 3) / 4),
    "season_1": ([10.0, 4.0, 4.0, 9.0], 1, (6 + 0 + 5) / 3),
    "one_point_past_season": ([5.0, 1.0, 2.0, 8.0], 3, 3.0),
}


@pytest.mark.parametrize(("values", "season", "expected"), list(SCALES.values()), ids=list(SCALES))
def test_seasonal_scale_is_the_seasonal_naive_in_sample_mae(
    values: list[float], season: int, expected: float
) -> None:
    assert seasonal_scale(pd.Series(values), season) == pytest.approx(expected)


def test_seasonal_scale_of_a_perfectly_seasonal_series_is_nan_not_zero() -> None:
    # A zero scale would make every MASE infinite; NaN drops the fold from the average.
    assert math.isnan(seasonal_scale(pd.Series([1.0, 2.0] * 5), 2))


@pytest.mark.parametrize("length", [1, 3], ids=["shorter", "equal"])
def test_seasonal_scale_needs_more_than_one_season(length: int) -> None:
    with pytest.raises(ValueError, match="shorter than season 3"):
        seasonal_scale(pd.Series(np.ones(length)), 3)


# ---------------------------------------------------------------- smape


# (actual, forecast, sMAPE in percent)
SMAPES = {
    "equal": ([3.0, 50.0, 7.0], [3.0, 50.0, 7.0], 0.0),
    "both_zero": ([0.0, 0.0], [0.0, 0.0], 0.0),
    "forecast_zero": ([5.0, 8.0], [0.0, 0.0], 200.0),
    "actual_zero": ([0.0], [4.0], 200.0),
    "half": ([100.0], [50.0], 100 * 2 * 50 / 150),
    "mixed": ([100.0, 0.0], [100.0, 3.0], (0 + 200) / 2),
}


@pytest.mark.parametrize(
    ("actual", "forecast", "expected"), list(SMAPES.values()), ids=list(SMAPES)
)
def test_smape(actual: list[float], forecast: list[float], expected: float) -> None:
    assert smape(np.array(actual), np.array(forecast)) == pytest.approx(expected)


def test_smape_is_symmetric() -> None:
    a, b = np.array([10.0, 3.0, 0.0]), np.array([4.0, 9.0, 1.0])

    assert smape(a, b) == pytest.approx(smape(b, a))


# ---------------------------------------------------------------- fold_mase, error_by_step


def test_fold_mase_is_mae_over_scale() -> None:
    fold = _fold(actual=[2.0, 2.0, 5.0], forecast=[1.0, 2.0, 3.0], scale=2.0)

    assert fold_mase(fold) == pytest.approx(((1 + 0 + 2) / 3) / 2.0)


def test_error_by_step_averages_each_step_over_folds() -> None:
    folds = [
        _fold([0.0, 0.0, 0.0], [1.0, -2.0, 3.0], scale=1.0),
        _fold([10.0, 10.0, 10.0], [7.0, 12.0, 9.0], start="2024-03-02", scale=2.0),
    ]

    table = error_by_step(folds)

    assert table["step"].tolist() == [1, 2, 3]
    assert table["mae"].tolist() == pytest.approx([(1 + 3) / 2, (2 + 2) / 2, (3 + 1) / 2])
    assert table["mase"].tolist() == pytest.approx(
        [(1 / 1 + 3 / 2) / 2, (2 / 1 + 2 / 2) / 2, (3 / 1 + 1 / 2) / 2]
    )


# ---------------------------------------------------------------- summarise


def _sale_and_peak_folds() -> tuple[list[Fold], pd.DatetimeIndex]:
    """Two folds of five hours: error 5 on the two sale hours, 1 elsewhere, one clear peak."""
    first = _fold(
        actual=[10.0, 11.0, 12.0, 13.0, 100.0],  # 100: the only peak hour
        forecast=[11.0, 10.0, 17.0, 8.0, 99.0],  # errors 1, 1, 5, 5, 1
        start="2024-03-01 00:00",
        scale=2.0,
    )
    second = _fold(
        actual=[14.0, 15.0, 16.0, 17.0, 18.0],
        forecast=[15.0, 14.0, 17.0, 16.0, 19.0],  # errors 1 everywhere
        start="2024-03-08 00:00",
        scale=4.0,
    )
    sale_hours = pd.DatetimeIndex(
        ["2024-03-01 02:00", "2024-03-01 03:00", "2024-02-01 00:00"]  # the last is no fold's
    )
    return [first, second], sale_hours


def test_summarise_splits_errors_by_sale_and_peak_hours() -> None:
    folds, sale_hours = _sale_and_peak_folds()
    errors = np.array([1, 1, 5, 5, 1, 1, 1, 1, 1, 1], dtype=float)

    result = summarise(folds, sale_hours)

    assert result["sale_hours"] == 2
    assert result["mae_sale_hours"] == pytest.approx(5.0)
    assert result["mae_other_hours"] == pytest.approx(1.0)
    assert result["mae"] == pytest.approx(errors.mean())
    assert result["rmse"] == pytest.approx(math.sqrt((errors**2).mean()))
    # Actuals 10..18 and 100: the 90th percentile lies between 18 and 100, so only 100 is a peak.
    assert result["mae_peak_hours"] == pytest.approx(1.0)
    # MASE is averaged per fold: fold 1 has MAE 13/5 on scale 2, fold 2 MAE 1 on scale 4.
    assert result["mase"] == pytest.approx((13 / 5 / 2 + 1 / 4) / 2)
    actual = np.concatenate([f.actual.to_numpy() for f in folds])
    forecast = np.concatenate([f.forecast.to_numpy() for f in folds])
    assert result["smape"] == pytest.approx(
        100 * np.mean(2 * np.abs(forecast - actual) / (actual + forecast))
    )
    assert not any(key.startswith("interval") for key in result)  # no fold has an interval


def test_summarise_without_sale_hours_reports_none_for_them() -> None:
    folds, _ = _sale_and_peak_folds()

    result = summarise(folds, pd.DatetimeIndex([]))

    assert result["sale_hours"] == 0
    assert result["mae_sale_hours"] is None  # JSON null: metrics.json stays valid JSON
    assert result["mae_other_hours"] == pytest.approx(result["mae"])


def test_summarise_skips_folds_with_an_undefined_scale_in_mase() -> None:
    folds = [
        _fold([1.0, 1.0], [2.0, 2.0], scale=float("nan")),
        _fold([1.0, 1.0], [3.0, 3.0], start="2024-03-02", scale=4.0),
    ]

    assert summarise(folds, pd.DatetimeIndex([]))["mase"] == pytest.approx(2 / 4)


def test_summarise_scores_only_folds_that_carry_an_interval() -> None:
    plain = _fold([1.0, 2.0], [1.0, 2.0])
    covered = _fold(
        [10.0, 20.0], [10.0, 20.0], start="2024-03-02", lower=[9.0, 21.0], upper=[11.0, 22.0]
    )

    result = summarise([plain, covered], pd.DatetimeIndex([]))

    assert result["interval_folds"] == 1
    assert result["interval_coverage"] == pytest.approx(0.5)


# ---------------------------------------------------------------- interval_scores


def test_interval_coverage_and_width_on_hand_made_intervals() -> None:
    fold = _fold(
        actual=[1.0, 5.0, 10.0, 20.0, 0.5],
        forecast=[1.0, 5.0, 10.0, 20.0, 0.5],
        lower=[0.0, 6.0, 10.0, 25.0, 0.0],  # 10 sits on its lower bound: covered
        upper=[2.0, 8.0, 11.0, 30.0, 0.5],  # 0.5 sits on its upper bound: covered
    )

    scores = interval_scores([fold])

    assert scores["interval_coverage"] == pytest.approx(3 / 5)
    # Width relative to the actual, with actuals below 1 counted as 1.
    assert scores["interval_width_rel"] == pytest.approx(
        (2 / 1 + 2 / 5 + 1 / 10 + 5 / 20 + 0.5 / 1) / 5
    )
    assert scores["interval_folds"] == 1


def test_interval_scores_pool_hours_across_folds() -> None:
    inside = _fold([5.0], [5.0], lower=[4.0], upper=[6.0])
    outside = _fold([5.0] * 3, [5.0] * 3, start="2024-03-02", lower=[6.0] * 3, upper=[7.0] * 3)

    scores = interval_scores([inside, outside])

    assert scores["interval_coverage"] == pytest.approx(1 / 4)
    assert scores["interval_folds"] == 2


@pytest.mark.parametrize(
    ("lower", "upper"),
    [([float("nan"), 1.0], [3.0, 3.0]), ([1.0, 1.0], [3.0, float("nan")])],
    ids=["nan_lower", "nan_upper"],
)
def test_interval_scores_are_empty_when_an_interval_is_nan(
    lower: list[float], upper: list[float]
) -> None:
    fold = _fold([2.0, 2.0], [2.0, 2.0], lower=lower, upper=upper)

    assert interval_scores([fold]) == {}


def test_interval_scores_are_empty_without_folds() -> None:
    assert interval_scores([]) == {}
