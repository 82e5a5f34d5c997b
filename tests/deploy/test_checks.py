"""The deploy gates' verdicts, on hand-made answers, actuals and access-log lines."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from traffic_forecast.core.config import CanaryConfig, ValidationGateConfig
from traffic_forecast.deploy.checks import (
    canary_verdict,
    shadow_difference,
    smoke_problems,
    validation_verdict,
)

MODEL = "traffic-forecast:v2"
HOURS = pd.date_range("2025-07-01", periods=24, freq="h")


def _forecast(**changes: Any) -> dict[str, Any]:
    hours = [
        {"timestamp": f"{t:%Y-%m-%dT%H:%M:%S}", "value": 100.0 + i, "lower": 90.0, "upper": 150.0}
        for i, t in enumerate(HOURS)
    ]
    return {"forecast": hours, "fallback": False, "fallback_reason": None, **changes}


def _answer(body: dict[str, Any], status: int = 200, model: str = MODEL) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"x-model-version": model})


CAPACITY = _answer({"peak_instances": 3})


def test_a_well_formed_pair_passes() -> None:
    assert smoke_problems(_answer(_forecast()), CAPACITY, MODEL, 24) == []


@pytest.mark.parametrize(
    ("forecast", "capacity", "expected"),
    [
        (
            _answer(_forecast(), model="traffic-forecast:v1"),
            CAPACITY,
            "came from traffic-forecast:v1",
        ),
        (_answer(_forecast(), 503), CAPACITY, "forecast answered 503"),
        (
            _answer(_forecast()),
            _answer({"error": "no capacity data"}, 503),
            "capacity answered 503",
        ),
        (_answer(_forecast(forecast=_forecast()["forecast"][:23])), CAPACITY, "has 23 hours"),
        (
            _answer(_forecast(fallback=True, fallback_reason="budget")),
            CAPACITY,
            "the fallback answered",
        ),
        (
            _answer(_forecast(forecast=[{**h, "lower": 200.0} for h in _forecast()["forecast"]])),
            CAPACITY,
            "lower ≤ value ≤ upper",
        ),
        (
            _answer(_forecast(forecast=_forecast()["forecast"][::2] * 2)),
            CAPACITY,
            "not consecutive",
        ),
    ],
    ids=[
        "other-model",
        "forecast-503",
        "capacity-503",
        "short",
        "fallback",
        "inverted-band",
        "gaps",
    ],
)
def test_each_smoke_problem_is_named(
    forecast: httpx.Response, capacity: httpx.Response, expected: str
) -> None:
    problems = smoke_problems(forecast, capacity, MODEL, 24)
    assert any(expected in p for p in problems), problems


GATE = ValidationGateConfig(hours=168, tolerance_pct=5.0)
ACTUALS = pd.Series(np.full(24, 100.0), index=HOURS)


def test_the_gate_passes_within_tolerance_and_fails_beyond() -> None:
    live = pd.Series(np.full(24, 110.0), index=HOURS)  # MAE 10
    assert validation_verdict(
        pd.Series(np.full(24, 110.4), index=HOURS), live, ACTUALS, GATE
    ).passed
    failed = validation_verdict(pd.Series(np.full(24, 111.0), index=HOURS), live, ACTUALS, GATE)
    assert not failed.passed
    assert (failed.new_mae, failed.live_mae, failed.hours) == (
        pytest.approx(11.0),
        pytest.approx(10.0),
        24,
    )
    assert "limit 10" in failed.text


def test_the_gate_scores_only_the_most_recent_common_hours() -> None:
    live = pd.Series(np.full(24, 100.0), index=HOURS)
    new = pd.Series(np.r_[np.full(12, 500.0), np.full(12, 100.0)], index=HOURS)  # bad early
    verdict = validation_verdict(new, live, ACTUALS, ValidationGateConfig(hours=12))
    assert verdict.passed
    assert verdict.hours == 12


def test_without_a_live_model_or_actuals_the_gate_passes_unless_actuals_are_required() -> None:
    new = pd.Series(np.full(24, 100.0), index=HOURS)
    assert validation_verdict(new, None, None, GATE).passed
    assert validation_verdict(new, new, None, GATE).passed
    assert not validation_verdict(new, new, None, ValidationGateConfig(required=True)).passed
    later = pd.Series([1.0], index=[pd.Timestamp("2030-01-01")])
    assert not validation_verdict(new, new, later, ValidationGateConfig(required=True)).passed


def _log(status: int, seconds: float, upstream: str, at: float) -> str:
    return json.dumps(
        {"time": at, "status": status, "upstream": upstream, "request_ms": seconds * 1000}
    )


GREEN, BLUE = "127.0.0.1:3002", "127.0.0.1:3001"


def test_the_canary_judges_only_the_new_colour_after_the_step_began() -> None:
    lines = [_log(502, 0.5, GREEN, 99.0)]  # before the step: not counted
    lines += [_log(200, 0.01, GREEN, 100.0 + i) for i in range(99)] + [_log(500, 0.01, BLUE, 101)]
    verdict = canary_verdict(lines, GREEN, since=100.0, cfg=CanaryConfig(max_error_rate=0.0))
    assert verdict.passed, verdict.text
    assert verdict.requests == 99


def test_the_canary_aborts_on_errors_or_latency() -> None:
    errors = [_log(502 if i % 10 == 0 else 200, 0.01, GREEN, 100.0) for i in range(100)]
    assert not canary_verdict(errors, GREEN, 100.0, CanaryConfig(max_error_rate=0.05)).passed
    slow = [_log(200, 0.8, GREEN, 100.0) for _ in range(10)]
    assert not canary_verdict(slow, GREEN, 100.0, CanaryConfig(max_p99_ms=500)).passed
    assert not canary_verdict([], GREEN, 100.0, CanaryConfig(min_requests=5)).passed
    assert canary_verdict([], GREEN, 100.0, CanaryConfig(min_requests=0)).passed


def test_the_shadow_difference_is_mean_relative() -> None:
    live = pd.Series([100.0, 200.0], index=HOURS[:2])
    assert shadow_difference(pd.Series([110.0, 180.0], index=HOURS[:2]), live) == pytest.approx(
        10.0
    )
    assert shadow_difference(pd.Series([1.0], index=HOURS[5:6]), live) == float("inf")
