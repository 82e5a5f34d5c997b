"""Drift and decay on constructed series: each check can fail, and data vs concept drift differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.core.config import MonitorConfig
from traffic_forecast.monitor import drift

CFG = MonitorConfig()
HOURS = 4 * 168


def _pattern(start: str, hours: int = HOURS, level: float = 1000.0, shift: int = 0) -> pd.Series:
    stamps = pd.date_range(start, periods=hours, freq="h")
    hour_of_week = (stamps.dayofweek * 24 + stamps.hour + shift) % 168
    shape = 1 + 0.5 * np.sin(2 * np.pi * hour_of_week / 24) + 0.2 * (hour_of_week // 24 >= 5)
    return pd.Series(level * shape, index=stamps)


def _noisy(series: pd.Series, seed: int, sigma: float = 0.03) -> pd.Series:
    noise = np.random.default_rng(seed).normal(0, sigma, len(series))
    return series * np.exp(noise)


def _forecast(series: pd.Series, band: float = 0.15) -> pd.DataFrame:
    return pd.DataFrame(
        {"value": series, "lower": series * (1 - band), "upper": series * (1 + band)}
    )


REFERENCE = _noisy(_pattern("2025-06-02"), 1)


def _verdict(recent: pd.Series, forecast: pd.DataFrame) -> drift.Verdict:
    data = [drift.level_check(REFERENCE, recent, CFG), drift.profile_check(REFERENCE, recent, CFG)]
    kinds, new = drift.kinds_check(["flash_sale"], ["flash_sale"])
    measured = drift.quality(forecast, recent)
    checks = drift.quality_checks(measured, backtest_mae=20.0, nominal=0.9, cfg=CFG)
    return drift.decide([*data, kinds], checks, measured, new, cadence_due=False)


def test_the_same_process_later_is_neither_drift_nor_decay() -> None:
    recent = _noisy(_pattern("2025-06-30"), 2)
    verdict = _verdict(recent, _forecast(_pattern("2025-06-30")))
    assert verdict.breached == [], [c.text for c in verdict.breached]
    assert (verdict.data_drift, verdict.degraded, verdict.concept_drift) == (False, False, False)
    assert verdict.retrain is False


def test_a_level_shift_is_data_drift_and_the_error_follows() -> None:
    recent = _noisy(_pattern("2025-06-30", level=1350.0), 2)
    verdict = _verdict(recent, _forecast(_pattern("2025-06-30")))
    assert {c.name for c in verdict.breached} >= {"level", "error"}
    assert (verdict.data_drift, verdict.degraded, verdict.concept_drift) == (True, True, False)
    assert verdict.headline().startswith("🔴 Data drift")


def test_a_wrong_model_on_unchanged_inputs_is_concept_drift() -> None:
    recent = _noisy(_pattern("2025-06-30"), 2)
    wrong = _forecast(_pattern("2025-06-30", shift=12))  # the daily cycle, half a day off
    verdict = _verdict(recent, wrong)
    assert {c.name for c in verdict.breached} == {"error", "coverage"}
    assert (verdict.data_drift, verdict.degraded, verdict.concept_drift) == (False, True, True)
    assert verdict.headline().startswith("🔴 Concept drift")
    assert verdict.retrain is True


def test_a_changed_weekly_profile_is_data_drift_even_at_the_same_level() -> None:
    recent = _noisy(_pattern("2025-06-30", shift=36), 2)  # days a day and a half off
    check = drift.profile_check(REFERENCE, recent, CFG)
    assert check.breached, check.text
    assert not drift.level_check(REFERENCE, recent, CFG).breached


def test_new_sale_kinds_and_capacity_changes() -> None:
    check, new = drift.kinds_check(["flash_sale"], ["flash_sale", "live_stream"])
    assert (check.breached, new) == (True, ["live_stream"])
    assert drift.capacity_check(20_000.0, 18_000.0, CFG).breached  # type: ignore[union-attr]
    assert not drift.capacity_check(20_000.0, 19_500.0, CFG).breached  # type: ignore[union-attr]
    assert drift.capacity_check(None, 18_000.0, CFG) is None


def test_quality_counts_only_hours_with_actuals() -> None:
    actuals = pd.Series(
        [100.0, 110.0, 90.0], index=pd.date_range("2025-07-01", periods=3, freq="h")
    )
    forecast = _forecast(
        pd.Series(100.0, index=pd.date_range("2025-07-01 01:00", periods=5, freq="h")), 0.05
    )
    measured = drift.quality(forecast, actuals)
    assert measured.hours == 2
    assert measured.mae == pytest.approx(10.0)
    assert measured.coverage == pytest.approx(0.0)
    assert measured.by_day == [{"day": "2025-07-01", "mae": pytest.approx(10.0), "hours": 2}]
    assert drift.quality(forecast, actuals.iloc[:1]).hours == 0


def test_quality_waits_for_enough_hours() -> None:
    measured = drift.Quality(hours=5, mae=1e9, mape=100.0, coverage=0.0)
    assert drift.quality_checks(measured, 1.0, 0.9, CFG) == []


def test_the_cadence_alone_proposes_a_retrain_without_a_breach() -> None:
    measured = drift.Quality(0, None, None, None)
    verdict = drift.decide([], [], measured, [], cadence_due=True)
    assert verdict.retrain
    assert not verdict.breached
    assert verdict.reasons == ["the retraining cadence is due"]
