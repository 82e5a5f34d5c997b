"""A fitted forecaster in lean form: numpy arrays and the regressor's own ``predict``, no sktime.

sktime spends tens of milliseconds per ``predict`` on checks, conversions and pandas indexes;
the arithmetic of our pipelines is a few array operations. `traffic_forecast.forecasting.export`
turns a fitted sktime pipeline into the classes here when it packages a model. Serving then
forecasts 168 hours of any sale calendar in milliseconds (a recursive model: one regressor call
per hour, for every what-if at once), and moves the model on with live actuals without sktime.
Each step mirrors the sktime operation it replaces, in the same order of floating-point
operations, so both agree to rounding (tests/forecasting/test_inference).

A pipeline is the sktime ``TransformedTargetForecaster`` shape: target transforms, then a
forecaster of the transformed series. Every transform is row-wise (hour ``i`` of the output
depends on hour ``i`` of the input only). The forecaster of the transformed series is either

* a `SeriesForecaster`, from its own past alone: the whole model is row-wise in the features,
  and a what-if recomputes only the hours whose features it changes; or
* a `FeatureRecursion`, from its own past and each hour's features, one hour at a time, each
  forecast a lag of the next: the features of hour ``h`` move every hour from ``h`` on, and a
  what-if recomputes every hour from the first one it changes.

`Scenarios` hide that difference from serving: the forecasts of one horizon under the default
features, made once, and under any others, recomputing only what the other features can move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from traffic_forecast.forecasting.scenarios import RecursiveScenarios, RowWiseScenarios, Scenarios

FloatArray = npt.NDArray[np.float64]


class Transform(Protocol):
    """A row-wise target transform: ``days`` (since 1970, float) and features per hour."""

    def transform(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The transformed target, as sktime's ``transform``."""

    def inverse(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The target back, as sktime's ``inverse_transform``."""


class Component(Protocol):
    """A deterministic part of the target removed by a detrender: a trend, a regression."""

    def values(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """Its value at each hour."""


class SeriesForecaster(Protocol):
    """Forecasts the transformed target from its own past alone; moves on with new values."""

    def forecast(self, hours: int) -> FloatArray:
        """The next ``hours`` values after the last one seen."""

    def advanced(self, values: FloatArray) -> SeriesForecaster:
        """The same fitted forecaster having seen ``values`` after its last one."""


@runtime_checkable  # LeanForecaster tells the two kinds of forecaster apart by it
class FeatureRecursion(Protocol):
    """Forecasts the transformed target hour by hour from its past and each hour's features."""

    def continued(self, known: list[FloatArray], features: list[FloatArray]) -> list[FloatArray]:
        """Per ``k``: the values after those seen, then ``known[k]``, for hours ``features[k]``."""

    def advanced(self, values: FloatArray) -> FeatureRecursion:
        """The same fitted forecaster having seen ``values`` after its last one."""


class Lean(Protocol):
    """A fitted model in lean form, as serving uses it (`LeanForecaster`, an ensemble …)."""

    @property
    def uses_features(self) -> bool:
        """Whether forecasts depend on the hours' features (a sale calendar changes them)."""

    def predict(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The forecast of the hours after the last seen: ``days`` and ``X`` one row each."""

    def scenarios(self, days: FloatArray, X: FloatArray | None) -> Scenarios:
        """The forecasts of the hours ``days`` (after the last seen), ``X`` the default."""

    def advanced(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> Lean:
        """The same fitted model having seen ``y`` (the hours after its last seen one)."""


@dataclass(frozen=True)
class Log:
    """sktime's ``LogTransformer``: ``log(scale · (y + offset))``."""

    offset: float
    scale: float

    def transform(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """``log(scale · (y + offset))``."""
        logged: FloatArray = np.log(self.scale * (y + self.offset))
        return logged

    def inverse(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """``exp(y) / scale - offset``."""
        restored: FloatArray = (np.exp(y) / self.scale) - self.offset
        return restored


@dataclass(frozen=True)
class Detrend:
    """sktime's additive ``Detrender``: the target minus a deterministic component."""

    component: Component

    def transform(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """``y - component``."""
        detrended: FloatArray = y - self.component.values(days, X)
        return detrended

    def inverse(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """``y + component``."""
        restored: FloatArray = y + self.component.values(days, X)
        return restored


@dataclass(frozen=True)
class Trend:
    """sktime's ``PolynomialTrendForecaster``: a polynomial in days since 1970."""

    coefficients: FloatArray  # of days**0, days**1, … (powers below)
    powers: tuple[int, ...]
    intercept: float

    def values(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The trend at each hour."""
        columns = np.column_stack([days**power for power in self.powers])
        trend: FloatArray = columns @ self.coefficients + self.intercept
        return trend


@dataclass(frozen=True)
class Regression:
    """sktime's ``YfromX``: a fitted scikit-learn regressor of the hour's features."""

    estimator: Any  # fitted; predicts from the feature columns as floats, in the model's order

    def values(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The regressor's prediction for each hour (one ``predict`` call)."""
        if X is None:
            raise ValueError("this model needs the hours' features")
        predicted: FloatArray = np.asarray(self.estimator.predict(X), dtype=float)
        return predicted


@dataclass(frozen=True)
class AutoRegression:
    """statsmodels' ``AutoReg`` (sktime's ``AutoREG``), no trend: fixed coefficients, new lags."""

    coefficients: FloatArray  # one per lag, in the order of ``lags``
    lags: tuple[int, ...]
    history: FloatArray  # the last max(lags) values seen, oldest first

    def forecast(self, hours: int) -> FloatArray:
        """The recursive forecast: each hour from the seen and the already forecast ones."""
        depth = max(self.lags)
        window = np.concatenate([self.history, np.zeros(hours)])
        back = depth - np.asarray(self.lags)  # where each lag sits before the next value
        for h in range(hours):
            window[depth + h] = self.coefficients @ window[h + back]
        forecast: FloatArray = window[depth:]
        return forecast

    def advanced(self, values: FloatArray) -> AutoRegression:
        """The same coefficients, having seen ``values``."""
        seen = np.concatenate([self.history, values])[-max(self.lags) :]
        return replace(self, history=seen)


@dataclass(frozen=True)
class SeasonalNaive:
    """sktime's ``NaiveForecaster`` (``last`` or ``mean`` per season of ``sp`` hours)."""

    strategy: str  # "last" or "mean"
    sp: int
    history: FloatArray  # the last window seen (a whole number of seasons), oldest first

    def forecast(self, hours: int) -> FloatArray:
        """Each hour: the last, or the mean, of its season's hours in the window."""
        seasons = self.history.reshape(-1, self.sp)
        per_phase = seasons[-1] if self.strategy == "last" else np.nanmean(seasons, axis=0)
        tiled: FloatArray = np.tile(per_phase, -(-hours // self.sp))[:hours]
        return tiled

    def advanced(self, values: FloatArray) -> SeasonalNaive:
        """The same window length, ending at the newest value."""
        seen = np.concatenate([self.history, values])[-len(self.history) :]
        return replace(self, history=seen)


@dataclass(frozen=True)
class RecursiveReduction:
    """sktime's ``RecursiveReductionForecaster``: a regressor of the next value, fed back.

    The regressor's row for the hour after ``t`` is that hour's features, then ``y(t)``,
    ``y(t-1)`` … back over the window: sktime's column order (export checks the names). sktime
    imputes missing lags; a window of observed values (export checks) never has any.
    """

    estimator: Any  # fitted; predicts from [features…, lag 1, …, lag len(window)] as floats
    window: FloatArray  # the last values seen, oldest first

    def continued(self, known: list[FloatArray], features: list[FloatArray]) -> list[FloatArray]:
        """Per ``k``: the values after those seen, then ``known[k]``, for hours ``features[k]``.

        ``features[k]`` holds a row per hour. The paths step together, an hour at a time: one
        ``predict`` of the regressor per hour for all of them, which costs what one row does.
        """
        depth, count = len(self.window), len(features)
        hours = np.array([len(rows) for rows in features], dtype=int)
        longest = int(hours.max(initial=0))
        paths = np.empty((count, depth + longest))
        inputs = np.zeros((count, longest, features[0].shape[1] if count else 0))
        for k, (seen, rows) in enumerate(zip(known, features, strict=True)):
            paths[k, :depth] = np.concatenate([self.window, seen])[-depth:]
            inputs[k, : len(rows)] = rows
        for h in range(longest):
            going = np.flatnonzero(hours > h)
            lags = paths[going, h : depth + h][:, ::-1]  # the newest value is lag 1
            rows = np.concatenate([inputs[going, h], lags], axis=1)
            paths[going, depth + h] = self.estimator.predict(rows)
        return [paths[k, depth : depth + n] for k, n in enumerate(hours)]

    def advanced(self, values: FloatArray) -> RecursiveReduction:
        """The same regressor, the window ending at the newest value."""
        seen = np.concatenate([self.window, values])[-len(self.window) :]
        return replace(self, window=seen)


@dataclass(frozen=True)
class LeanForecaster:
    """Target transforms and a series forecaster: a fitted sktime pipeline, exported."""

    transforms: tuple[Transform, ...]
    forecaster: SeriesForecaster | FeatureRecursion
    columns: tuple[str, ...]  # the features X holds, in order (empty: the model takes none)

    @property
    def uses_features(self) -> bool:
        """Whether forecasts depend on the hours' features (a sale calendar changes them)."""
        return bool(self.columns)

    def series(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The series forecaster's forecast of the hours ``days``: what `restore` turns back."""
        if isinstance(self.forecaster, FeatureRecursion):
            return self.forecaster.continued([np.empty(0)], [_rows(X, len(days))])[0]
        return self.forecaster.forecast(len(days))

    def restore(self, series: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The target from the forecaster's values, hour by hour (any subset of hours)."""
        y = series
        for step in reversed(self.transforms):
            y = step.inverse(y, days, X)
        return y

    def predict(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The forecast of the hours after the last seen: ``days`` and ``X`` one row each."""
        return self.restore(self.series(days, X), days, X)

    def scenarios(self, days: FloatArray, X: FloatArray | None) -> Scenarios:
        """The forecasts of the hours ``days`` (after the last seen), ``X`` the default."""
        series = self.series(days, X)
        default = self.restore(series, days, X)
        if isinstance(self.forecaster, FeatureRecursion):
            return RecursiveScenarios(self, self.forecaster, days, X, series, default)
        return RowWiseScenarios(self, days, X, series, default)

    def advanced(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> LeanForecaster:
        """The same fitted model having seen ``y`` (the hours after its last seen one)."""
        transformed = y
        for step in self.transforms:
            transformed = step.transform(transformed, days, X)
        return replace(self, forecaster=self.forecaster.advanced(transformed))


def _rows(X: FloatArray | None, hours: int) -> FloatArray:
    """The hours' features for a recursion; none (zero columns) for a model without."""
    return np.empty((hours, 0)) if X is None else X
