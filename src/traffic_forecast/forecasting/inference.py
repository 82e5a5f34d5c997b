"""A fitted forecaster in lean form: numpy arrays and the regressor's own ``predict``, no sktime.

sktime spends tens of milliseconds per ``predict`` on checks, conversions and pandas indexes;
the arithmetic of our pipelines is a few array operations. `traffic_forecast.forecasting.export`
turns a fitted sktime pipeline into the classes here when it packages a model. Serving then
forecasts 168 hours of any sale calendar in about a millisecond, and moves the model on with
live actuals without sktime. Each step mirrors the sktime operation it replaces, in the same
order of floating-point operations, so both agree to rounding (tests/forecasting/test_inference).

A pipeline is the sktime ``TransformedTargetForecaster`` shape: target transforms, then a
forecaster of the transformed series that does not use the features. Every transform is
row-wise (hour ``i`` of the output depends on hour ``i`` of the input only), so a what-if
recomputes only the hours whose features it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

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
class LeanForecaster:
    """Target transforms and a series forecaster: a fitted sktime pipeline, exported."""

    transforms: tuple[Transform, ...]
    forecaster: SeriesForecaster
    columns: tuple[str, ...]  # the features X holds, in order (empty: the model takes none)

    @property
    def uses_features(self) -> bool:
        """Whether forecasts depend on the hours' features (a sale calendar changes them)."""
        return bool(self.columns)

    def residuals(self, hours: int) -> FloatArray:
        """The series forecaster's forecast: what `restore` turns into the target."""
        return self.forecaster.forecast(hours)

    def restore(self, residuals: FloatArray, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The target from the forecaster's values, hour by hour (any subset of hours)."""
        y = residuals
        for step in reversed(self.transforms):
            y = step.inverse(y, days, X)
        return y

    def predict(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The forecast of the hours after the last seen: ``days`` and ``X`` one row each."""
        return self.restore(self.residuals(len(days)), days, X)

    def advanced(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> LeanForecaster:
        """The same fitted model having seen ``y`` (the hours after its last seen one)."""
        transformed = y
        for step in self.transforms:
            transformed = step.transform(transformed, days, X)
        return replace(self, forecaster=self.forecaster.advanced(transformed))
