"""The served model following the store: new hours, corrections, gaps, old hours, a lost store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.data.observations import Batch, check_batch
from traffic_forecast.data.store import ObservationStore
from traffic_forecast.serving.artifacts import ModelArtifacts
from traffic_forecast.serving.engine import ForecastEngine
from traffic_forecast.serving.live import Actuals, Freshness, LiveModel, freshness

HOUR = pd.Timedelta(hours=1)
NOW = pd.Timestamp("2030-01-01")  # after every simulated hour: nothing is "in the future"


@pytest.fixture(scope="module")
def packaged_engine(loaded: ModelArtifacts) -> ForecastEngine:
    return ForecastEngine(loaded)


def _batch(start: pd.Timestamp, hours: int, level: float = 1000.0) -> Batch:
    stamps = pd.date_range(start, periods=hours, freq="h")
    text = pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S"),
            "target": [str(level + i) for i in range(hours)],
        }
    )
    return check_batch(text, "test", now=NOW, max_future_hours=1)


class Recorder:
    """What a service does with each new state: keeps them."""

    def __init__(self) -> None:
        self.swaps: list[tuple[ForecastEngine, Freshness]] = []

    def __call__(self, engine: ForecastEngine, judged: Freshness) -> None:
        """Keep one."""
        self.swaps.append((engine, judged))


@pytest.fixture
def store(tmp_path: Path) -> ObservationStore:
    return ObservationStore(f"sqlite:///{tmp_path / 'observations.db'}")


def _live(engine: ForecastEngine, store: ObservationStore, swaps: Recorder) -> LiveModel:
    live = LiveModel(engine, store.url, max_age_hours=3, poll_s=60, swap=swaps, clock=lambda: NOW)
    live.refresh()
    return live


def test_new_hours_move_the_origin_and_a_new_state_is_published(
    packaged_engine: ForecastEngine, store: ObservationStore
) -> None:
    swaps = Recorder()
    live = _live(packaged_engine, store, swaps)
    store.write(_batch(packaged_engine.origin, 5))
    assert live.refresh() is True
    assert live.engine.origin == packaged_engine.origin + 5 * HOUR
    published, judged = swaps.swaps[-1]
    assert published is live.engine
    assert judged.last_observed == packaged_engine.origin + 4 * HOUR
    assert live.refresh() is False  # nothing new: nothing moves, nothing swapped
    assert swaps.swaps[-1][0] is published


def test_a_second_reader_starts_current(
    packaged_engine: ForecastEngine, store: ObservationStore
) -> None:
    """Blue and green read one store: a colour started later forecasts from the same hour."""
    first = _live(packaged_engine, store, Recorder())
    store.write(_batch(packaged_engine.origin, 7))
    first.refresh()
    second = _live(packaged_engine, store, Recorder())
    assert second.engine.origin == first.engine.origin == packaged_engine.origin + 7 * HOUR
    np.testing.assert_array_equal(
        second.engine.default(24, 0.9).value, first.engine.default(24, 0.9).value
    )


def test_a_correction_of_a_seen_hour_rebuilds_the_state_from_the_packaged_model(
    packaged_engine: ForecastEngine, store: ObservationStore
) -> None:
    live = _live(packaged_engine, store, Recorder())
    store.write(_batch(packaged_engine.origin, 6))
    live.refresh()
    store.write(_batch(packaged_engine.origin + 2 * HOUR, 1, level=5000.0))  # hour 3 corrected
    assert live.refresh() is True
    expected = packaged_engine.advanced(live.actuals.run())
    assert live.actuals.run().iloc[2] == 5000.0
    np.testing.assert_array_equal(
        live.engine.default(24, 0.9).value, expected.default(24, 0.9).value
    )


def test_hours_before_the_training_end_are_kept_but_never_rewind_the_model(
    packaged_engine: ForecastEngine, store: ObservationStore
) -> None:
    live = _live(packaged_engine, store, Recorder())
    store.write(_batch(packaged_engine.origin - 48 * HOUR, 10))
    assert live.refresh() is False
    assert live.engine is packaged_engine
    assert len(store.current()) == 10


def test_a_gap_holds_the_model_back_and_says_so_until_it_is_filled(
    packaged_engine: ForecastEngine, store: ObservationStore
) -> None:
    live = _live(packaged_engine, store, Recorder())
    origin = packaged_engine.origin
    store.write(_batch(origin, 4))
    store.write(_batch(origin + 34 * HOUR, 6))  # 30 hours missing
    live.refresh()
    assert live.engine.origin == origin + 4 * HOUR  # not through the gap
    judged = live.freshness
    assert judged.gap == (origin + 4 * HOUR, origin + 33 * HOUR)
    assert judged.stale
    assert "30 hour(s) missing" in str(judged.stale_reason)
    assert judged.newest_stored == origin + 39 * HOUR
    store.write(_batch(origin + 4 * HOUR, 30))  # the missing hours arrive
    live.refresh()
    assert live.engine.origin == origin + 40 * HOUR
    assert live.freshness.gap is None


def test_a_deleted_store_file_is_reported_and_the_model_keeps_its_state(
    packaged_engine: ForecastEngine, store: ObservationStore, tmp_path: Path
) -> None:
    live = _live(packaged_engine, store, Recorder())
    store.write(_batch(packaged_engine.origin, 3))
    live.refresh()
    before = live.engine
    (tmp_path / "observations.db").unlink()
    live.refresh()
    assert live.problem is not None
    assert "deleted" in live.problem
    assert live.engine is before


def test_without_a_store_the_packaged_state_serves_and_says_why(
    packaged_engine: ForecastEngine,
) -> None:
    live = LiveModel(
        packaged_engine, None, max_age_hours=3, poll_s=60, swap=Recorder(), clock=lambda: NOW
    )
    assert live.refresh() is False
    assert live.problem is not None
    assert "TRAFFIC_FORECAST_OBSERVATIONS" in live.problem


# --- the pure parts ---------------------------------------------------------------------------


def test_freshness_is_stale_past_the_limit_and_says_since_when() -> None:
    last = pd.Timestamp("2025-07-01 10:00")
    fresh = freshness(last, last, None, last + 2 * HOUR, max_age_hours=3)
    assert (fresh.stale, fresh.age_hours) == (False, 1.0)
    old = freshness(last, last, None, last + 5 * HOUR, max_age_hours=3)
    assert old.stale
    assert "2025-07-01T10:00" in str(old.stale_reason)
    assert old.age_hours == 4.0


def test_actuals_keep_the_newest_value_and_find_the_consecutive_run() -> None:
    end = pd.Timestamp("2025-06-30 23:00")
    actuals = Actuals(end)
    stamps = [end + HOUR, end + 2 * HOUR, end + 5 * HOUR]
    changed = pd.DataFrame({"timestamp": stamps, "target": [1.0, 2.0, 5.0]})
    assert actuals.merge(changed) == end + HOUR
    assert list(actuals.run()) == [1.0, 2.0]
    assert actuals.gap(2) == (end + 3 * HOUR, end + 4 * HOUR)
    corrected = pd.DataFrame({"timestamp": [end + 2 * HOUR], "target": [20.0]})
    assert actuals.merge(corrected) == end + 2 * HOUR
    assert list(actuals.run()) == [1.0, 20.0]
