"""Simulation entry point: one process over history and drift, sliced by period."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from traffic_forecast.data.simulate.config import SimulationConfig
from traffic_forecast.data.simulate.infrastructure import simulate_infrastructure
from traffic_forecast.data.simulate.sales import (
    DRIFT_ONLY_KINDS,
    SaleEvent,
    events_frame,
    schedule_sale_events,
)
from traffic_forecast.data.simulate.traffic import simulate_sessions

Period = Literal["history", "drift"]


@dataclass(frozen=True)
class RawTables:
    """The three raw tables of the data contract."""

    traffic: pd.DataFrame
    sale_events: pd.DataFrame
    infrastructure: pd.DataFrame


def _validate(config: SimulationConfig) -> None:
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    drift_start, drift_end = pd.Timestamp(config.drift_start), pd.Timestamp(config.drift_end)
    if not start < end < drift_start <= drift_end:
        raise ValueError("need start < end < drift_start <= drift_end")
    if config.seed < 0:
        raise ValueError("seed must be non-negative")


def _period_bounds(config: SimulationConfig, period: Period) -> tuple[pd.Timestamp, pd.Timestamp]:
    if period == "history":
        return pd.Timestamp(config.start), pd.Timestamp(config.end)
    if period == "drift":
        return pd.Timestamp(config.drift_start), pd.Timestamp(config.drift_end)
    raise ValueError(f"unknown period {period!r}")


def _period_events(
    events: list[SaleEvent], config: SimulationConfig, period: Period
) -> list[SaleEvent]:
    """Events active in the period plus those already planned for the horizon.

    The history calendar was planned before the drift-only kinds existed.
    """
    first, last = _period_bounds(config, period)
    planned_until = last + pd.Timedelta(days=config.sale_horizon_days)
    return [
        event
        for event in events
        if event.end > first
        and event.start <= planned_until
        and (period == "drift" or event.kind not in DRIFT_ONLY_KINDS)
    ]


def simulate(config: SimulationConfig, *, period: Period = "history") -> RawTables:
    """Simulate the raw traffic, sale-event and infrastructure tables.

    The whole span ``start .. drift_end`` is always simulated once and then
    sliced, so the history tables do not depend on whether the drift period
    is requested, and the drift period continues the same process.

    Parameters
    ----------
    config : SimulationConfig
        Simulation parameters.
    period : {"history", "drift"}
        ``start .. end`` or ``drift_start .. drift_end``.

    Returns
    -------
    RawTables
        Tables of the requested period.
    """
    _validate(config)
    stamps = pd.date_range(config.start, config.drift_end, freq="h")
    events = schedule_sale_events(config)
    sessions = simulate_sessions(stamps, events, config)
    infrastructure = simulate_infrastructure(stamps, sessions, config)
    first, last = _period_bounds(config, period)
    keep = (stamps >= first) & (stamps <= last)
    traffic = pd.DataFrame({"timestamp": stamps[keep], "sessions": sessions[keep]})
    return RawTables(
        traffic=traffic,
        sale_events=events_frame(_period_events(events, config, period)),
        infrastructure=infrastructure.loc[keep].reset_index(drop=True),
    )
