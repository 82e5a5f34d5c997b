"""Filling missing hours (``data.fill_gaps``): each method's values, what is recorded, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.data.gaps import fill_missing_hours

WEEK = 168
START = pd.Timestamp("2024-01-01")  # a Monday


def _traffic(
    weeks: int, drop: list[int], flags: dict[str, list[int]] | None = None
) -> pd.DataFrame:
    """``weeks`` of hours whose target is the hour's position: a filled value names its source."""
    stamps = pd.date_range(START, periods=weeks * WEEK, freq="h")
    frame = pd.DataFrame({"timestamp": stamps, "target": np.arange(len(stamps), dtype=float)})
    for name, days in (flags or {}).items():
        day = (stamps - START).days
        frame["event__" + name] = pd.array(np.isin(day, days).astype(int), dtype="Int64")
    return frame.drop(index=drop).reset_index(drop=True)


def _at(frame: pd.DataFrame, positions: list[int]) -> list[float]:
    return frame["target"].iloc[positions].tolist()


# Gaps right after the first hour, in the middle (two hours), right before the last hour.
GAPS = [1, 200, 201, 3 * WEEK - 2]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("zero", [0.0, 0.0, 0.0, 0.0]),
        # Linear between the neighbours: the target is the position, so the line gives it back.
        ("interpolate", [1.0, 200.0, 201.0, 3 * WEEK - 2.0]),
        # A week earlier where there is one; hour 1 has none, so it takes the week after.
        ("seasonal", [1.0 + WEEK, 200.0 - WEEK, 201.0 - WEEK, 2 * WEEK - 2.0]),
    ],
    ids=["zero", "interpolate", "seasonal"],
)
def test_each_method_fills_gaps_at_the_start_middle_and_end(
    method: str, expected: list[float]
) -> None:
    filled = fill_missing_hours(_traffic(3, GAPS), method)
    assert len(filled.frame) == 3 * WEEK
    assert filled.frame["timestamp"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
    assert _at(filled.frame, GAPS) == expected
    untouched = [0, 2, 199, 202, 3 * WEEK - 1]
    assert _at(filled.frame, untouched) == [float(p) for p in untouched]
    assert filled.fill is not None
    record = filled.fill.to_json()
    assert record["method"] == method
    assert record["hours"] == len(GAPS)
    assert record["first"] == "2024-01-01 01:00"
    assert record["last"] == f"{START + pd.Timedelta(hours=3 * WEEK - 2):%Y-%m-%d %H:%M}"


def test_seasonal_skips_a_missing_week_before_and_counts_the_later_weeks_it_used() -> None:
    # Hour 2·168+7 is missing, and so is the same hour a week before: it takes two weeks back.
    # Hour 5 has no earlier week and a week later is missing too: it takes two weeks later;
    # so does hour 168+5, whose only earlier week (hour 5) is missing.
    drop = [5, 7 + WEEK, WEEK + 5, 7 + 2 * WEEK]
    filled = fill_missing_hours(_traffic(4, drop), "seasonal")
    assert _at(filled.frame, drop) == [2.0 * WEEK + 5, 7.0, 2.0 * WEEK + 5, 7.0]
    assert filled.fill is not None
    assert filled.fill.hours == 4
    assert filled.fill.from_later_week == 2
    assert "2 of them from a later week" in filled.fill.note("t.csv", "sessions")


def test_seasonal_refuses_an_hour_that_no_week_holds() -> None:
    drop = [10, WEEK + 10, 2 * WEEK + 10, 50]  # hour 10 of the week is missing in every week
    filled = fill_missing_hours(_traffic(3, drop), "seasonal")
    assert filled.fill is None
    assert list(filled.unfillable) == [START + pd.Timedelta(hours=h) for h in drop[:3]]


def test_nothing_missing_is_nothing_filled() -> None:
    traffic = _traffic(2, [])
    filled = fill_missing_hours(traffic, "seasonal")
    assert filled.fill is None
    assert filled.frame is traffic


def test_filled_hours_take_their_days_event_flag_and_a_missing_day_gets_0() -> None:
    # Day 2 is a holiday with hour 30 missing; day 9 (hours 216-239) is missing whole.
    whole_day = list(range(9 * 24, 10 * 24))
    filled = fill_missing_hours(_traffic(2, [30, *whole_day], {"holiday": [1, 9]}), "zero")
    flags = filled.frame["event__holiday"]
    assert flags.iloc[30] == 1
    assert flags.iloc[whole_day].eq(0).all()
    assert flags.notna().all()
    assert filled.fill is not None
    assert filled.fill.to_json()["event_flags_set_to_0"] == 24
    assert "24 of them on days with no observed hour" in filled.fill.note("t.csv", "sessions")
