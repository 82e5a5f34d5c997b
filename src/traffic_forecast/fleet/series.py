"""One series of the fleet in pandas: its backtest metrics and its forecast (no Spark here).

Spark's ``applyInPandas`` calls these once per series; they reuse the single-series
forecasting code unchanged, so a series scores the same in the fleet as on its own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from traffic_forecast.core.config import BacktestConfig, FeaturesConfig, ModelConfig
from traffic_forecast.data.schemas import FutureFeatures, TrafficRaw
from traffic_forecast.forecasting.backtest import run_backtest
from traffic_forecast.forecasting.features import build_features, exogenous_columns
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime
from traffic_forecast.forecasting.metrics import MASE_SEASON, Fold, summarise

SERIES_ID, REGION, SERVICE = "series_id", "region", "service"
TIMESTAMP, TARGET, FORECAST = "timestamp", "target", "forecast"
METRIC_COLUMNS = ("mase", "baseline_mase", "mae", "actual_mean")
# What a series scores to: the report's contract (report.fleet.FleetSeriesMetrics), in order.
METRICS_COLUMNS = (SERIES_ID, REGION, SERVICE, *METRIC_COLUMNS)
# The same row as a Spark schema: what the per-series tasks return (`applyInPandas`).
METRICS_SCHEMA = (
    "series_id string, region string, service string, "
    "mase double, baseline_mase double, mae double, actual_mean double"
)


@dataclasses.dataclass(frozen=True)
class SeriesJob:
    """Everything a Spark task needs to score or forecast one series (pickled to the task)."""

    model: ModelConfig
    baseline: ModelConfig
    backtest: BacktestConfig
    features: FeaturesConfig
    sale_kinds: list[str]

    def in_task(self) -> SeriesJob:
        """The job with the backtest's folds run one after another.

        Spark already runs series in parallel, one per core: folds in parallel on top of
        that (loky, dask) would start processes inside every task and oversubscribe the cores.
        """
        return dataclasses.replace(self, backtest=dataclasses.replace(self.backtest, backend=None))


def backtest_hours(backtest: BacktestConfig) -> int:
    """Hours a series needs for ``backtest`` (`forecasting.backtest.splitter`'s own bound)."""
    return 2 * MASE_SEASON + backtest.horizon + (backtest.n_folds - 1) * backtest.step_hours


def fold_cutoffs(last_hour: pd.Timestamp, backtest: BacktestConfig) -> list[pd.Timestamp]:
    """The backtest's cutoffs of a series ending at ``last_hour``, oldest first.

    The splitter counts folds back from the last hour, so these are the cutoffs sktime's
    ``evaluate`` uses for the series (the last fold ends on the last observed hour).
    """
    hour = pd.Timedelta(hours=1)
    last_cutoff = last_hour - backtest.horizon * hour
    return [
        last_cutoff - (backtest.n_folds - 1 - fold) * backtest.step_hours * hour
        for fold in range(backtest.n_folds)
    ]


def _history(
    series: pd.DataFrame, sale_events: pd.DataFrame | None, job: SeriesJob
) -> tuple[pd.DataFrame, pd.DataFrame]:
    traffic = (
        series[[TIMESTAMP, TARGET]]
        .sort_values(TIMESTAMP, kind="mergesort")
        .astype({TIMESTAMP: "datetime64[ns]", TARGET: float})
        .reset_index(drop=True)
    )
    inputs = build_features(traffic, sale_events, job.sale_kinds, job.features)
    return inputs.history, inputs.future


def _key(series: pd.DataFrame) -> dict[str, str]:
    return {column: str(series[column].iloc[0]) for column in (SERIES_ID, REGION, SERVICE)}


def series_metrics(
    series: pd.DataFrame, sale_events: pd.DataFrame | None, job: SeriesJob
) -> pd.DataFrame:
    """One row in `METRICS_COLUMNS`: the model and seasonal naive backtested on the same folds.

    ``series``: one series of the fleet (``series_id, region, service, timestamp, target``).
    """
    history, _ = _history(series, sale_events, job)
    model = run_backtest(job.model, history, job.backtest, setting="model", intervals=False)
    naive = run_backtest(job.baseline, history, job.backtest, setting="baseline", intervals=False)
    on_sale = history[FutureFeatures.sale_active] == 1
    sales = pd.DatetimeIndex(history.loc[on_sale, TrafficRaw.timestamp])
    scores, naive_scores = summarise(model.folds, sales), summarise(naive.folds, sales)
    row = _key(series) | {
        "mase": scores["mase"],
        "baseline_mase": naive_scores["mase"],
        "mae": scores["mae"],
        "actual_mean": actual_mean(model.folds),
    }
    return pd.DataFrame([row], columns=list(METRICS_COLUMNS))


def actual_mean(folds: list[Fold]) -> float:
    """Mean traffic over the backtest's hours: the series' weight in the fleet's figures."""
    return float(np.mean(np.concatenate([f.actual.to_numpy(dtype=float) for f in folds])))


def series_forecast(
    series: pd.DataFrame, sale_events: pd.DataFrame | None, job: SeriesJob
) -> pd.DataFrame:
    """``series_id, timestamp, forecast`` for the ``features.horizon`` hours after the series.

    Fitted on the whole history, as the single-series train stage fits its model.
    """
    history, future = _history(series, sale_events, job)
    forecaster = fit(job.model, history)
    X = exogenous(future, exogenous_columns(future)) if job.model.uses_exog else None
    steps = np.arange(1, len(future) + 1)
    with running_sktime():
        predicted = forecaster.predict(fh=steps, X=X)
    return pd.DataFrame(
        {
            SERIES_ID: str(series[SERIES_ID].iloc[0]),
            TIMESTAMP: future[TIMESTAMP].to_numpy(),
            FORECAST: np.asarray(predicted, dtype=float).ravel(),
        }
    )
