"""Known-in-advance features: calendar and sale features by hand, last week's target, horizon."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from traffic_forecast.core.config import FeaturesConfig
from traffic_forecast.data.schemas import FutureFeatures, SaleEventsRaw
from traffic_forecast.forecasting import features
from traffic_forecast.forecasting.features import SALE_AFTERMATH_CAP_HOURS, SALE_KIND_PREFIX

KINDS = ["flash_sale", "seasonal_sale"]
DAY = "2024-03-05"  # a Tuesday far from any US federal holiday


def _hours(start: str, periods: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq="h")


def _events(*sales: tuple[str, str, str, int]) -> pd.DataFrame:
    """A validated sale calendar from ``(start, end, kind, discount_pct)`` tuples."""
    frame = pd.DataFrame(
        {
            "event_id": range(1, len(sales) + 1),
            "name": [f"sale {i}" for i in range(1, len(sales) + 1)],
            "kind": [kind for _, _, kind, _ in sales],
            "start": [start for start, _, _, _ in sales],
            "end": [end for _, end, _, _ in sales],
            "discount_pct": [discount for _, _, _, discount in sales],
        }
    )
    validated: pd.DataFrame = SaleEventsRaw.validate(frame)
    return validated


def _traffic(target: npt.NDArray[np.float64], start: str = "2024-01-01") -> pd.DataFrame:
    return pd.DataFrame({"timestamp": _hours(start, len(target)), "target": target.astype(float)})


# ---------------------------------------------------------------- calendar


# timestamp -> (hour, day_of_week, month, is_weekend, is_holiday); weekdays from a calendar.
CALENDAR_CASES = {
    "independence_day_thursday": ("2024-07-04 15:00", (15, 3, 7, 0, 1)),
    "saturday_after_independence_day": ("2024-07-06 09:00", (9, 5, 7, 1, 0)),
    "sunday_midnight": ("2024-07-07 00:00", (0, 6, 7, 1, 0)),
    "monday_last_hour": ("2024-07-08 23:00", (23, 0, 7, 0, 0)),
    "christmas_wednesday": ("2024-12-25 12:00", (12, 2, 12, 0, 1)),
    "thanksgiving_thursday": ("2024-11-28 18:00", (18, 3, 11, 0, 1)),
    "day_after_thanksgiving": ("2024-11-29 18:00", (18, 4, 11, 0, 0)),
}


@pytest.mark.parametrize(
    ("stamp", "expected"), list(CALENDAR_CASES.values()), ids=list(CALENDAR_CASES)
)
def test_calendar_features_of_known_dates(
    stamp: str, expected: tuple[int, int, int, int, int]
) -> None:
    hour, day_of_week, month, is_weekend, is_holiday = expected

    row = features.calendar_features(pd.DatetimeIndex([stamp]), "us_federal").iloc[0]

    assert row[FutureFeatures.hour] == hour
    assert row[FutureFeatures.day_of_week] == day_of_week
    assert row[FutureFeatures.hour_of_week] == day_of_week * 24 + hour
    assert row[FutureFeatures.month] == month
    assert row[FutureFeatures.is_weekend] == is_weekend
    assert row[FutureFeatures.is_holiday] == is_holiday


def test_holiday_flag_covers_the_whole_day_and_only_it() -> None:
    stamps = _hours("2024-07-03", 72)  # 3, 4 and 5 July

    flags = features.calendar_features(stamps, "us_federal")[FutureFeatures.is_holiday]

    assert flags.to_numpy().tolist() == [0] * 24 + [1] * 24 + [0] * 24


def test_no_holiday_calendar_flags_nothing() -> None:
    stamps = _hours("2024-07-04", 24)

    flags = features.calendar_features(stamps, "none")[FutureFeatures.is_holiday]

    assert (flags == 0).all()


def test_hour_of_week_counts_every_hour_of_a_week_once() -> None:
    week = _hours("2024-07-01", 168)  # a Monday at 00:00

    hour_of_week = features.calendar_features(week, "none")[FutureFeatures.hour_of_week]

    assert hour_of_week.to_numpy().tolist() == list(range(168))


# ---------------------------------------------------------------- sales


def test_sale_features_from_start_to_end_and_after() -> None:
    stamps = _hours(DAY, 24 * 5)
    events = _events((f"{DAY} 10:00", f"{DAY} 14:00", "flash_sale", 30))

    sale = features.sale_features(stamps, events, KINDS)

    on = sale[FutureFeatures.sale_active] == 1
    assert list(sale.index[on].hour) == [10, 11, 12, 13]
    assert sale.loc[on, FutureFeatures.sale_hours_since_start].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert (sale.loc[on, FutureFeatures.sale_discount] == 30.0).all()
    assert (sale.loc[~on, FutureFeatures.sale_discount] == 0.0).all()
    assert (sale.loc[~on, FutureFeatures.sale_hours_since_start] == 0.0).all()
    assert (sale.loc[on, SALE_KIND_PREFIX + "flash_sale"] == 1).all()
    assert (sale[SALE_KIND_PREFIX + "seasonal_sale"] == 0).all()

    since_end = sale[FutureFeatures.sale_hours_since_end]
    end = pd.Timestamp(f"{DAY} 14:00")
    after = since_end[stamps >= end]
    hours_after = (after.index - end) / pd.Timedelta(hours=1)
    assert since_end[end] == 0.0
    assert after.tolist() == np.minimum(hours_after, SALE_AFTERMATH_CAP_HOURS).tolist()
    assert after.iloc[-1] == SALE_AFTERMATH_CAP_HOURS  # the window reaches past the cap
    # Before any sale has ended the feature sits at its cap ("long since the last sale").
    assert (since_end[stamps < end] == SALE_AFTERMATH_CAP_HOURS).all()


# (sales as (start hour, end hour, kind, discount)), the discount of each hour 0..23 of the day
OVERLAPS = {
    "larger_contains_smaller": (
        [(10, 18, "seasonal_sale", 50), (12, 14, "flash_sale", 20)],
        [0] * 10 + [50] * 8 + [0] * 6,
    ),
    "smaller_contains_larger": (
        [(10, 18, "flash_sale", 20), (12, 14, "seasonal_sale", 50)],
        [0] * 10 + [20] * 2 + [50] * 2 + [20] * 4 + [0] * 6,
    ),
    "smaller_starts_first": (
        [(10, 14, "flash_sale", 20), (12, 18, "seasonal_sale", 50)],
        [0] * 10 + [20] * 2 + [50] * 6 + [0] * 6,
    ),
    "larger_starts_first": (
        [(10, 14, "seasonal_sale", 50), (12, 18, "flash_sale", 20)],
        [0] * 10 + [50] * 4 + [20] * 4 + [0] * 6,
    ),
}


@pytest.mark.parametrize(("sales", "discounts"), list(OVERLAPS.values()), ids=list(OVERLAPS))
def test_overlapping_sales_take_the_larger_discount(
    sales: list[tuple[int, int, str, int]], discounts: list[int]
) -> None:
    stamps = _hours(DAY, 24)
    events = _events(
        *[(f"{DAY} {a:02d}:00", f"{DAY} {b:02d}:00", kind, pct) for a, b, kind, pct in sales]
    )

    sale = features.sale_features(stamps, events, KINDS)

    assert sale[FutureFeatures.sale_discount].tolist() == [float(d) for d in discounts]
    assert sale[FutureFeatures.sale_active].tolist() == [int(d > 0) for d in discounts]
    # Kind and hours since start follow the sale whose discount describes the hour.
    for hour, discount in enumerate(discounts):
        if discount == 0:
            continue
        start, _, kind, _ = next(s for s in sales if s[3] == discount and s[0] <= hour < s[1])
        row = sale.iloc[hour]
        assert row[SALE_KIND_PREFIX + kind] == 1
        assert row[[SALE_KIND_PREFIX + k for k in KINDS]].sum() == 1
        assert row[FutureFeatures.sale_hours_since_start] == hour - start


# ---------------------------------------------------------------- whole frames


def test_target_lag_168_is_last_week_in_history_and_horizon() -> None:
    target = np.arange(400.0) * 3 + 7  # distinct values: any misalignment shows
    inputs = features.build_features(
        _traffic(target), None, KINDS, FeaturesConfig(horizon=168, holidays="none")
    )

    history_lag = inputs.history[FutureFeatures.target_lag_168].to_numpy()
    future_lag = inputs.future[FutureFeatures.target_lag_168].to_numpy()
    assert history_lag[168:].tolist() == target[:-168].tolist()
    # The first week has no week before it: it repeats itself ("no change from last week").
    assert history_lag[:168].tolist() == target[:168].tolist()
    assert future_lag.tolist() == target[-168:].tolist()


@pytest.mark.parametrize("horizon", [1, 24, 168], ids=["one_hour", "one_day", "one_week"])
def test_future_frame_starts_after_the_last_hour(horizon: int) -> None:
    traffic = _traffic(np.full(200, 10.0), start="2024-02-27 05:00")
    last = traffic["timestamp"].iloc[-1]

    future = features.build_features(traffic, None, KINDS, FeaturesConfig(horizon=horizon)).future

    assert len(future) == horizon
    expected = pd.date_range(last + pd.Timedelta(hours=1), periods=horizon, freq="h")
    assert pd.DatetimeIndex(future["timestamp"]).equals(expected)


def test_without_a_sale_calendar_every_hour_is_off_sale() -> None:
    inputs = features.build_features(
        _traffic(np.full(200, 10.0)), None, KINDS, FeaturesConfig(horizon=24)
    )

    for frame in (inputs.history, inputs.future):
        assert (frame[FutureFeatures.sale_active] == 0).all()
        assert set(KINDS) == {
            c.removeprefix(SALE_KIND_PREFIX) for c in frame if c.startswith(SALE_KIND_PREFIX)
        }


def test_event_flags_are_features_and_0_in_the_horizon() -> None:
    traffic = _traffic(np.full(2 * 168, 10.0))
    traffic["event__promo"] = pd.array(np.arange(len(traffic)) % 24 == 12, dtype="Int64")
    inputs = features.build_features(traffic, None, [], FeaturesConfig(horizon=24))
    columns = features.exogenous_columns(inputs.history)
    assert columns[-1] == "event__promo"
    # Trained and forecast with the same features, in the same order.
    assert features.exogenous_columns(inputs.future) == columns
    assert inputs.history["event__promo"].sum() == 14
    assert inputs.future["event__promo"].eq(0).all()
    served = features.features_after(
        _hours("2024-01-15", 3),
        inputs.history.set_index("timestamp")["target"],
        None,
        [],
        "us_federal",
        events=["event__promo"],
    )
    assert features.exogenous_columns(served) == columns
    assert served["event__promo"].eq(0).all()
