"""Non-overlapping sale-event calendar of the simulated site."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USThanksgivingDay

from traffic_forecast.data.simulate._random import component_rng, uniform_int
from traffic_forecast.data.simulate.config import SimulationConfig

SALE_KINDS = ("flash_sale", "weekend_sale", "seasonal_sale", "black_friday", "live_stream")
DRIFT_ONLY_KINDS = ("live_stream",)
_NUMBERED_LABELS = {
    "flash_sale": "Flash sale",
    "weekend_sale": "Weekend sale",
    "live_stream": "Live stream",
}
_HOUR = pd.Timedelta(hours=1)
_DAY = pd.Timedelta(days=1)
_FRIDAY = 4
_FRIDAY_TO_MONDAY = 3 * _DAY


@dataclass(frozen=True)
class SaleEvent:
    """One sale event; ``end`` is exclusive."""

    name: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    discount_pct: int


class _Calendar:
    """Booked events; later (lower-priority) kinds must fit in the gaps."""

    def __init__(self, first: pd.Timestamp, last: pd.Timestamp, gap_hours: int) -> None:
        self.first = first
        self.last = last
        self.gap = gap_hours * _HOUR
        self.events: list[SaleEvent] = []

    def book(self, event: SaleEvent) -> bool:
        """Add ``event`` if it starts in range and keeps the gap to all others."""
        inside = self.first <= event.start <= self.last
        free = all(
            event.end + self.gap <= other.start or other.end + self.gap <= event.start
            for other in self.events
        )
        if inside and free:
            self.events.append(event)
        return inside and free


def _discount(rng: np.random.Generator, config: SimulationConfig, kind: str) -> int:
    response = config.sale_kind(kind)
    return uniform_int(rng, (response.min_discount, response.max_discount))


def _months(first: pd.Timestamp, last: pd.Timestamp) -> list[pd.Timestamp]:
    return list(pd.date_range(first.normalize().replace(day=1), last, freq="MS"))


def _add_black_fridays(cal: _Calendar, config: SimulationConfig) -> None:
    rng = component_rng(config.seed, "black_friday")
    for thanksgiving in USThanksgivingDay.dates(cal.first - _DAY, cal.last):
        start = pd.Timestamp(thanksgiving) + _DAY
        end = start + config.black_friday_days * _DAY
        discount = _discount(rng, config, "black_friday")
        cal.book(SaleEvent(f"Black Friday {start.year}", "black_friday", start, end, discount))


def _add_seasonal_sales(cal: _Calendar, config: SimulationConfig) -> None:
    rng = component_rng(config.seed, "seasonal_sale")
    for year in range(cal.first.year, cal.last.year + 1):
        for window in config.seasonal_sales:
            day = uniform_int(rng, (window.first_day, window.last_day))
            start = pd.Timestamp(year=year, month=window.month, day=day)
            end = start + uniform_int(rng, config.seasonal_days) * _DAY
            discount = _discount(rng, config, "seasonal_sale")
            cal.book(SaleEvent(f"{window.name} {year}", "seasonal_sale", start, end, discount))


def _add_weekend_sales(cal: _Calendar, config: SimulationConfig) -> None:
    rng = component_rng(config.seed, "weekend_sale")
    for month in _months(cal.first, cal.last):
        days = pd.date_range(month, month + pd.offsets.MonthEnd(0), freq="D")
        fridays = list(days[days.dayofweek == _FRIDAY])
        wanted = rng.random() < config.weekend_sale_probability
        discount = _discount(rng, config, "weekend_sale")
        order = rng.permutation(len(fridays))
        # Fall back to another weekend of the month if the first is taken.
        for index in order if wanted else []:
            friday = fridays[int(index)]
            start = friday + config.weekend_sale_start_hour * _HOUR
            end = friday + _FRIDAY_TO_MONDAY
            if cal.book(SaleEvent("", "weekend_sale", start, end, discount)):
                break


def _add_short_sales(
    cal: _Calendar,
    config: SimulationConfig,
    *,
    kind: str,
    per_month: float,
    hour_ranges: tuple[tuple[int, int], tuple[int, int]],
    evening_share: float,
    durations: tuple[int, int],
) -> None:
    rng = component_rng(config.seed, kind)
    for month in _months(cal.first, cal.last):
        for _ in range(int(rng.poisson(per_month))):
            day = month + int(rng.integers(month.days_in_month)) * _DAY
            hours = hour_ranges[0] if rng.random() < evening_share else hour_ranges[1]
            start = day + uniform_int(rng, hours) * _HOUR
            end = start + uniform_int(rng, durations) * _HOUR
            cal.book(SaleEvent("", kind, start, end, _discount(rng, config, kind)))


def _numbered(events: list[SaleEvent]) -> list[SaleEvent]:
    """Sort chronologically and name repeated kinds ``"Flash sale #12"``."""
    counters = dict.fromkeys(_NUMBERED_LABELS, 0)
    named = []
    for event in sorted(events, key=lambda e: (e.start, e.kind)):
        label = _NUMBERED_LABELS.get(event.kind)
        if label is None:
            named.append(event)
            continue
        counters[event.kind] += 1
        named.append(replace(event, name=f"{label} #{counters[event.kind]}"))
    return named


def schedule_sale_events(config: SimulationConfig) -> list[SaleEvent]:
    """Draw the sale calendar from ``start`` to ``drift_end`` plus the horizon.

    Kinds are booked by priority (fixed-date sales first) and a later event
    that would overlap an earlier one is dropped, so events never overlap.
    ``live_stream`` events only start from ``drift_start``.

    Parameters
    ----------
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    list of SaleEvent
        Events sorted by start.
    """
    first = pd.Timestamp(config.start)
    last = pd.Timestamp(config.drift_end) + config.sale_horizon_days * _DAY
    cal = _Calendar(first, last, config.min_gap_hours)
    _add_black_fridays(cal, config)
    _add_seasonal_sales(cal, config)
    _add_weekend_sales(cal, config)
    evening = (config.flash_evening_start_hours, config.flash_daytime_start_hours)
    _add_short_sales(
        cal,
        config,
        kind="flash_sale",
        per_month=config.flash_sales_per_month,
        hour_ranges=evening,
        evening_share=config.flash_evening_share,
        durations=config.flash_hours,
    )
    # The drift-only kind did not exist before the drift period.
    cal.first = pd.Timestamp(config.drift_start)
    live = (config.live_stream_start_hours, config.live_stream_start_hours)
    _add_short_sales(
        cal,
        config,
        kind="live_stream",
        per_month=config.live_streams_per_month,
        hour_ranges=live,
        evening_share=1.0,
        durations=config.live_stream_hours,
    )
    return _numbered(cal.events)


def events_frame(events: list[SaleEvent]) -> pd.DataFrame:
    """Tabulate events in the ``sale_events.csv`` layout, ids from 1.

    Parameters
    ----------
    events : list of SaleEvent
        Events sorted by start.

    Returns
    -------
    pandas.DataFrame
        Columns ``event_id, name, kind, start, end, discount_pct``.
    """
    return pd.DataFrame(
        {
            "event_id": np.arange(1, len(events) + 1, dtype=np.int64),
            "name": pd.Series([e.name for e in events], dtype="str"),
            "kind": pd.Series([e.kind for e in events], dtype="str"),
            "start": pd.to_datetime(pd.Series([e.start for e in events], dtype="object")),
            "end": pd.to_datetime(pd.Series([e.end for e in events], dtype="object")),
            "discount_pct": np.array([e.discount_pct for e in events], dtype=np.int64),
        }
    )
