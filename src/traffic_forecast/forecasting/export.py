"""Export a fitted sktime forecaster to its lean form (`traffic_forecast.forecasting.inference`).

Done when a model is packaged: the service then forecasts without sktime. Only compositions
whose every part has a lean twin are exported; anything else raises `NotExportable` with the
part's name, and serving keeps sktime's path for that model (``/metadata`` says which). The
stacked ensemble is the exception: a member without a lean form stays sktime's inside the lean
ensemble (`traffic_forecast.forecasting.lean_ensemble`), as long as one member has one.
"""

from __future__ import annotations

import copy
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures
from sktime.forecasting.auto_reg import AutoREG
from sktime.forecasting.compose import (
    IgnoreX,
    RecursiveReductionForecaster,
    TransformedTargetForecaster,
    YfromX,
)
from sktime.forecasting.naive import NaiveForecaster
from sktime.forecasting.trend import PolynomialTrendForecaster
from sktime.transformations.boxcox import LogTransformer
from sktime.transformations.detrend import Detrender

from traffic_forecast.forecasting.ensemble import StackedEnsemble
from traffic_forecast.forecasting.forecasters import stable_tags
from traffic_forecast.forecasting.inference import (
    AutoRegression,
    Component,
    Detrend,
    FeatureRecursion,
    Lean,
    LeanForecaster,
    Log,
    RecursiveReduction,
    Regression,
    SeasonalNaive,
    SeriesForecaster,
    Transform,
    Trend,
)
from traffic_forecast.forecasting.lean_ensemble import LeanEnsemble, SktimeMember

EPOCH = pd.Timestamp(0)
DAY = pd.Timedelta(days=1)
LeanModel: TypeAlias = LeanForecaster | LeanEnsemble  # what `export` makes of a whole model


class NotExportableError(Exception):
    """A part of the forecaster has no lean form: serving runs it through sktime."""


def days_since_epoch(stamps: pd.DatetimeIndex) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Days since 1970 as floats: the time axis of sktime's polynomial trends."""
    days: np.ndarray[Any, np.dtype[np.float64]] = ((stamps - EPOCH) / DAY).to_numpy(dtype=float)
    return days


def export(forecaster: Any, columns: list[str]) -> LeanModel:
    """The lean form of a fitted ``forecaster`` whose features are ``columns`` (none: [])."""
    if isinstance(forecaster, StackedEnsemble):
        return _ensemble(forecaster, columns)
    return _pipeline(forecaster, columns)


def _pipeline(forecaster: Any, columns: list[str]) -> LeanForecaster:
    if _ignores_features(forecaster):
        return _pipeline(forecaster.forecaster_, [])
    if isinstance(forecaster, TransformedTargetForecaster):
        *transforms, (_, last) = forecaster.steps_
        steps = tuple(_transform(step, columns) for _, step in transforms)
    else:
        steps, last = (), forecaster
    return LeanForecaster(steps, _series_forecaster(last, columns), tuple(columns))


def _ignores_features(forecaster: Any) -> bool:
    return isinstance(forecaster, IgnoreX) and bool(forecaster.ignore_x)


def _ensemble(fitted: StackedEnsemble, columns: list[str]) -> LeanEnsemble:
    """Each member lean if it can be, else sktime's own (a copy: the lean form owns it)."""
    names, members, missing = [], [], []
    for name, member in fitted.forecasters_:
        own = [] if _ignores_features(member) else columns
        lean: Lean
        try:
            lean = _pipeline(member, own)
        except NotExportableError as exc:
            missing.append(f"{name}: {exc}")
            lean = _sktime_member(member, own)
        names.append(str(name))
        members.append(lean)
    if len(missing) == len(members):  # nothing would run faster than sktime's own ensemble
        raise NotExportableError(f"no member of the ensemble has a lean form: {'; '.join(missing)}")
    weights = tuple(float(weight) for weight in fitted.weights)
    return LeanEnsemble(tuple(names), tuple(members), weights, tuple(columns))


def _not_exportable(part: Any, why: str = "has no lean form") -> NotExportableError:
    return NotExportableError(f"{type(part).__name__} {why}")


def _transform(step: Any, columns: list[str]) -> Transform:
    if isinstance(step, LogTransformer):
        return Log(float(step.offset), float(step.scale))
    if isinstance(step, Detrender) and step.model == "additive":
        return Detrend(_component(step.forecaster_, columns))
    raise _not_exportable(step)


def _component(fitted: Any, columns: list[str]) -> Component:
    if isinstance(fitted, PolynomialTrendForecaster):
        return _trend(fitted)
    if isinstance(fitted, YfromX) and fitted._est_type == "regressor":
        estimator = copy.deepcopy(fitted.estimator_)
        names = list(getattr(estimator, "feature_names_in_", columns))
        if names != columns:
            raise _not_exportable(fitted, f"was fitted on {names}, not on {columns}")
        # Arrays in the model's column order, not frames: the names are checked once, here.
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return Regression(estimator)
    raise _not_exportable(fitted)


def _trend(fitted: PolynomialTrendForecaster) -> Trend:
    pipeline = fitted.regressor_
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise _not_exportable(fitted, "has a custom regressor")
    polynomial, regressor = pipeline[0], pipeline[-1]
    if not isinstance(polynomial, PolynomialFeatures) or type(regressor) is not LinearRegression:
        raise _not_exportable(fitted, "has a custom regressor")
    powers = tuple(int(p) for p in polynomial.powers_[:, 0])
    return Trend(
        np.asarray(regressor.coef_, dtype=float), powers, float(np.ravel(regressor.intercept_)[0])
    )


def _sktime_member(fitted: Any, columns: list[str]) -> SktimeMember:
    """A copy of the fitted member, which serving runs through sktime."""
    return SktimeMember(stable_tags(copy.deepcopy(fitted)), tuple(columns))


def _series_forecaster(fitted: Any, columns: list[str]) -> SeriesForecaster | FeatureRecursion:
    if _ignores_features(fitted):
        return _series_forecaster(fitted.forecaster_, [])
    if isinstance(fitted, RecursiveReductionForecaster):
        return _recursion(fitted, columns)
    if isinstance(fitted, AutoREG):
        results = fitted._fitted_forecaster
        model = results.model
        if model.exog is not None or fitted.trend != "n" or fitted.seasonal:
            raise _not_exportable(fitted, "with trend, seasonal or exogenous terms")
        lags = tuple(int(lag) for lag in model.ar_lags)
        history = np.asarray(model.endog, dtype=float).ravel()[-max(lags) :]
        return AutoRegression(np.asarray(results.params, dtype=float), lags, history)
    if isinstance(fitted, NaiveForecaster) and fitted.strategy in {"last", "mean"}:
        sp, window = int(fitted.sp_ or 1), int(fitted.window_length_ or 0)
        seen = fitted._y.to_numpy(dtype=float).ravel()
        if window < sp or window % sp or window > len(seen) or np.isnan(seen[-window:]).any():
            raise _not_exportable(fitted, "without a whole number of seasons to look back on")
        return SeasonalNaive(str(fitted.strategy), sp, seen[-window:])
    raise _not_exportable(fitted)


def _recursion(fitted: RecursiveReductionForecaster, columns: list[str]) -> RecursiveReduction:
    """The regressor and the last window, checked to be what sktime's ``predict`` uses."""
    estimator, seen = fitted.estimator_, fitted._cur_y
    if fitted.pooling != "local" or isinstance(estimator, pd.Series) or seen.shape[1] != 1:
        raise _not_exportable(fitted, "without a fitted regressor of one series")
    depth = int(fitted.window_length)
    # sktime lags y by 0 … depth-1, then the table by 1: lag_1__lag_k__y is y(t - k).
    lags = [f"lag_1__lag_{k}__{seen.columns[0]}" for k in range(depth)]
    names = list(getattr(estimator, "feature_names_in_", [*columns, *lags]))
    if names != [*columns, *lags]:
        raise _not_exportable(fitted, f"was fitted on {names}, not on {columns} and the lags")
    window = seen.to_numpy(dtype=float).ravel()[-depth:]
    if len(window) < depth or not np.isfinite(window).all():  # sktime would impute lags
        raise _not_exportable(fitted, f"without {depth} observed values to look back on")
    estimator = copy.deepcopy(estimator)
    if hasattr(estimator, "feature_names_in_"):  # arrays in that order: names checked above
        del estimator.feature_names_in_
    return RecursiveReduction(estimator, window)
