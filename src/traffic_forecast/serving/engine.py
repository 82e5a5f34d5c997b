"""Forecasts for serving, without HTTP: the default scenario once per state, what-ifs on demand.

An engine is one state of the model: what it has been told up to its last observed hour. The
default scenario (the packaged sale calendar) is forecast once, when the engine is made; a
request slices it and scales its interval. A what-if (planned sale events) rebuilds the sale
features of the horizon and runs the model again, which takes tens of ms. New actuals make a
new engine (`advanced`): the model's state moves forward without a refit, and the old engine
keeps answering until the new one replaces it whole.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from traffic_forecast.core.config import WEEK_HOURS
from traffic_forecast.data.schemas import SaleEventsRaw
from traffic_forecast.forecasting.features import features_after, sale_features
from traffic_forecast.forecasting.forecasters import exogenous, running_sktime
from traffic_forecast.forecasting.intervals import from_grid
from traffic_forecast.serving.artifacts import ModelArtifacts

FloatArray = npt.NDArray[np.float64]
NATIVE = "native"


class SelfCheckError(Exception):
    """The packaged model cannot forecast: the service stays alive but never becomes ready."""


@dataclass(frozen=True)
class ModelState:
    """What the model has been told: fitted forecasters updated up to the last observed hour."""

    forecaster: Any
    baseline: Any
    recent: pd.Series  # the target's last week up to the last observed hour, hourly index

    @property
    def last_observed(self) -> pd.Timestamp:
        """The newest hour the model has seen."""
        return pd.Timestamp(self.recent.index[-1])


@dataclass(frozen=True)
class PlannedEvent:
    """A sale a what-if request plans: ``[start, end)``, its kind, optionally its discount."""

    start: pd.Timestamp
    end: pd.Timestamp
    kind: str
    discount_pct: float | None = None


@dataclass(frozen=True)
class Forecast:
    """Hourly forecasts from the origin: point and interval, and whether the fallback made them."""

    timestamps: pd.DatetimeIndex
    value: FloatArray
    lower: FloatArray
    upper: FloatArray
    coverage: float
    fallback: bool = False
    reason: str | None = None  # why the fallback answered

    def __len__(self) -> int:
        return len(self.timestamps)


def _bounded(values: Any) -> FloatArray:
    # Traffic is never negative; a forecaster's arithmetic can dip below 0 at quiet hours.
    bounded: FloatArray = np.maximum(np.asarray(values, dtype=float), 0.0)
    return bounded


class ForecastEngine:
    """The packaged model's forecasts: precomputed default, what-ifs, the fallback."""

    def __init__(self, artifacts: ModelArtifacts, state: ModelState | None = None) -> None:
        self.artifacts = artifacts
        self.state = state or ModelState(artifacts.forecaster, artifacts.baseline, artifacts.recent)
        self.last_observed = self.state.last_observed
        self.origin = self.last_observed + pd.Timedelta(hours=1)
        self.timestamps = pd.date_range(self.origin, periods=len(artifacts.future), freq="h")
        self.uses_exog = bool(artifacts.card.get("uses_exog"))
        self.columns: list[str] = list(artifacts.card.get("exogenous_columns", []))
        self._native = artifacts.intervals.get("method") == NATIVE
        self._model_grid: list[float] = artifacts.intervals.get("log_residual_quantiles", [])
        self._baseline_grid: list[float] = artifacts.intervals["baseline_log_residual_quantiles"]
        self._fh = ForecastingHorizon(self.timestamps, is_relative=False)
        self.future = self._features(self.timestamps, self.state.recent)  # FutureFeatures
        self._model_point = self._predict(self.future)
        self._baseline_point = self._predict_baseline()
        self._interval = lru_cache(maxsize=32)(self._default_interval)
        self.check()

    @property
    def max_horizon(self) -> int:
        """How many hours ahead the model forecasts (``features.horizon``)."""
        return len(self.timestamps)

    def advanced(self, actuals: pd.Series) -> ForecastEngine:
        """A new engine: this one's model told ``actuals``, the hours after its last observed.

        The fitted parameters stay (sktime's ``update_params=False``): only the state moves,
        the lags and the cutoff, so the origin becomes the hour after the newest actual. This
        engine is left as it was; it answers until the caller swaps the new one in.
        """
        expected = pd.date_range(self.origin, periods=len(actuals), freq="h")
        if not expected.equals(pd.DatetimeIndex(actuals.index)):
            raise ValueError(f"actuals must be consecutive hours from {self.origin}")
        y = pd.Series(actuals.to_numpy(dtype=float), index=expected, name="y")
        observed = pd.concat([self.state.recent, y])
        forecaster = copy.deepcopy(self.state.forecaster)
        baseline = copy.deepcopy(self.state.baseline)
        X = None
        if self.uses_exog:
            X = exogenous(self._features(expected, observed), self.columns)
        with running_sktime(libraries_loaded=True):
            forecaster.update(y, X=X, update_params=False)
            baseline.update(y, update_params=False)
        state = ModelState(forecaster, baseline, observed.iloc[-WEEK_HOURS:])
        return ForecastEngine(self.artifacts, state)

    def _features(self, stamps: pd.DatetimeIndex, observed: pd.Series) -> pd.DataFrame:
        artifacts = self.artifacts
        return features_after(
            stamps, observed, artifacts.sale_events, artifacts.sale_kinds, artifacts.holidays
        )

    def _predict(self, future: pd.DataFrame) -> FloatArray:
        X = exogenous(future, self.columns) if self.uses_exog else None
        with running_sktime(libraries_loaded=True):
            return _bounded(self.state.forecaster.predict(self._fh, X=X).to_numpy())

    def _predict_baseline(self) -> FloatArray:
        with running_sktime(libraries_loaded=True):
            return _bounded(self.state.baseline.predict(self._fh).to_numpy())

    def check(self) -> None:
        """Raise `SelfCheckError` unless both forecasts are whole, finite and non-negative."""
        for name, values in (("model", self._model_point), ("fallback", self._baseline_point)):
            if len(values) != self.max_horizon or not np.isfinite(values).all():
                raise SelfCheckError(f"the {name} forecast is not {self.max_horizon} finite hours")
        for coverage in (self.artifacts.serving.default_coverage,):
            lower, upper = self._interval(coverage)
            if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
                raise SelfCheckError(f"the {coverage:.0%} interval is not finite")

    def _band(self, point: FloatArray, grid: list[float], coverage: float) -> tuple[Any, Any]:
        calibration = from_grid(grid, coverage)
        return _bounded(point * math.exp(calibration.low)), point * math.exp(calibration.high)

    def _model_interval(self, point: FloatArray, future: pd.DataFrame, coverage: float) -> Any:
        if not self._native:
            return self._band(point, self._model_grid, coverage)
        X = exogenous(future, self.columns) if self.uses_exog else None
        with running_sktime(libraries_loaded=True):
            band = self.state.forecaster.predict_interval(self._fh, X=X, coverage=coverage)
        return _bounded(band.iloc[:, 0].to_numpy()), _bounded(band.iloc[:, 1].to_numpy())

    def _default_interval(self, coverage: float) -> tuple[FloatArray, FloatArray]:
        lower, upper = self._model_interval(self._model_point, self.future, coverage)
        return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)

    def default(self, horizon: int, coverage: float) -> Forecast:
        """The default scenario's first ``horizon`` hours, from memory."""
        return self._sliced(self._model_point, self._interval(coverage), horizon, coverage)

    def fallback(self, horizon: int, coverage: float, reason: str) -> Forecast:
        """Seasonal naive (same hour last week), with intervals from its own backtest residuals."""
        band = self._band(self._baseline_point, self._baseline_grid, coverage)
        return self._sliced(self._baseline_point, band, horizon, coverage, reason)

    def what_if(self, events: list[PlannedEvent], horizon: int, coverage: float) -> Forecast:
        """The forecast if ``events`` were added to the sale calendar (slow: runs the model)."""
        if not self.uses_exog:
            return self.default(horizon, coverage)  # a model without sale features ignores them
        future = self.scenario(events)
        point = self._predict(future)
        return self._sliced(point, self._model_interval(point, future, coverage), horizon, coverage)

    def scenario(self, events: list[PlannedEvent]) -> pd.DataFrame:
        """The horizon's features with ``events`` added to the packaged sale calendar."""
        known = self.artifacts.sale_events
        planned = pd.DataFrame(
            {
                SaleEventsRaw.start: [e.start for e in events],
                SaleEventsRaw.end: [e.end for e in events],
                SaleEventsRaw.kind: [e.kind for e in events],
                SaleEventsRaw.discount_pct: [
                    self.typical_discount(e.kind) if e.discount_pct is None else e.discount_pct
                    for e in events
                ],
            }
        )
        calendar = planned if known is None else pd.concat([known[planned.columns], planned])
        sales = sale_features(self.timestamps, calendar, self.artifacts.sale_kinds)
        future = self.future.copy()
        future[list(sales.columns)] = sales.to_numpy()
        return future

    def typical_discount(self, kind: str) -> float:
        """The median discount of past sales of ``kind`` (of all sales if none; 0 without any)."""
        known = self.artifacts.sale_events
        if known is None or known.empty:
            return 0.0
        same = known[known[SaleEventsRaw.kind] == kind]
        return float((same if len(same) else known)[SaleEventsRaw.discount_pct].median())

    def _sliced(
        self,
        point: FloatArray,
        band: tuple[FloatArray, FloatArray],
        horizon: int,
        coverage: float,
        reason: str | None = None,
    ) -> Forecast:
        lower, upper = band
        return Forecast(
            self.timestamps[:horizon],
            point[:horizon],
            lower[:horizon],
            upper[:horizon],
            coverage,
            fallback=reason is not None,
            reason=reason,
        )
