"""The rule's error rates on simulated experiments, and the log path against the fast path.

The simulated errors (``experiment/simulate.py``) persist for hours, are shared in part by both
arms and grow with the step. The design is the declared one (``conf/experiment``): under those
errors its 14 weeks give a 10 % better challenger 80 % power, where 28 days give about 40 %
(recorded here and in ``benchmarks/experiment.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from traffic_forecast.core.settings import load_config
from traffic_forecast.experiment.analysis import CONTINUE, PROMOTE, analyse, decide
from traffic_forecast.experiment.simulate import (
    ErrorModel,
    run_decision,
    run_experiments,
    simulate_errors,
    to_log,
)

RUNS = 200
CFG = load_config([]).experiment  # the declared design: what the workflow really looks with
FOUR_WEEKS = dataclasses.replace(CFG, max_days=28)


def test_equal_models_are_promoted_at_most_alpha_of_the_time() -> None:
    summary = run_experiments(RUNS, 1.0, CFG, seed=1)
    # the 99 % one-sided binomial bound: more would be a miscalibrated rule, not bad luck
    allowed = stats.binom.ppf(0.99, RUNS, CFG.alpha)
    assert summary.promotions <= allowed, f"{summary.promotions} false promotions of {RUNS}"
    assert set(summary.decisions) <= {PROMOTE, "keep champion"}
    assert min(summary.days) >= CFG.min_days
    assert max(summary.days) <= CFG.max_days


def test_a_ten_percent_better_challenger_at_max_days_28() -> None:
    summary = run_experiments(RUNS, 0.9, FOUR_WEEKS, seed=2)
    print(
        f"power at 28 days: {summary.promotion_rate:.0%}, median days to promotion "
        f"{summary.days_quantile(0.5, PROMOTE)}"
    )
    # Measured ~42 %: the 80 % target needs the longer declared design (below), said in README.
    assert 0.3 <= summary.promotion_rate < 0.8


def test_a_ten_percent_better_challenger_is_promoted_within_the_declared_duration() -> None:
    summary = run_experiments(RUNS, 0.9, CFG, seed=3)
    median = summary.days_quantile(0.5, PROMOTE)
    print(f"power at {CFG.max_days} days: {summary.promotion_rate:.0%}, median {median}")
    assert summary.promotion_rate >= 0.8
    assert median is not None
    assert median < CFG.max_days


def test_a_clearly_better_challenger_is_promoted_within_28_days() -> None:
    summary = run_experiments(RUNS, 0.8, FOUR_WEEKS, seed=4)
    assert summary.promotion_rate >= 0.8


def test_the_analysis_of_the_log_decides_as_the_fast_path() -> None:
    sim = simulate_errors(1, 0.8, CFG, np.random.default_rng(5), ErrorModel())[0]
    outcome = run_decision(sim.daily_differentials(), CFG)
    entries, actuals, experiment = to_log(sim, CFG, start="2025-03-03T00:00")
    start = pd.Timestamp("2025-03-03T00:00")
    for day in (outcome.day - 1, outcome.day):
        # the actuals known at that look: every hour forecast from the day's last origin
        known = actuals[: start + pd.Timedelta(hours=day * 24 + CFG.horizon - 2)]
        result = analyse(entries, known, experiment, CFG)
        assert result.scored_origins == day * 24
        fast = decide(sim.daily_differentials()[:day], float(day), CFG)
        assert result.verdict.decision == fast.decision
        assert result.verdict.test is not None
        assert fast.test is not None
        assert result.verdict.test.z == pytest.approx(fast.test.z, rel=1e-9)
    assert result.verdict.decision == outcome.decision != CONTINUE
    assert result.verdict.days == outcome.day
    assert result.scale.value is not None
