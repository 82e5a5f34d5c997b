"""Which served forecast each hour is scored with, on prediction-log entries built here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.monitor import served

TAG = "traffic_forecast:abc"
START = pd.Timestamp("2024-02-12 00:00")
HOUR = pd.Timedelta(hours=1)


def _answer(origin: pd.Timestamp, values: list[float], **fields: Any) -> dict[str, Any]:
    """One line as the service logs a default answer (`serving.service`'s fields)."""
    hours = len(values)
    return {
        "model_version": TAG,
        "endpoint": "forecast",
        "request": {"horizon": hours, "coverage": None, "events": []},
        "origin": origin.isoformat(),
        "last_observed": (origin - HOUR).isoformat(),
        "what_if": False,
        "fallback": False,
        "fallback_reason": None,
        "coverage": 0.9,
        "value": values,
        "lower": [v * 0.9 for v in values],
        "upper": [v * 1.1 for v in values],
    } | fields


def _hourly(entries: list[dict[str, Any]]) -> pd.DataFrame:
    return served.per_hour(served.default_answers(entries, TAG, 0.9))


def test_an_hour_covered_by_two_origins_takes_the_newer_ones_forecast() -> None:
    later = START + 24 * HOUR
    entries = [
        _answer(later, [2.0] * 48),  # logged first: order does not decide between origins
        _answer(START, [1.0] * 48),
    ]
    hourly = _hourly(entries)
    assert hourly.index.equals(pd.date_range(START, periods=72, freq="h"))
    assert hourly["value"].tolist() == [1.0] * 24 + [2.0] * 48
    assert hourly["origin"].tolist() == [START] * 24 + [later] * 48
    np.testing.assert_allclose(hourly["upper"], hourly["value"] * 1.1)


def test_what_ifs_fallbacks_and_other_models_are_not_what_was_served_by_default() -> None:
    newer = START + 2 * HOUR
    entries = [
        _answer(START, [1.0] * 6),
        _answer(newer, [5.0] * 6, what_if=True),
        _answer(newer, [6.0] * 6, fallback=True),
        _answer(newer, [7.0] * 6, model_version="traffic_forecast:other"),
    ]
    assert _hourly(entries)["value"].tolist() == [1.0] * 6


def test_within_one_origin_the_default_coverage_then_the_last_logged_answer_wins() -> None:
    entries = [
        _answer(START, [1.0] * 4),
        _answer(START, [3.0] * 2, coverage=0.5),  # asked at another coverage, logged later
        _answer(START, [2.0] * 2),  # a correction re-served at the same origin, shorter
    ]
    hourly = _hourly(entries)
    assert hourly["value"].tolist() == [2.0, 2.0, 1.0, 1.0]
    only_other = _hourly([_answer(START, [3.0] * 2, coverage=0.5)])
    assert only_other["coverage"].tolist() == [0.5, 0.5]


def _brute_force(entries: list[dict[str, Any]]) -> dict[pd.Timestamp, float]:
    """The rule, one answer and one hour at a time: newest origin, default coverage, last."""
    best: dict[pd.Timestamp, tuple[tuple[pd.Timestamp, bool, int], float]] = {}
    for order, entry in enumerate(entries):
        if entry["model_version"] != TAG or entry["what_if"] or entry["fallback"]:
            continue
        origin = pd.Timestamp(entry["origin"])
        key = (origin, entry["coverage"] == 0.9, order)
        for ahead, value in enumerate(entry["value"]):
            hour = origin + ahead * HOUR
            if hour not in best or key > best[hour][0]:
                best[hour] = (key, value)
    return {hour: value for hour, (_, value) in best.items()}


def test_many_answers_give_what_the_rule_gives_hour_by_hour() -> None:
    rng = np.random.default_rng(7)
    entries = [
        _answer(
            START + int(rng.integers(0, 48)) * HOUR,
            [float(v) for v in rng.integers(0, 1000, int(rng.integers(1, 30)))],
            coverage=float(rng.choice([0.9, 0.8])),
            what_if=bool(rng.random() < 0.1),
        )
        for _ in range(2000)
    ]
    hourly = _hourly(entries)
    expected = _brute_force(entries)
    assert hourly.index.is_monotonic_increasing
    assert dict(zip(hourly.index, hourly["value"], strict=True)) == expected


def test_no_default_answer_of_the_model_leaves_nothing_to_score() -> None:
    assert served.default_answers([], TAG, 0.9).empty
    what_if_only = [_answer(START, [1.0] * 3, what_if=True)]
    assert served.default_answers(what_if_only, TAG, 0.9).empty


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-02-12T05:00:00", "2024-02-12 05:00"),
        ("2024-02-12T05:00:00+00:00", "2024-02-12 05:00"),
    ],
    ids=["naive", "utc-offset"],
)
def test_origins_are_read_as_naive_hours(stamp: str, expected: str) -> None:
    entry = _answer(START, [1.0]) | {"origin": stamp}
    hourly = _hourly([entry])
    assert hourly.index.tolist() == [pd.Timestamp(expected)]
