"""Forecasters from ``conf/model/``: each fits and forecasts, and the backtest's intervals hold.

All on six weeks of simulated hours (1008), built once per module from the `small_raw` data
(a weekly season fits six times).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.forecasting.conftest import MODEL_OPTIONS, model_config
from traffic_forecast.core.config import BacktestConfig, Config, ModelConfig
from traffic_forecast.forecasting.backtest import BacktestRun, run_backtest
from traffic_forecast.forecasting.features import ModelInputs, build_features, exogenous_columns
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime, target_series
from traffic_forecast.forecasting.intervals import MIN_CALIBRATION_FOLDS
from traffic_forecast.forecasting.metrics import Fold

FORECAST_HOURS = 24
WEEK = 168
# Folds of one day: the first MIN_CALIBRATION_FOLDS calibrate, the two after them are covered.
TINY_BACKTEST = BacktestConfig(horizon=24, n_folds=MIN_CALIBRATION_FOLDS + 2, step_hours=24)


def _backtest(model: ModelConfig, history: pd.DataFrame, **kwargs: bool) -> BacktestRun:
    run = run_backtest(model, history, TINY_BACKTEST, setting="model", **kwargs)
    assert len(run.folds) == TINY_BACKTEST.n_folds
    return run


def _assert_interval_around_forecast(fold: Fold) -> None:
    assert fold.lower is not None
    assert fold.upper is not None
    assert np.isfinite(fold.lower).all()
    assert np.isfinite(fold.upper).all()
    assert (fold.lower <= fold.forecast).all(), fold.cutoff
    assert (fold.forecast <= fold.upper).all(), fold.cutoff
    assert (fold.lower < fold.upper).any(), f"interval of zero width at {fold.cutoff}"


@pytest.mark.parametrize("option", MODEL_OPTIONS, ids=MODEL_OPTIONS)
def test_every_model_option_forecasts_the_next_day(option: str, inputs: ModelInputs) -> None:
    model = model_config(option)
    history, future = inputs.history, inputs.future
    forecaster = fit(model, history)

    X = None
    if model.uses_exog:
        # The horizon has the features the model was trained on, in the same order.
        assert exogenous_columns(future) == exogenous_columns(history)
        X = exogenous(future.iloc[:FORECAST_HOURS], exogenous_columns(future))
    with running_sktime():
        forecast = forecaster.predict(fh=np.arange(1, FORECAST_HOURS + 1), X=X)

    last = history["timestamp"].iloc[-1]
    expected = pd.date_range(last + pd.Timedelta(hours=1), periods=FORECAST_HOURS, freq="h")
    assert len(forecast) == FORECAST_HOURS
    assert pd.DatetimeIndex(forecast.index).equals(expected)
    values = forecast.to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert (values > 0).all()
    # Weekly traffic: tomorrow is like the same day last week, give or take a factor of two.
    last_week = target_series(history).iloc[-WEEK : -WEEK + FORECAST_HOURS].to_numpy()
    assert ((values > last_week / 2) & (values < last_week * 2)).all()


def test_default_model_gets_calibrated_intervals_in_the_backtest(
    inputs: ModelInputs, base_config: Config
) -> None:
    run = _backtest(base_config.model, inputs.history)

    assert run.calibration is not None, "the default model should get conformal intervals"
    assert run.calibration.coverage == TINY_BACKTEST.coverage
    assert run.calibration.residuals == TINY_BACKTEST.n_folds * TINY_BACKTEST.horizon
    assert all(bucket.low < 0 < bucket.high for bucket in run.calibration.buckets)
    for fold in run.folds[:MIN_CALIBRATION_FOLDS]:
        assert fold.lower is None  # no earlier folds to calibrate on
        assert fold.upper is None
    for fold in run.folds[MIN_CALIBRATION_FOLDS:]:
        _assert_interval_around_forecast(fold)


def test_native_intervals_of_theta_are_scored_in_every_fold(inputs: ModelInputs) -> None:
    native = dataclasses.replace(model_config("theta"), intervals="native")
    run = _backtest(native, inputs.history)

    assert run.calibration is None
    for fold in run.folds:
        _assert_interval_around_forecast(fold)


def test_seasonal_naive_as_the_model_gets_finite_intervals(inputs: ModelInputs) -> None:
    run = _backtest(model_config("seasonal_naive"), inputs.history)

    for fold in run.folds[MIN_CALIBRATION_FOLDS:]:
        _assert_interval_around_forecast(fold)


def test_baseline_backtest_is_the_same_hour_last_week(
    inputs: ModelInputs, base_config: Config
) -> None:
    assert base_config.baseline.name == "seasonal_naive"
    history = inputs.history
    run = run_backtest(
        base_config.baseline, history, TINY_BACKTEST, setting="baseline", intervals=False
    )

    y = target_series(history)
    assert len(run.folds) == TINY_BACKTEST.n_folds
    assert run.folds[-1].actual.index[-1] == y.index[-1]  # the last fold ends at the last hour
    for fold in run.folds:
        hours = fold.actual.index
        assert len(hours) == TINY_BACKTEST.horizon
        assert hours[0] == fold.cutoff + pd.Timedelta(hours=1)
        assert fold.forecast.index.equals(hours)
        week_before = y.loc[hours - pd.Timedelta(hours=WEEK)].to_numpy()
        np.testing.assert_allclose(fold.forecast.to_numpy(), week_before)
        np.testing.assert_array_equal(fold.actual.to_numpy(), y.loc[hours].to_numpy())
        assert fold.lower is None


# sktime 1.2's announcement, verbatim: `running_sktime` drops it.
ANNOUNCEMENT = (
    "The default of config ``remember_data`` will change from ``True`` to ``False`` in sktime "
    "1.3.0. After 1.3.0, ``BaseForecaster`` will no longer store incremental data in ``_X`` and "
    "``_y`` by default."
)
# A warning of sktime's that users need (the update strategy refitting), another future
# change, and one from numpy: all must reach the user from inside `running_sktime`.
KEPT_WARNINGS: dict[str, tuple[type[Warning], str]] = {
    "user_warning": (UserWarning, "NotImplementedWarning: AutoREG will be refit on each update"),
    "other_future_warning": (FutureWarning, "The default of config ``backend`` will change"),
    "runtime_warning": (RuntimeWarning, "invalid value encountered in scalar divide"),
}


def _warn_inside_running_sktime(category: type[Warning], message: str) -> int:
    """Raise the announcement and ``message`` inside the block; the line ``message`` came from."""
    with running_sktime():
        warnings.warn(ANNOUNCEMENT, FutureWarning, stacklevel=1)
        line = _next_line()
        warnings.warn(message, category, stacklevel=1)
    return line


def _next_line() -> int:
    caller = inspect.currentframe()
    assert caller is not None
    assert caller.f_back is not None
    return caller.f_back.f_lineno + 1


@pytest.mark.parametrize(("category", "message"), KEPT_WARNINGS.values(), ids=KEPT_WARNINGS.keys())
def test_running_sktime_drops_only_the_remember_data_announcement(
    category: type[Warning], message: str
) -> None:
    with pytest.warns(category) as seen:
        line = _warn_inside_running_sktime(category, message)

    assert [str(record.message) for record in seen] == [message]
    # Re-issued where it was raised, so the user sees which code warned.
    assert Path(seen[0].filename) == Path(__file__)
    assert seen[0].lineno == line


def test_a_model_forecasts_an_event_hour_with_what_the_event_adds(
    inputs: ModelInputs, base_config: Config
) -> None:
    # The example's six weeks with a flag on one hour in ten, which doubles the traffic then.
    history = inputs.history
    flags = np.random.default_rng(0).random(len(history)) < 0.1
    traffic = history[["timestamp", "target"]].assign(
        target=history["target"] * np.where(flags, 2.0, 1.0),
        event__promo=pd.array(flags.astype(int), dtype="Int64"),
    )
    flagged = build_features(traffic, None, [], base_config.features)
    model = model_config("gradient_boosting")
    assert model.uses_exog
    forecaster = fit(model, flagged.history)
    columns = exogenous_columns(flagged.history)
    assert "event__promo" in columns
    fh = np.arange(1, FORECAST_HOURS + 1)
    X = exogenous(flagged.future.iloc[:FORECAST_HOURS], columns)
    with running_sktime():
        quiet = forecaster.predict(fh=fh, X=X).to_numpy(dtype=float)
        eventful = forecaster.predict(fh=fh, X=X.assign(event__promo=1.0)).to_numpy(dtype=float)
    # The horizon takes 0 (no event known): the plain forecast; an event hour is far higher.
    ratio = eventful / quiet
    assert np.median(ratio) > 1.7, ratio
    assert (ratio > 1.3).all(), ratio
