"""Rolling-origin backtests with sktime's ``evaluate``: the model and the baseline, same folds."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon
from sktime.forecasting.model_evaluation import evaluate
from sktime.performance_metrics.forecasting import make_forecasting_scorer
from sktime.performance_metrics.forecasting.probabilistic import EmpiricalCoverage
from sktime.split import ExpandingWindowSplitter

from traffic_forecast.core.config import BacktestConfig, ModelConfig
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.forecasting.features import exogenous_columns
from traffic_forecast.forecasting.forecasters import (
    build_forecaster,
    check_fits_history,
    check_fits_values,
    exogenous,
    fitting,
    quiet_worker,
    running_sktime,
    target_series,
)
from traffic_forecast.forecasting.intervals import (
    IntervalCalibration,
    calibrate,
    with_conformal_intervals,
)
from traffic_forecast.forecasting.metrics import MASE_SEASON, Fold, seasonal_scale

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestRun:
    """The folds of one forecaster's backtest and how long it took."""

    name: str
    folds: list[Fold]
    seconds: float
    calibration: IntervalCalibration | None = None  # set when intervals come from residuals


def splitter(n_hours: int, backtest: BacktestConfig) -> ExpandingWindowSplitter:
    """Weekly (``step_hours``) origins, the last fold ending at the last observed hour."""
    initial = n_hours - backtest.horizon - (backtest.n_folds - 1) * backtest.step_hours
    if initial < 2 * MASE_SEASON:
        raise ConfigError(
            f"backtest: {backtest.n_folds} folds every {backtest.step_hours} h with a "
            f"{backtest.horizon} h horizon need more than the {n_hours} hours of history "
            f"(the first fold would train on {initial} h; at least {2 * MASE_SEASON} needed)"
        )
    fh = ForecastingHorizon(np.arange(1, backtest.horizon + 1), is_relative=True)
    return ExpandingWindowSplitter(fh=fh, initial_window=initial, step_length=backtest.step_hours)


@contextmanager
def _dask_keeps_objects(backend: str | None) -> Iterator[None]:
    # sktime gathers folds into a dask DataFrame; dask would turn the returned series
    # (y_test, y_pred) into strings unless told to leave object columns alone.
    if backend != "dask":
        yield
        return
    with dask.config.set({"dataframe.convert-string": False}):
        yield


class _FoldProgress:
    """Shows "fold i of n" on a terminal as folds are scored; nothing in CI logs.

    The fold number comes from the fold's first test hour, not from a counter: with a
    parallel backend each worker scores its own folds on its own copy of this object.
    """

    def __init__(self, name: str, first_test_hours: list[pd.Timestamp]) -> None:
        self.name, self.first_test_hours = name, first_test_hours
        self.live = sys.stderr.isatty() and not os.environ.get("CI")

    def __call__(self, y_true: pd.Series, y_pred: pd.Series, **_: Any) -> float:
        if self.live:
            fold = self.first_test_hours.index(pd.Timestamp(y_true.index[0])) + 1
            total = len(self.first_test_hours)
            print(
                f"\r  backtest {self.name}: fold {fold} of {total}",
                end="\n" if fold == total else "",
                file=sys.stderr,
                flush=True,
            )
        return float(np.mean(np.abs(y_true.to_numpy() - y_pred.to_numpy())))


def run_backtest(
    model: ModelConfig,
    history: pd.DataFrame,
    backtest: BacktestConfig,
    *,
    setting: str,
    intervals: bool = True,
) -> BacktestRun:
    """Backtest one forecaster on the folds of `splitter`.

    With ``intervals``, a forecaster's own prediction intervals are scored; a forecaster
    without them gets split-conformal intervals from the residuals of earlier folds.
    """
    cv = splitter(len(history), backtest)
    check_fits_history(model, cv.initial_window, setting=setting)
    forecaster = build_forecaster(model, setting=setting)
    y = target_series(history)
    check_fits_values(model, y, setting=setting)
    X = exogenous(history, exogenous_columns(history)) if model.uses_exog else None
    first_test_hours = [y.index[cutoff + 1] for cutoff in cv.get_cutoffs(y)]
    progress = _FoldProgress(model.name, first_test_hours)
    scoring: list[Any] = [
        make_forecasting_scorer(progress, name="progress_mae", greater_is_better=False)
    ]
    with_interval = intervals and model.intervals == "native"
    if with_interval and not forecaster.get_tag("capability:pred_int", False):
        raise ConfigError(
            f"{setting}.intervals=native, but {model.name} has no prediction intervals of its "
            "own: use intervals=conformal"
        )
    if with_interval:
        scoring.append(EmpiricalCoverage(coverage=backtest.coverage))
    backend_params = _backend_params(backtest)
    started = time.perf_counter()
    with running_sktime(), _dask_keeps_objects(backtest.backend), fitting(model, y, setting):
        results = evaluate(
            forecaster,
            cv,
            y,
            X=X,
            strategy=backtest.strategy,
            scoring=scoring,
            return_data=True,
            error_score="raise",
            backend=backtest.backend,
            backend_params=backend_params,
        )
    seconds = time.perf_counter() - started
    log.info("backtest %s: %d folds in %.1f s (%s)", model.name, len(results), seconds, setting)
    folds = [_fold(row, with_interval) for _, row in results.iterrows()]
    if not intervals or with_interval:
        return BacktestRun(model.name, folds, seconds)
    return conformal_run(model.name, folds, seconds, backtest)


def conformal_run(
    name: str, folds: list[Fold], seconds: float, backtest: BacktestConfig
) -> BacktestRun:
    """A backtest whose intervals come from the residuals of its earlier folds (per bucket)."""
    coverage, buckets = backtest.coverage, backtest.bucket_hours
    return BacktestRun(
        name,
        with_conformal_intervals(folds, coverage, bucket_hours=buckets),
        seconds,
        calibrate(folds, coverage, bucket_hours=buckets),
    )


def _backend_params(backtest: BacktestConfig) -> dict[str, Any] | None:
    if backtest.backend is None:
        return None
    params: dict[str, Any] = {"n_jobs": backtest.n_jobs}
    if backtest.backend == "loky":
        # joblib hands it to loky: each worker process drops sktime's announcement itself
        params["initializer"] = quiet_worker
    return params


def _fold(row: pd.Series, with_interval: bool) -> Fold:
    actual: pd.Series = row["y_test"]
    forecast: pd.Series = row["y_pred"]  # the progress scorer is a point metric: always there
    lower = upper = None
    if with_interval:
        interval: pd.DataFrame = row["y_pred_interval"]
        lower = pd.Series(interval.iloc[:, 0].to_numpy(), index=actual.index)
        upper = pd.Series(interval.iloc[:, 1].to_numpy(), index=actual.index)
    return Fold(
        cutoff=pd.Timestamp(row["cutoff"]),
        actual=actual,
        forecast=forecast,
        lower=lower,
        upper=upper,
        scale=seasonal_scale(row["y_train"], MASE_SEASON),
    )
