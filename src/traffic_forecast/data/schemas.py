"""Pandera models, one per boundary: the three raw tables and the model-ready hourly frame.

Raw files are read as text and parsed into nullable dtypes first (`traffic_forecast.data.tables`),
so an unparsable or empty cell is reported with its row and every other check still runs.
Output schemas inherit the schemas of their inputs.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

HOUR = pd.Timedelta(hours=1)
# The pipeline's name of a 0/1 event column of the traffic file (``data.event_columns``).
EVENT_PREFIX = "event__"


def _on_hour(ts: pd.Series) -> pd.Series:
    on_hour: pd.Series = ts.dt.floor("h") == ts
    return on_hour


def _follows_previous_hour(ts: pd.Series) -> pd.Series:
    # Flags the row *after* a gap, so the report points at the hole. Duplicates and steps
    # backwards have checks of their own.
    steps = ts.diff()
    return steps.isna() | (steps <= HOUR)


def _is_finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype=float)), index=values.index)


class HourlyIndexed(pa.DataFrameModel):
    """A table with one row per hour: unique, increasing, on the hour, without gaps."""

    timestamp: Series[pd.Timestamp] = pa.Field(unique=True)

    @pa.check("timestamp", name="on_the_hour", element_wise=False)
    @classmethod
    def on_the_hour(cls, ts: pd.Series) -> pd.Series:
        """Timestamps carry no minutes or seconds."""
        return _on_hour(ts)

    @pa.check("timestamp", name="increasing")
    @classmethod
    def increasing(cls, ts: pd.Series) -> pd.Series:
        """Rows are in time order (each timestamp is later than the one before)."""
        return ts.diff().isna() | (ts.diff() > pd.Timedelta(0))

    @pa.check("timestamp", name="no_gap_before")
    @classmethod
    def no_gap_before(cls, ts: pd.Series) -> pd.Series:
        """Each hour follows the previous one: a failing row is the first after a gap."""
        return _follows_previous_hour(ts)

    class Config:
        """Raw text is coerced; columns the schema does not name are an error."""

        strict = True
        coerce = True


class TrafficRaw(HourlyIndexed):
    """The traffic table: one hourly target, under the pipeline's own column names.

    The loader renames the file's columns (``data.timestamp_column``, ``data.target_column``,
    ``data.event_columns``) to ``timestamp``, ``target`` and ``event__<name>``, and the report
    names them back, so one model serves the example data and any bring-your-own CSV.
    """

    target: Series[float] = pa.Field(ge=0.0)
    event_flags: Series[pd.Int64Dtype] | None = pa.Field(
        alias=f"^{EVENT_PREFIX}.+$", regex=True, isin=[0, 1]
    )

    @pa.check("target", name="finite")
    @classmethod
    def finite(cls, values: pd.Series) -> pd.Series:
        """No infinities in the target (NaN is refused as a null)."""
        return _is_finite(values)


class InfrastructureRaw(HourlyIndexed):
    """``infrastructure.csv``: deployed instances and how they performed, per hour."""

    instances: Series[pd.Int64Dtype] = pa.Field(ge=1)
    cpu_utilization: Series[float] = pa.Field(ge=0.0, le=1.0)
    p95_latency_ms: Series[float] = pa.Field(gt=0.0)
    error_rate: Series[float] = pa.Field(ge=0.0, le=1.0)
    app_version: Series[str] = pa.Field(str_length={"min_value": 1})

    @pa.check("cpu_utilization", "p95_latency_ms", "error_rate", name="finite")
    @classmethod
    def finite(cls, values: pd.Series) -> pd.Series:
        """No infinities (NaN is already refused by the column being non-nullable)."""
        return _is_finite(values)


# What an observed hour may carry beside its traffic (`POST /observations`, `observe`): the
# infrastructure table's measurements, each optional.
OBSERVED_INFRASTRUCTURE = ("instances", "cpu_utilization", "p95_latency_ms", "error_rate")


@cache
def observations_schema() -> pa.DataFrameSchema:
    """A batch of observed hours: the raw traffic's rules, in any order, gaps allowed.

    The same column checks as `TrafficRaw` (on the hour, unique, non-negative, finite, no
    null), without its order and gap checks: a batch may correct scattered hours. The
    infrastructure measurements are optional and checked by `InfrastructureRaw`'s rules.
    """
    traffic = TrafficRaw.to_schema()
    stamp = traffic.columns[TrafficRaw.timestamp]
    in_any_order = [c for c in stamp.checks if c.name not in {"increasing", "no_gap_before"}]
    infrastructure = InfrastructureRaw.to_schema().update_columns(
        {name: {"required": False, "nullable": True} for name in OBSERVED_INFRASTRUCTURE}
    )
    optional = {name: infrastructure.columns[name] for name in OBSERVED_INFRASTRUCTURE}
    return pa.DataFrameSchema(
        {
            TrafficRaw.timestamp: stamp.set_checks(in_any_order),
            TrafficRaw.target: traffic.columns[TrafficRaw.target],
            **optional,
        },
        strict=True,
        coerce=True,
        name="observations",
    )


class SaleEventsRaw(pa.DataFrameModel):
    """``sale_events.csv``: the sale calendar, known in advance (including future sales).

    The allowed ``kind`` values come from ``data.sale_kinds``: see `sale_events_schema`.
    """

    event_id: Series[pd.Int64Dtype] = pa.Field(ge=1, unique=True)
    name: Series[str] = pa.Field(str_length={"min_value": 1})
    kind: Series[str]
    start: Series[pd.Timestamp]
    end: Series[pd.Timestamp]
    discount_pct: Series[pd.Int64Dtype] = pa.Field(ge=0, le=100)

    @pa.dataframe_check(name="end_after_start")
    @classmethod
    def end_after_start(cls, events: pd.DataFrame) -> pd.Series:
        """A sale ends after it starts."""
        return events[cls.end] > events[cls.start]

    @pa.dataframe_check(name="sale_on_the_hour")
    @classmethod
    def sale_on_the_hour(cls, events: pd.DataFrame) -> pd.Series:
        """Sales start and end on the hour (the grid of the traffic table)."""
        return _on_hour(events[cls.start]) & _on_hour(events[cls.end])

    class Config:
        """Raw text is coerced; columns the schema does not name are an error."""

        strict = True
        coerce = True


# Checks that span columns name them here, so a report can say which columns to look at.
TABLE_CHECK_COLUMNS = {"end_after_start": "start, end", "sale_on_the_hour": "start, end"}


def sale_events_schema(known_kinds: list[str]) -> pa.DataFrameSchema:
    """`SaleEventsRaw` with ``kind`` restricted to the configured sale kinds."""
    schema = SaleEventsRaw.to_schema()
    return schema.update_column(SaleEventsRaw.kind, checks=[pa.Check.isin(sorted(known_kinds))])


class FutureFeatures(HourlyIndexed):
    """Exogenous features known in advance: calendar, holidays, the sale calendar, last week.

    Event flags of the traffic file (``event__<name>``) are features too; their future is
    not in the file, so the horizon takes 0 for them (no event), as serving does.

    ``target_lag_168`` (same hour last week) is known for any horizon up to a week, which is
    why ``features.horizon`` may not exceed 168 hours.

    Built the same way for history and for the forecast horizon, so a model sees in training
    exactly what it will be given when it forecasts.
    """

    hour: Series[int] = pa.Field(ge=0, le=23)
    day_of_week: Series[int] = pa.Field(ge=0, le=6)
    hour_of_week: Series[int] = pa.Field(ge=0, le=167)
    month: Series[int] = pa.Field(ge=1, le=12)
    is_weekend: Series[int] = pa.Field(isin=[0, 1])
    is_holiday: Series[int] = pa.Field(isin=[0, 1])
    sale_active: Series[int] = pa.Field(isin=[0, 1])
    sale_discount: Series[float] = pa.Field(ge=0.0, le=100.0)
    sale_hours_since_start: Series[float] = pa.Field(ge=0.0)
    sale_hours_since_end: Series[float] = pa.Field(ge=0.0)
    target_lag_168: Series[float] = pa.Field(ge=0.0)
    sale_kind: Series[int] | None = pa.Field(alias="^sale_kind__.+$", regex=True, isin=[0, 1])
    # The traffic file's event flags: recorded in history, 0 ("no event") in the horizon.
    event_flags: Series[pd.Int64Dtype] | None = pa.Field(
        alias=f"^{EVENT_PREFIX}.+$", regex=True, isin=[0, 1]
    )


class ModelFrame(FutureFeatures, TrafficRaw):
    """The model-ready hourly frame: the validated target with its exogenous features."""
