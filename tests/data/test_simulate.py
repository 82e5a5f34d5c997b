"""Tests of the traffic simulator: determinism, data contract, realism and drift."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from pandas.tseries.holiday import USFederalHolidayCalendar

from traffic_forecast.data.simulate import (
    DRIFT_ONLY_KINDS,
    SALE_KINDS,
    RawTables,
    SimulationConfig,
    main,
    simulate,
    write_raw_tables,
)

CONFIG = SimulationConfig()
WEEK = 168
HOUR = pd.Timedelta(hours=1)
COLUMNS = {
    "traffic.csv": ["timestamp", "sessions"],
    "sale_events.csv": ["event_id", "name", "kind", "start", "end", "discount_pct"],
    "infrastructure.csv": [
        "timestamp",
        "instances",
        "cpu_utilization",
        "p95_latency_ms",
        "error_rate",
        "app_version",
    ],
}


@pytest.fixture(scope="module")
def history() -> RawTables:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def drift() -> RawTables:
    return simulate(CONFIG, period="drift")


def _file_bytes(paths: list[Path]) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in paths}


def _sale_hours(traffic: pd.DataFrame, events: pd.DataFrame) -> npt.NDArray[np.bool_]:
    stamps = traffic["timestamp"]
    active = np.zeros(len(traffic), dtype=bool)
    for start, end in zip(events["start"], events["end"], strict=True):
        active |= ((stamps >= start) & (stamps < end)).to_numpy()
    return active


def _hour_of_week(stamps: pd.Series) -> npt.NDArray[np.int64]:
    how: npt.NDArray[np.int64] = (stamps.dt.dayofweek * 24 + stamps.dt.hour).to_numpy(
        dtype=np.int64
    )
    return how


def _duration_hours(events: pd.DataFrame) -> pd.Series:
    return (events["end"] - events["start"]).dt.total_seconds() / 3600.0


def _calendar_design(traffic: pd.DataFrame, events: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Hour-of-week dummies, log-linear trend, holiday flag, per-kind sale flag and discount."""
    stamps = traffic["timestamp"]
    columns = [np.eye(WEEK)[_hour_of_week(stamps)]]
    years = ((stamps - stamps.iloc[0]) / pd.Timedelta(days=365.25)).to_numpy()
    columns.append(years[:, None])
    days = stamps.dt.normalize()
    holidays = USFederalHolidayCalendar().holidays(days.min(), days.max())
    columns.append(days.isin(holidays).to_numpy(dtype=float)[:, None])
    for kind in SALE_KINDS:
        flag = np.zeros(len(stamps))
        discount = np.zeros(len(stamps))
        of_kind = events[events["kind"] == kind]
        for start, end, pct in zip(
            of_kind["start"], of_kind["end"], of_kind["discount_pct"], strict=True
        ):
            active = ((stamps >= start) & (stamps < end)).to_numpy()
            flag[active] = 1.0
            discount[active] = int(pct) / 100.0
        columns += [flag[:, None], discount[:, None]]
    return np.hstack(columns)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = write_raw_tables(simulate(CONFIG), tmp_path / "a")
    second = write_raw_tables(simulate(CONFIG), tmp_path / "b")
    assert [p.name for p in first] == list(COLUMNS)
    assert _file_bytes(first) == _file_bytes(second)


def test_different_seed_gives_different_bytes(tmp_path: Path) -> None:
    first = _file_bytes(write_raw_tables(simulate(CONFIG), tmp_path / "a"))
    other = simulate(replace(CONFIG, seed=CONFIG.seed + 1))
    second = _file_bytes(write_raw_tables(other, tmp_path / "b"))
    for name in COLUMNS:
        assert first[name] != second[name], name


def test_files_follow_the_contract(tmp_path: Path, history: RawTables) -> None:
    for path in write_raw_tables(history, tmp_path):
        raw = path.read_bytes()
        assert b"\r" not in raw
        lines = raw.decode("utf-8").splitlines()
        assert lines[0].split(",") == COLUMNS[path.name]
        assert len(lines) > 1
    infra = (tmp_path / "infrastructure.csv").read_text(encoding="utf-8").splitlines()
    timestamp, _, cpu, latency, error, version = infra[1].split(",")
    assert timestamp == "2024-01-01 00:00:00"
    assert [len(x.split(".")[1]) for x in (cpu, latency, error)] == [4, 2, 6]
    assert version.count(".") == 2


def test_columns_and_dtypes(history: RawTables) -> None:
    tables = {
        "traffic.csv": history.traffic,
        "sale_events.csv": history.sale_events,
        "infrastructure.csv": history.infrastructure,
    }
    for name, frame in tables.items():
        assert list(frame.columns) == COLUMNS[name]
    for column in ("timestamp",):
        assert pd.api.types.is_datetime64_dtype(history.traffic[column])
        assert pd.api.types.is_datetime64_dtype(history.infrastructure[column])
    assert pd.api.types.is_datetime64_dtype(history.sale_events["start"])
    assert pd.api.types.is_datetime64_dtype(history.sale_events["end"])
    for frame, column in [
        (history.traffic, "sessions"),
        (history.sale_events, "event_id"),
        (history.sale_events, "discount_pct"),
        (history.infrastructure, "instances"),
    ]:
        assert frame[column].dtype == np.int64, column
    for column in ("cpu_utilization", "p95_latency_ms", "error_rate"):
        assert history.infrastructure[column].dtype == np.float64
    for column in ("name", "kind"):
        assert pd.api.types.is_string_dtype(history.sale_events[column])
    assert pd.api.types.is_string_dtype(history.infrastructure["app_version"])


def test_traffic_is_a_regular_hourly_grid(history: RawTables) -> None:
    stamps = history.traffic["timestamp"]
    expected = pd.date_range(CONFIG.start, CONFIG.end, freq="h")
    assert (stamps.to_numpy() == expected.to_numpy()).all()
    assert len(stamps) == len(expected)
    assert stamps.is_unique
    assert (stamps.diff().dropna() == HOUR).all()


def test_sessions_are_plausible(history: RawTables) -> None:
    sessions = history.traffic["sessions"]
    assert (sessions >= 0).all()
    daily_peak = history.traffic.groupby(history.traffic["timestamp"].dt.date)["sessions"].max()
    assert 1e6 < daily_peak.median() < 4e6
    night = history.traffic["timestamp"].dt.hour.isin([3, 4])
    assert sessions[night].median() < 0.4 * daily_peak.median()


def test_sale_events_are_valid(history: RawTables, drift: RawTables) -> None:
    for events in (history.sale_events, drift.sale_events):
        assert (events["end"] > events["start"]).all()
        assert events["start"].is_monotonic_increasing
        assert (events["start"].iloc[1:].to_numpy() >= events["end"].iloc[:-1].to_numpy()).all()
        assert events["event_id"].tolist() == list(range(1, len(events) + 1))
        assert set(events["kind"]) <= set(SALE_KINDS)
        assert events["discount_pct"].between(5, 70).all()
        assert (events["name"].str.len() > 0).all()
        for stamps in (events["start"], events["end"]):
            assert (stamps.dt.floor("h") == stamps).all()


def test_sale_kinds_keep_their_shape(history: RawTables) -> None:
    events = history.sale_events
    hours = _duration_hours(events)
    kind = events["kind"]
    assert hours[kind == "flash_sale"].between(2, 6).all()
    weekend = events[kind == "weekend_sale"]
    assert (weekend["start"].dt.dayofweek == 4).all()
    assert (weekend["start"].dt.hour == 18).all()
    assert (weekend["end"].dt.dayofweek == 0).all()
    assert (hours[kind == "weekend_sale"] == 54).all()
    assert hours[kind == "seasonal_sale"].between(72, 168).all()
    assert events.loc[kind == "black_friday", "name"].tolist() == ["Black Friday 2024"]
    assert (hours[kind == "black_friday"] == 96).all()
    assert set(kind) == set(SALE_KINDS) - set(DRIFT_ONLY_KINDS)


def test_live_stream_only_in_drift(history: RawTables, drift: RawTables) -> None:
    assert "live_stream" not in set(history.sale_events["kind"])
    live = drift.sale_events[drift.sale_events["kind"] == "live_stream"]
    assert len(live) >= 6
    assert _duration_hours(live).between(1, 3).all()


def test_history_events_include_the_planned_horizon(history: RawTables) -> None:
    last_hour = history.traffic["timestamp"].iloc[-1]
    events = history.sale_events
    assert events["end"].max() >= last_hour + pd.Timedelta(days=13)
    assert events["start"].max() <= last_hour + pd.Timedelta(days=CONFIG.sale_horizon_days)


def test_drift_events_include_the_planned_horizon(drift: RawTables) -> None:
    last_hour = drift.traffic["timestamp"].iloc[-1]
    starts = drift.sale_events["start"]
    assert (starts > last_hour).any()
    assert starts.max() <= last_hour + pd.Timedelta(days=CONFIG.sale_horizon_days)


def test_infrastructure_follows_the_load(history: RawTables) -> None:
    infra, traffic = history.infrastructure, history.traffic
    assert infra["timestamp"].equals(traffic["timestamp"])
    assert (infra["instances"] >= 1).all()
    assert infra["cpu_utilization"].between(0.0, 1.0).all()
    assert infra["error_rate"].between(0.0, 1.0).all()
    assert (infra["p95_latency_ms"] > 0).all()
    provisioned = infra["instances"] * CONFIG.instance_capacity * CONFIG.autoscaler_target_cpu
    assert np.corrcoef(provisioned, traffic["sessions"])[0, 1] > 0.9
    # The autoscaler acts on the previous hour: aligned on that lag it is nearly exact.
    lagged = np.corrcoef(provisioned.iloc[1:], traffic["sessions"].iloc[:-1])[0, 1]
    assert lagged > 0.98
    cpu = infra["cpu_utilization"]
    assert cpu.mean() == pytest.approx(CONFIG.autoscaler_target_cpu, abs=0.05)
    latency = infra["p95_latency_ms"]
    assert latency[cpu > 0.8].median() > 1.5 * latency[cpu < 0.6].median()
    assert infra["error_rate"][cpu > 0.9].median() > 5 * infra["error_rate"][cpu < 0.6].median()


def test_releases_every_one_to_three_weeks_on_weekdays(history: RawTables) -> None:
    infra = history.infrastructure
    changed = infra["app_version"] != infra["app_version"].shift()
    releases = infra.loc[changed, "timestamp"].iloc[1:]
    assert (releases.dt.dayofweek < 5).all()
    assert releases.dt.hour.between(*CONFIG.release_hours).all()
    gaps_days = releases.diff().dropna().dt.total_seconds() / 86400.0
    # 7-21 days between release days, plus a weekend postponement and the release hour.
    assert gaps_days.between(6.5, 23.5).all()
    assert infra["app_version"].iloc[0] == "2024.01.0"


def test_seasonal_naive_struggles_on_sale_hours(history: RawTables) -> None:
    sessions = history.traffic["sessions"].to_numpy(dtype=float)
    error = np.abs(sessions[WEEK:] - sessions[:-WEEK])
    on_sale = _sale_hours(history.traffic, history.sale_events)[WEEK:]
    ratio = error[on_sale].mean() / error[~on_sale].mean()
    assert ratio >= 1.5


def test_calendar_benchmark_beats_seasonal_naive(history: RawTables) -> None:
    traffic = history.traffic
    sessions = traffic["sessions"].to_numpy(dtype=float)
    design = _calendar_design(traffic, history.sale_events)
    train = (traffic["timestamp"] < pd.Timestamp(CONFIG.start) + pd.DateOffset(years=1)).to_numpy()
    beta, *_ = np.linalg.lstsq(design[train], np.log(sessions[train]), rcond=None)
    forecast = np.exp(design @ beta)
    test = ~train
    naive = np.roll(sessions, WEEK)
    benchmark_mae = np.abs(sessions - forecast)[test].mean()
    naive_mae = np.abs(sessions - naive)[test].mean()
    assert benchmark_mae <= 0.85 * naive_mae


def test_drift_shifts_the_level(history: RawTables, drift: RawTables) -> None:
    weeks = 13 * WEEK
    before = history.traffic.iloc[-weeks:]
    after = drift.traffic.iloc[:weeks]
    # Medians per hour of week: same weekday/hour mix, robust to the sale spikes.
    level_before = before.groupby(_hour_of_week(before["timestamp"]))["sessions"].median()
    level_after = after.groupby(_hour_of_week(after["timestamp"]))["sessions"].median()
    ratio = (level_after / level_before).mean()
    assert ratio == pytest.approx(1.0 + CONFIG.drift_level_shift, abs=0.1)


def test_drift_continues_history(history: RawTables, drift: RawTables) -> None:
    assert drift.traffic["timestamp"].iloc[0] == history.traffic["timestamp"].iloc[-1] + HOUR
    assert drift.traffic["timestamp"].iloc[-1] == pd.Timestamp(CONFIG.drift_end)
    assert drift.infrastructure["timestamp"].equals(drift.traffic["timestamp"])
    assert drift.sale_events["start"].max() <= pd.Timestamp(CONFIG.drift_end) + pd.Timedelta(
        days=CONFIG.sale_horizon_days
    )


def _served_per_instance(traffic: pd.DataFrame, infra: pd.DataFrame) -> float:
    """What a capacity planner reads off the data: sessions per fully used instance."""
    busy = infra["cpu_utilization"] > 0.3
    load = traffic["sessions"][busy]
    return float((load / (infra["instances"][busy] * infra["cpu_utilization"][busy])).median())


def test_drift_release_lowers_instance_capacity(history: RawTables, drift: RawTables) -> None:
    before = _served_per_instance(history.traffic, history.infrastructure)
    last_month = slice(-30 * 24, None)
    after = _served_per_instance(
        drift.traffic.iloc[last_month], drift.infrastructure.iloc[last_month]
    )
    assert before == pytest.approx(CONFIG.instance_capacity, rel=0.03)
    assert after == pytest.approx(before * (1.0 - CONFIG.drift_capacity_drop), rel=0.03)


def test_history_does_not_depend_on_drift(tmp_path: Path) -> None:
    before = _file_bytes(write_raw_tables(simulate(CONFIG), tmp_path / "before"))
    write_raw_tables(simulate(CONFIG, period="drift"), tmp_path / "drift")
    after = _file_bytes(write_raw_tables(simulate(CONFIG), tmp_path / "after"))
    assert before == after
    longer = replace(CONFIG, drift_end="2025-12-31 23:00")
    extended = _file_bytes(write_raw_tables(simulate(longer), tmp_path / "longer"))
    assert extended == before


def test_main_writes_three_files(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--seed", "7"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(COLUMNS)
    assert main(["--out", str(tmp_path / "drift"), "--period", "drift"]) == 0
    events = pd.read_csv(tmp_path / "drift" / "sale_events.csv")
    assert "live_stream" in set(events["kind"])


def test_invalid_period_order_is_refused() -> None:
    with pytest.raises(ValueError, match="drift_start"):
        simulate(replace(CONFIG, drift_start="2025-01-01"))
