"""The analysis of logged answers: pairing, exclusions, errors, MASE scale and every decision."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.experiment.analysis import (
    CONTINUE,
    KEEP,
    PROMOTE,
    analyse,
    decide,
    paired_errors,
)
from traffic_forecast.experiment.record import ENDED, Arm, Experiment

CFG = ExperimentConfig(horizon=3, min_days=1, max_days=3, scale_weeks=1, season=24)
START = pd.Timestamp("2025-03-03")
# y_t = t (hours since the first actual): the seasonal naive (24 h) is off by exactly 24.
HOURS = pd.date_range(START - pd.Timedelta(hours=24 * 8), START + pd.Timedelta(hours=96), freq="h")
ACTUALS = pd.Series(np.arange(len(HOURS), dtype=float), index=HOURS)


def _experiment(**changes: Any) -> Experiment:
    base = Experiment(
        id="exp-1",
        mode="shadow",
        share=0.5,
        client_header="X-Client-Id",
        champion=Arm("blue", "tf:champ", "model:champ"),
        challenger=Arm("green", "tf:chall", "model:chall"),
        started_at=START.timestamp(),
    )
    return dataclasses.replace(base, **changes)


def _entry(arm: str, at: pd.Timestamp, error: float, **changes: Any) -> dict[str, Any]:
    truth = ACTUALS.reindex(pd.date_range(at, periods=CFG.horizon, freq="h")).fillna(0.0)
    entry = {
        "model_version": f"model:{arm[:5]}",
        "origin": at.isoformat(),
        "value": (truth + error).tolist(),
        "lower": truth.tolist(),
        "upper": truth.tolist(),
        "coverage": 0.9,
        "what_if": False,
        "fallback": False,
        "time": at.isoformat(),
        "experiment": "exp-1",
        "arm": arm,
    }
    return entry | changes


def _both(origin: pd.Timestamp, champion: float, challenger: float) -> list[dict[str, Any]]:
    return [_entry("champion", origin, champion), _entry("challenger", origin, challenger)]


def test_pairing_keeps_the_experiments_default_answers_one_per_arm_and_origin() -> None:
    o1, o2, o3 = (START + pd.Timedelta(hours=h) for h in range(3))
    entries = [
        *_both(o1, 9.0, 9.0),  # superseded: a later answer from the same origin wins
        *_both(o1, 2.0, 1.0),
        _entry("challenger", o1, 50.0, value=[0.0]),  # later but shorter: not kept
        _entry("champion", o1, 70.0, what_if=True),
        _entry("champion", o1, 70.0, fallback=True),
        _entry("champion", o1, 70.0, experiment="exp-0"),
        _entry("champion", o2, 4.0),  # the challenger never answered from o2: not scored
        # +00:00 and naive origins are the same hour
        _entry("champion", o3, -3.0, origin=o3.isoformat() + "+00:00"),
        _entry("challenger", o3, 1.0),
    ]
    paired = paired_errors(entries, ACTUALS, "exp-1", CFG.horizon)
    assert sorted(paired["origin"].unique()) == [o1, o3]
    assert list(paired["step"]) == [1, 2, 3, 1, 2, 3]
    np.testing.assert_allclose(paired["error_champion"], [2, 2, 2, -3, -3, -3])
    np.testing.assert_allclose(paired["error_challenger"], [1, 1, 1, 1, 1, 1])
    result = analyse(entries, ACTUALS, _experiment(), CFG)
    assert result.champion.answers == 4  # o1 twice, o2, o3: what-if, fallback, exp-0 left out
    assert result.challenger.answers == 4  # o1 three times, o3
    assert (result.champion.origins, result.champion.scored_origins) == (3, 2)
    assert result.champion.mae == pytest.approx(2.5)
    assert result.challenger.mae == pytest.approx(1.0)
    assert result.champion.models_logged == ("model:champ",)


def test_an_answer_counts_only_for_the_arm_whose_model_made_it() -> None:
    origin = START
    # The challenger was down: HAProxy passed its client to the champion, which logged the
    # answer under the arm the router had chosen.
    stray = _entry("challenger", origin, 0.0, model_version="model:champ")
    result = analyse([_entry("champion", origin, 2.0), stray], ACTUALS, _experiment(), CFG)
    assert result.scored_origins == 0
    assert (result.champion.answers, result.challenger.answers) == (1, 0)


def test_origins_without_every_actual_or_a_full_horizon_are_not_scored() -> None:
    late = ACTUALS.index[-2]  # its last two steps have no actual yet
    short = START + pd.Timedelta(hours=5)
    entries = [
        *_both(late, 1.0, 1.0),
        _entry("champion", short, 1.0, value=[1.0, 2.0]),
        _entry("challenger", short, 1.0),
    ]
    assert paired_errors(entries, ACTUALS, "exp-1", CFG.horizon).empty
    result = analyse(entries, ACTUALS, _experiment(), CFG)
    assert result.scored_origins == 0
    assert result.verdict.decision == CONTINUE
    assert result.champion.mae is None


def test_mase_is_scaled_by_the_seasonal_naive_of_the_weeks_before_the_first_origin() -> None:
    entries = [*_both(START, 12.0, 6.0), *_both(START + pd.Timedelta(hours=1), 12.0, 6.0)]
    result = analyse(entries, ACTUALS, _experiment(), CFG)
    assert result.scale.value == pytest.approx(24.0)
    assert result.scale.hours == 7 * 24
    assert result.scale.end == (START - pd.Timedelta(hours=1)).isoformat()
    assert result.champion.mase == pytest.approx(0.5)
    assert result.challenger.mase_by_step == pytest.approx((0.25, 0.25, 0.25))


def _days(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=float)


NOISY_UP = [1.0, 1.2, 0.9, 1.1, 1.05, 0.95]
NOISY_FLAT = [0.3, -0.4, 0.2, -0.1, 0.25, -0.3]


@pytest.mark.parametrize(
    ("daily", "days", "breach", "decision", "reason"),
    [
        (NOISY_UP, 6.0, "p99 620 ms > 500 ms", KEEP, "guardrail"),
        (NOISY_UP, 5.5, None, CONTINUE, "fewer than min_days"),
        (NOISY_UP, 6.0, None, PROMOTE, "challenger better"),
        ([-v for v in NOISY_UP], 6.0, None, KEEP, "challenger worse"),
        (NOISY_FLAT, 6.0, None, CONTINUE, "not yet decided"),
        (NOISY_FLAT, 12.0, None, KEEP, "no promotion by max_days"),
    ],
    ids=["breach", "too-early", "promote", "worse", "undecided", "max-days"],
)
def test_every_branch_of_the_rule(
    daily: list[float], days: float, breach: str | None, decision: str, reason: str
) -> None:
    cfg = ExperimentConfig(min_days=6, max_days=12)
    verdict = decide(_days(daily), days, cfg, breach)
    assert verdict.decision == decision
    assert reason in verdict.reason


def test_a_breach_recorded_on_the_experiment_keeps_the_champion() -> None:
    entries = _both(START, 5.0, 1.0)
    breach = {"check": "p99_ms", "value": 812.0}
    ended = _experiment(status=ENDED, breach=breach, end_reason="p99 812 ms > 500 ms")
    result = analyse(entries, ACTUALS, ended, CFG)
    assert result.verdict.decision == KEEP
    assert "p99 812 ms" in result.verdict.reason
    assert "breached" in result.guardrail


def test_the_interval_excludes_zero_exactly_when_the_rule_promotes() -> None:
    hours = [START + pd.Timedelta(hours=h) for h in range(3 * 24)]
    rng = np.random.default_rng(3)
    entries = [e for h in hours for e in _both(h, 10.0 + rng.normal(), 1.0 + rng.normal())]
    result = analyse(entries, ACTUALS, _experiment(), CFG)
    assert result.verdict.decision == PROMOTE
    low, difference, high = result.ci_low, result.mae_difference, result.ci_high
    assert low is not None
    assert difference is not None
    assert high is not None
    assert low < difference < high < 0
    assert result.mae_difference == pytest.approx(-9.0, abs=0.5)


def test_as_json_is_plain_and_deterministic() -> None:
    entries = [*_both(START, 2.0, 1.0), *_both(START + pd.Timedelta(hours=1), 3.0, 1.0)]
    first = analyse(entries, ACTUALS, _experiment(), CFG).as_json()
    again = analyse(list(entries), ACTUALS, _experiment(), CFG).as_json()
    text = json.dumps(first, sort_keys=True, allow_nan=False)
    assert text == json.dumps(again, sort_keys=True, allow_nan=False)
    assert first["verdict"]["decision"] == CONTINUE
    assert first["settings"]["alpha"] == CFG.alpha
