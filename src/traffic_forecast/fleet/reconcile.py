"""Reconciled batch forecasts: every series' hours sum to its region's and to the site's.

Forecasting each series on its own gives series that do not add up to a forecast of their
total, and the capacity planner sizes both. With ``data.fleet.reconcile`` set, the fleet gains
each region's total and the site's as series of their own (`with_aggregates`, in Spark), the
fleet's models forecast every one of them, and sktime's ``Reconciler`` (``ols``, ``wls_str``
or ``td_fcst``, see https://otexts.com/fpp3/hierarchical.html) makes the forecasts coherent.

The reconciliation runs on the driver, on the forecasts only (series x ``features.horizon``
rows: 170,000 for 1,000 series): sktime builds a dense summing matrix of the hierarchy, which
is fine for thousands of series, not for millions.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from sktime.transformations.hierarchical.reconcile import Reconciler

from traffic_forecast.data.simulate.fleet import SERIES_SEPARATOR
from traffic_forecast.fleet.series import FORECAST, REGION, SERIES_ID, SERVICE, TARGET, TIMESTAMP
from traffic_forecast.forecasting.forecasters import running_sktime

TOTAL = "__total"  # sktime's name for an aggregated level (its Aggregator's)
NODE_COLUMNS = (SERIES_ID, REGION, SERVICE, TIMESTAMP, TARGET)


def with_aggregates(frame: DataFrame) -> DataFrame:
    """The fleet plus each region's total (``"eu-west/__total"``) and the site's, as series."""
    series = frame.select(*NODE_COLUMNS)
    by_region = series.groupBy(REGION, TIMESTAMP).agg(sf.sum(TARGET).alias(TARGET))
    regions = by_region.select(
        sf.concat(sf.col(REGION), sf.lit(SERIES_SEPARATOR + TOTAL)).alias(SERIES_ID),
        REGION,
        sf.lit(TOTAL).alias(SERVICE),
        TIMESTAMP,
        TARGET,
    )
    site = (
        series.groupBy(TIMESTAMP)
        .agg(sf.sum(TARGET).alias(TARGET))
        .select(
            sf.lit(TOTAL + SERIES_SEPARATOR + TOTAL).alias(SERIES_ID),
            sf.lit(TOTAL).alias(REGION),
            sf.lit(TOTAL).alias(SERVICE),
            TIMESTAMP,
            TARGET,
        )
    )
    return series.unionByName(regions).unionByName(site)


def reconcile(forecasts: pd.DataFrame, method: str) -> pd.DataFrame:
    """Every node's forecast (``series_id, region, service, timestamp, forecast``), coherent.

    Returns the same columns and rows, the aggregates included, sorted by series and hour.
    """
    indexed = forecasts.set_index([REGION, SERVICE, TIMESTAMP])[[FORECAST]].sort_index()
    with running_sktime():
        coherent = Reconciler(method=method).fit_transform(indexed)
    keys = forecasts[[REGION, SERVICE, SERIES_ID]].drop_duplicates()
    frame = coherent.reset_index().merge(keys, on=[REGION, SERVICE], validate="many_to_one")
    columns = [SERIES_ID, REGION, SERVICE, TIMESTAMP, FORECAST]
    ordered: pd.DataFrame = frame[columns].sort_values(
        [SERIES_ID, TIMESTAMP], kind="mergesort", ignore_index=True
    )
    return ordered


def series_only(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The rows of the fleet's own series (no aggregate)."""
    aggregate = (forecasts[REGION] == TOTAL) | (forecasts[SERVICE] == TOTAL)
    return forecasts[~aggregate].reset_index(drop=True)
