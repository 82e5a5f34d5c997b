"""Missing hours of the traffic table, filled as ``data.fill_gaps`` says, and what was filled.

A pure function of the validated table: the filled table, a record of the filled hours (method,
count, first and last) that the validation report prints, and the hours no method could fill.
Filled hours are never invented silently: the record travels into the report and the lineage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from traffic_forecast.core.config import WEEK_HOURS
from traffic_forecast.data.schemas import EVENT_PREFIX, TrafficRaw

# How each method fills an hour, as the report says it.
FILL_DESCRIPTIONS = {
    "zero": "with 0",
    "interpolate": "by linear interpolation between the observed hours either side",
    "seasonal": "with the same hour of the nearest observed week (an earlier week first)",
}
_STAMP = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class GapFill:
    """What was filled: the method, how many hours, the first and last of them."""

    method: str
    hours: int
    first: pd.Timestamp
    last: pd.Timestamp
    from_later_week: int = 0  # seasonal: hours that no earlier week held, taken from a later one
    flags_without_day: int = 0  # hours of wholly missing days: their event flags are set to 0

    def to_json(self) -> dict[str, Any]:
        """The record for ``validation.json`` and the data lineage."""
        record: dict[str, Any] = {
            "method": self.method,
            "hours": self.hours,
            "first": f"{self.first:{_STAMP}}",
            "last": f"{self.last:{_STAMP}}",
        }
        if self.method == "seasonal":
            record["from_later_week"] = self.from_later_week
        if self.flags_without_day:
            record["event_flags_set_to_0"] = self.flags_without_day
        return record

    def note(self, file: str, target_column: str) -> str:
        """One line for ``validation.md``: which hours were filled, how, how many."""
        text = (
            f"{file}: {self.hours} missing hours filled {FILL_DESCRIPTIONS[self.method]} "
            f"(data.fill_gaps={self.method}; {target_column} of hours "
            f"{self.first:{_STAMP}} to {self.last:{_STAMP}})"
        )
        if self.from_later_week:
            text += f"; {self.from_later_week} of them from a later week (no earlier week had it)"
        if self.flags_without_day:
            text += (
                f"; {self.flags_without_day} of them on days with no observed hour: "
                "their event flags are set to 0"
            )
        return text


@dataclass(frozen=True)
class FilledTraffic:
    """The table on a whole hourly grid, the record of the fill, and what could not be filled."""

    frame: pd.DataFrame
    fill: GapFill | None  # None: no hour was missing
    unfillable: pd.DatetimeIndex  # seasonal: hours missing in every week of the table


def fill_missing_hours(traffic: pd.DataFrame, method: str) -> FilledTraffic:
    """Put ``traffic`` (validated, in time order) on a whole hourly grid, filling its gaps.

    ``zero`` fills with 0; ``interpolate`` linearly in time between the neighbouring observed
    hours; ``seasonal`` with the same hour a week (168 h) earlier, else further weeks back,
    else the nearest later week. Only observed hours are used, never filled ones. The first and
    last hours are observed by construction, so every gap has a neighbour on both sides.
    """
    stamps = pd.DatetimeIndex(traffic[TrafficRaw.timestamp])
    grid = pd.date_range(stamps[0], stamps[-1], freq="h", name=TrafficRaw.timestamp)
    nothing = pd.DatetimeIndex([])
    if len(grid) == len(stamps):
        return FilledTraffic(traffic, None, nothing)
    on_grid = traffic.drop(columns=TrafficRaw.timestamp).set_index(stamps).reindex(grid)
    observed = on_grid[TrafficRaw.target]
    missing = observed.isna().to_numpy()
    from_later = 0
    if method == "zero":
        filled = observed.fillna(0.0)
    elif method == "interpolate":
        filled = observed.interpolate(method="time")
    elif method == "seasonal":
        # Hours a whole number of weeks apart share a phase; fill along the weeks of a phase.
        phase = np.arange(len(grid)) % WEEK_HOURS
        earlier = observed.groupby(phase).ffill()
        later = observed.groupby(phase).bfill()
        filled = earlier.fillna(later)
        from_later = int((earlier.isna() & later.notna()).sum())
        if filled.isna().any():
            return FilledTraffic(traffic, None, grid[filled.isna().to_numpy()])
    else:
        raise ValueError(f"data.fill_gaps={method!r} fills no hours")
    on_grid[TrafficRaw.target] = filled
    without_day = _flags_by_day(on_grid, missing)
    fill = GapFill(
        method,
        int(missing.sum()),
        grid[missing][0],
        grid[missing][-1],
        from_later_week=from_later,
        flags_without_day=without_day,
    )
    return FilledTraffic(on_grid.reset_index(), fill, nothing)


def _flags_by_day(on_grid: pd.DataFrame, missing: np.ndarray[Any, Any]) -> int:
    """Give filled hours their day's event flags; count the hours of days with none observed.

    Event flags in such files are per day (a holiday, a working day); a day with no observed
    hour has no flag to copy, so 0 ("no event") is set and the report counts those hours.
    """
    flags = [c for c in on_grid.columns if c.startswith(EVENT_PREFIX)]
    if not flags:
        return 0
    days = pd.DatetimeIndex(on_grid.index).normalize()
    day_observed = pd.Series(~missing, index=on_grid.index).groupby(days).transform("any")
    for column in flags:
        on_grid[column] = on_grid[column].groupby(days).transform("first").fillna(0)
    return int((missing & ~day_observed.to_numpy(dtype=bool)).sum())
