"""Training and backtests of the fleet on Spark: one model per series, or one for all of them.

``data.fleet.model=local`` sends each series to a Spark task (``groupBy.applyInPandas``) that
runs the single-series forecaster and seasonal naive on the same folds (`fleet.series`).
``data.fleet.model=global`` fits one Spark ML gradient-boosted model across every series
(`fleet.global_model`). Both give the report's per-series metrics
(`report.fleet.FleetSeriesMetrics`); series too short for the backtest are left out and listed
with the reason, or stop the run (``data.fleet.short_series``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from traffic_forecast.core.config import FleetConfig
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.fleet import global_model
from traffic_forecast.fleet.reconcile import reconcile, series_only, with_aggregates
from traffic_forecast.fleet.series import (
    FORECAST,
    METRICS_COLUMNS,
    METRICS_SCHEMA,
    REGION,
    SERIES_ID,
    SERVICE,
    TARGET,
    TIMESTAMP,
    SeriesJob,
    backtest_hours,
    series_forecast,
    series_metrics,
)
from traffic_forecast.fleet.spark import collected

log = logging.getLogger(__name__)

FORECAST_SCHEMA = "series_id string, timestamp timestamp_ntz, forecast double"
EXCLUDED_COLUMNS = (SERIES_ID, "hours", "reason")
_SHOWN = 5  # short series named in an error message


@dataclass(frozen=True)
class FleetTraining:
    """The fleet's backtest: metrics per scored series, and the series left out with why."""

    metrics: pd.DataFrame  # report.fleet.FleetSeriesMetrics, sorted by series_id
    excluded: pd.DataFrame  # EXCLUDED_COLUMNS, sorted by series_id
    seconds: float


def needed_hours(fleet: FleetConfig, job: SeriesJob) -> int:
    """Hours of history a series needs: the backtest's need or the configured minimum."""
    return max(fleet.min_history_hours, backtest_hours(job.backtest))


def short_series(lengths: pd.DataFrame, needed: int) -> pd.DataFrame:
    """The series of ``lengths`` (``series_id, hours``) shorter than ``needed``, with why."""
    short = lengths[lengths["hours"] < needed].sort_values(SERIES_ID, kind="mergesort")
    reasons = [
        f"{hours} hours of history; the backtest and data.fleet.min_history_hours need {needed}"
        for hours in short["hours"]
    ]
    return short.assign(reason=reasons)[list(EXCLUDED_COLUMNS)].reset_index(drop=True)


def screen(frame: DataFrame, fleet: FleetConfig, job: SeriesJob) -> tuple[DataFrame, pd.DataFrame]:
    """The series long enough to backtest, and those left out (or an error, by setting)."""
    # Hours counted, not spanned: validated series are regular (no gaps, no duplicates).
    lengths = collected(frame.groupBy(SERIES_ID).agg(sf.count(TARGET).alias("hours")))
    excluded = short_series(lengths, needed_hours(fleet, job))
    if excluded.empty:
        return frame, excluded
    if fleet.short_series == "error":
        named = "; ".join(
            f"{row.series_id} ({row.hours} h)" for row in excluded.head(_SHOWN).itertuples()
        )
        raise PipelineInputError(
            f"{len(excluded)} series too short for the backtest: {named} — "
            f"{needed_hours(fleet, job)} hours needed; shorten the backtest, or set "
            "data.fleet.short_series=exclude to score the fleet without them"
        )
    if len(excluded) == len(lengths):
        raise PipelineInputError(
            f"every one of the {len(lengths)} series is shorter than the "
            f"{needed_hours(fleet, job)} hours the backtest needs: shorten the backtest "
            "(backtest.n_folds, step_hours, horizon) or lower data.fleet.min_history_hours"
        )
    log.warning("fleet: %d series excluded as too short", len(excluded))
    kept = frame.join(
        frame.sparkSession.createDataFrame(excluded[[SERIES_ID]]), SERIES_ID, "left_anti"
    )
    return kept, excluded


def _per_series(
    frame: DataFrame,
    sale_events: pd.DataFrame | None,
    job: SeriesJob,
    score: Callable[[pd.DataFrame, pd.DataFrame | None, SeriesJob], pd.DataFrame],
    schema: str,
) -> DataFrame:
    # The sale calendar is the whole fleet's and small (kilobytes): each executor gets one copy.
    calendar = frame.sparkSession.sparkContext.broadcast(sale_events)
    in_task = job.in_task()

    def run(series: pd.DataFrame) -> pd.DataFrame:
        return score(series, calendar.value, in_task)

    columns = [SERIES_ID, REGION, SERVICE, TIMESTAMP, TARGET]
    return frame.select(*columns).groupBy(SERIES_ID).applyInPandas(run, schema)


def local_metrics(frame: DataFrame, sale_events: pd.DataFrame | None, job: SeriesJob) -> DataFrame:
    """One row of `METRICS_COLUMNS` per series: its own model's backtest against naive's."""
    return _per_series(frame, sale_events, job, series_metrics, METRICS_SCHEMA)


def local_forecasts(
    frame: DataFrame, sale_events: pd.DataFrame | None, job: SeriesJob
) -> DataFrame:
    """``series_id, timestamp, forecast``: each series' next ``features.horizon`` hours.

    Each series' model is fitted on its whole history; `fleet.batch.publish` takes the rows.
    """
    return _per_series(frame, sale_events, job, series_forecast, FORECAST_SCHEMA)


def fleet_forecasts(
    frame: DataFrame, sale_events: pd.DataFrame | None, fleet: FleetConfig, job: SeriesJob
) -> DataFrame:
    """``series_id, timestamp, forecast``: every series' next hours with ``fleet.model``.

    With ``fleet.reconcile`` the regions' and the site's totals are forecast too, and the
    series' forecasts are made to sum to them (`fleet.reconcile`).
    """
    if fleet.reconcile == "none":
        return _forecasts(frame, sale_events, fleet, job)
    nodes = with_aggregates(frame)
    keys = nodes.select(SERIES_ID, REGION, SERVICE).distinct()
    forecasts = _forecasts(nodes, sale_events, fleet, job).join(keys, SERIES_ID)
    coherent = series_only(reconcile(collected(forecasts), fleet.reconcile))
    rows = coherent[[SERIES_ID, TIMESTAMP, FORECAST]]
    return frame.sparkSession.createDataFrame(rows, schema=FORECAST_SCHEMA)


def _forecasts(
    frame: DataFrame, sale_events: pd.DataFrame | None, fleet: FleetConfig, job: SeriesJob
) -> DataFrame:
    if fleet.model == "local":
        return local_forecasts(frame, sale_events, job)
    return global_model.global_forecasts(frame, sale_events, fleet.global_model, job)


def train_fleet(
    frame: DataFrame, sale_events: pd.DataFrame | None, fleet: FleetConfig, job: SeriesJob
) -> FleetTraining:
    """Backtest the fleet with ``fleet.model``; the metrics in the report's contract."""
    started = time.perf_counter()
    kept, excluded = screen(frame, fleet, job)
    if fleet.model == "local":
        scored = collected(local_metrics(kept, sale_events, job))
    else:
        scored = global_model.global_metrics(kept, sale_events, fleet.global_model, job)
    metrics = scored[list(METRICS_COLUMNS)].sort_values(SERIES_ID, kind="mergesort")
    seconds = time.perf_counter() - started
    log.info("fleet %s: %d series scored in %.1f s", fleet.model, len(metrics), seconds)
    return FleetTraining(metrics.reset_index(drop=True), excluded, seconds)
