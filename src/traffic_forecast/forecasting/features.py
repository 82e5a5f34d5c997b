"""Features known in advance, for history and horizon alike: calendar, holidays, the sale calendar.

The exogenous features are the calendar, public holidays, the sale calendar (``sale_events.csv``
lists sales planned beyond the last observed hour), the same hour last week, and the 0/1 event
flags of a bring-your-own CSV (``data.event_columns``). The flags' future is not in the file:
the horizon takes 0 for them ("no event"), in the features stage and in serving alike, so a
model learns what an event adds and forecasts the hours ahead as hours without one.
The features stage builds the model-ready frames with these functions; serving rebuilds the
horizon's sale features with them for a what-if, so training and serving cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar

from traffic_forecast.core.config import WEEK_HOURS, FeaturesConfig
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.data.schemas import (
    EVENT_PREFIX,
    FutureFeatures,
    ModelFrame,
    SaleEventsRaw,
    TrafficRaw,
)

SALE_KIND_PREFIX = "sale_kind__"
# Beyond this many hours after a sale its after-effect is gone; capping keeps the feature
# bounded so a model does not learn from "hours since the last sale" at large values.
SALE_AFTERMATH_CAP_HOURS = 72.0


@dataclass(frozen=True)
class ModelInputs:
    """The features stage's outputs: observed history and the horizon to forecast."""

    history: pd.DataFrame  # ModelFrame
    future: pd.DataFrame  # FutureFeatures


def exogenous_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a `ModelFrame` or `FutureFeatures` frame, in a stable order.

    Event flags come last: history holds them beside the target, the horizon after the rest,
    and both must list the features in one order.
    """
    excluded = {TrafficRaw.timestamp, TrafficRaw.target}
    features = [c for c in frame.columns if c not in excluded]
    return [c for c in features if c not in event_columns(features)] + event_columns(features)


def event_columns(columns: list[str]) -> list[str]:
    """The event flags among ``columns`` (``event__<name>``), in their order."""
    return [c for c in columns if c.startswith(EVENT_PREFIX)]


def without_events(frame: pd.DataFrame, events: list[str]) -> pd.DataFrame:
    """``frame`` with the flags ``events`` added as 0: no event is known for hours ahead."""
    if not events:
        return frame
    return frame.assign(**dict.fromkeys(events, 0)).astype(dict.fromkeys(events, "Int64"))


def calendar_features(stamps: pd.DatetimeIndex, holidays: str) -> pd.DataFrame:
    """Hour, weekday, hour of week, month, weekend and public-holiday flags per timestamp."""
    day_of_week = stamps.dayofweek.to_numpy()
    hour = stamps.hour.to_numpy()
    if holidays == "us_federal":
        dates = _us_federal_holidays(stamps.min().year, stamps.max().year)
        is_holiday = stamps.normalize().isin(dates)
    else:
        is_holiday = np.zeros(len(stamps), dtype=bool)
    return pd.DataFrame(
        {
            FutureFeatures.hour: hour,
            FutureFeatures.day_of_week: day_of_week,
            FutureFeatures.hour_of_week: day_of_week * 24 + hour,
            FutureFeatures.month: stamps.month.to_numpy(),
            FutureFeatures.is_weekend: (day_of_week >= 5).astype(int),
            FutureFeatures.is_holiday: np.asarray(is_holiday, dtype=int),
        },
        index=stamps,
    )


@cache
def _us_federal_holidays(first_year: int, last_year: int) -> pd.DatetimeIndex:
    # Whole years, cached: live actuals rebuild the features of a few hours at a time, and
    # pandas takes about 12 ms to list a calendar's holidays.
    start, end = pd.Timestamp(first_year, 1, 1), pd.Timestamp(last_year, 12, 31)
    return USFederalHolidayCalendar().holidays(start, end)


@dataclass(frozen=True)
class SaleCalendar:
    """Sale events as arrays, in start order: what the sale features are computed from.

    Ties keep the order given (a stable sort), so a calendar and the same calendar with
    planned sales appended describe the shared hours alike.
    """

    starts: npt.NDArray[np.datetime64]
    ends: npt.NDArray[np.datetime64]
    kinds: npt.NDArray[np.str_]
    discounts: npt.NDArray[np.float64]

    @classmethod
    def of(cls, events: pd.DataFrame | None) -> SaleCalendar:
        """The calendar of a `SaleEventsRaw`-like frame (None: no sales)."""
        if events is None or events.empty:
            return cls(
                np.array([], dtype="datetime64[ns]"),
                np.array([], dtype="datetime64[ns]"),
                np.array([], dtype=str),
                np.array([], dtype=float),
            )
        return cls(
            events[SaleEventsRaw.start].to_numpy(dtype="datetime64[ns]"),
            events[SaleEventsRaw.end].to_numpy(dtype="datetime64[ns]"),
            events[SaleEventsRaw.kind].to_numpy(dtype=str),
            events[SaleEventsRaw.discount_pct].to_numpy(dtype=float),
        )._sorted()

    def _sorted(self) -> SaleCalendar:
        order = np.argsort(self.starts, kind="stable")
        return SaleCalendar(
            self.starts[order], self.ends[order], self.kinds[order], self.discounts[order]
        )

    def plus(self, other: SaleCalendar) -> SaleCalendar:
        """The calendar with ``other``'s events added after its own (re-sorted, stably)."""
        return SaleCalendar(
            np.concatenate([self.starts, other.starts]),
            np.concatenate([self.ends, other.ends]),
            np.concatenate([self.kinds, other.kinds]),
            np.concatenate([self.discounts, other.discounts]),
        )._sorted()

    def touching(self, first: np.datetime64, last: np.datetime64) -> SaleCalendar:
        """Only the events that change a feature of an hour from ``first`` to ``last``."""
        aftermath = np.timedelta64(int(SALE_AFTERMATH_CAP_HOURS), "h")
        near = (self.starts <= last) & (self.ends + aftermath > first)
        return SaleCalendar(
            self.starts[near], self.ends[near], self.kinds[near], self.discounts[near]
        )


def sale_features(
    stamps: pd.DatetimeIndex, events: pd.DataFrame | None, kinds: list[str]
) -> pd.DataFrame:
    """Per hour: is a sale on, its discount, hours since it started or ended, its kind."""
    columns = sale_columns(stamps.to_numpy(dtype="datetime64[ns]"), SaleCalendar.of(events), kinds)
    return pd.DataFrame(columns, index=stamps)


def sale_column_names(kinds: list[str]) -> list[str]:
    """The columns `sale_columns` makes, in order."""
    return [
        FutureFeatures.sale_active,
        FutureFeatures.sale_discount,
        FutureFeatures.sale_hours_since_start,
        FutureFeatures.sale_hours_since_end,
        *(SALE_KIND_PREFIX + kind for kind in kinds),
    ]


def sale_columns(
    hours: npt.NDArray[np.datetime64], calendar: SaleCalendar, kinds: list[str]
) -> dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int_]]:
    """`sale_features` as arrays by column name: serving's what-ifs call it per request."""
    n = len(hours)
    active = np.zeros(n, dtype=int)
    discount = np.zeros(n)
    since_start = np.zeros(n)
    since_end = np.full(n, SALE_AFTERMATH_CAP_HOURS)
    kind_flags = {kind: np.zeros(n, dtype=int) for kind in kinds}
    one_hour = np.timedelta64(1, "h")
    aftermath = SALE_AFTERMATH_CAP_HOURS * one_hour
    for start, end, kind_of_sale, percent in zip(
        calendar.starts, calendar.ends, calendar.kinds, calendar.discounts, strict=True
    ):
        during = (hours >= start) & (hours < end)
        # Overlapping sales: the larger discount describes the hour.
        stronger = during & (percent >= discount)
        active[during] = 1
        discount[stronger] = float(percent)
        since_start[stronger] = (hours[stronger] - start) / one_hour
        for kind, flags in kind_flags.items():
            flags[stronger] = int(kind_of_sale == kind)
        after = (hours >= end) & (hours < end + aftermath)
        since_end[after] = np.minimum(since_end[after], (hours[after] - end) / one_hour)
    values = [active, discount, since_start, since_end, *kind_flags.values()]
    return dict(zip(sale_column_names(kinds), values, strict=True))


def build_features(
    traffic: pd.DataFrame,
    sale_events: pd.DataFrame | None,
    kinds: list[str],
    features: FeaturesConfig,
) -> ModelInputs:
    """Model-ready history (target + features) and the next ``features.horizon`` hours."""
    observed = pd.DatetimeIndex(traffic[TrafficRaw.timestamp])
    if len(observed) < WEEK_HOURS:
        raise PipelineInputError(
            f"{len(observed)} hours of history: at least a week ({WEEK_HOURS} h) is needed "
            "for the same-hour-last-week feature"
        )
    future = pd.date_range(observed[-1] + pd.Timedelta(hours=1), periods=features.horizon, freq="h")
    every_hour = pd.DatetimeIndex(observed.append(future))
    exog = known_features(every_hour, sale_events, kinds, features.holidays).reset_index()
    exog[FutureFeatures.target_lag_168] = _same_hour_last_week(traffic, features.horizon)
    history = pd.concat(
        [
            traffic.reset_index(drop=True),
            exog.iloc[: len(observed)].drop(columns=TrafficRaw.timestamp),
        ],
        axis=1,
    )
    horizon = without_events(
        exog.iloc[len(observed) :].reset_index(drop=True), event_columns(list(traffic.columns))
    )
    return ModelInputs(
        history=ModelFrame.validate(history), future=FutureFeatures.validate(horizon)
    )


def known_features(
    stamps: pd.DatetimeIndex, sale_events: pd.DataFrame | None, kinds: list[str], holidays: str
) -> pd.DataFrame:
    """Calendar and sale-calendar features of ``stamps`` (index: timestamp)."""
    exog = pd.concat(
        [calendar_features(stamps, holidays), sale_features(stamps, sale_events, kinds)], axis=1
    )
    exog.index.name = TrafficRaw.timestamp
    return exog


def features_after(
    stamps: pd.DatetimeIndex,
    observed: pd.Series,
    sale_events: pd.DataFrame | None,
    kinds: list[str],
    holidays: str,
    *,
    events: list[str] | None = None,
) -> pd.DataFrame:
    """The features of hours after the training data, as `build_features` makes them.

    ``observed`` is the target on an hourly index and must hold the hour a week before each
    of ``stamps`` (serving keeps the last week: the horizon never exceeds it). ``events``:
    the model's event flags, 0 for these hours as in the features stage's horizon.
    """
    lagged = observed.reindex(stamps - pd.Timedelta(hours=WEEK_HOURS))
    if lagged.isna().any():
        missing = stamps[lagged.isna().to_numpy()][0]
        raise PipelineInputError(f"no observed value a week before {missing}: cannot forecast it")
    frame = known_features(stamps, sale_events, kinds, holidays).reset_index()
    frame[FutureFeatures.target_lag_168] = lagged.to_numpy(dtype=float)
    return without_events(frame, events or [])


def _same_hour_last_week(traffic: pd.DataFrame, horizon: int) -> npt.NDArray[np.float64]:
    """The target 168 hours earlier, for history and horizon (horizon ≤ 168 keeps it known).

    The first week has no week before it; it takes its own values, so the model sees "no
    change from last week" there rather than a gap.
    """
    target = traffic[TrafficRaw.target].to_numpy(dtype=float)
    extended = np.concatenate([target, np.full(horizon, np.nan)])
    lagged = np.roll(extended, WEEK_HOURS)
    lagged[:WEEK_HOURS] = extended[:WEEK_HOURS]
    return lagged
