"""Forecasts for serving, without HTTP: the default scenario once at load, what-ifs on demand.

The default scenario (the sale calendar as packaged) does not change until a new model is
packaged, so the point forecasts of the model and of its seasonal-naive fallback are computed
once, at load; a request slices them and scales its interval. A what-if (planned sale events)
rebuilds the sale features of the horizon and runs the model again, which takes tens of ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from traffic_forecast.data.schemas import SaleEventsRaw, TrafficRaw
from traffic_forecast.forecasting.features import sale_features
from traffic_forecast.forecasting.forecasters import exogenous, running_sktime
from traffic_forecast.forecasting.intervals import from_grid
from traffic_forecast.serving.artifacts import ModelArtifacts

FloatArray = npt.NDArray[np.float64]
NATIVE = "native"


class SelfCheckError(Exception):
    """The packaged model cannot forecast: the service stays alive but never becomes ready."""


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

    def __init__(self, artifacts: ModelArtifacts) -> None:
        self.artifacts = artifacts
        self.timestamps = pd.DatetimeIndex(artifacts.future[TrafficRaw.timestamp], freq="h")
        self.origin = pd.Timestamp(self.timestamps[0])  # the hour after the last observed one
        self.uses_exog = bool(artifacts.card.get("uses_exog"))
        self.columns: list[str] = list(artifacts.card.get("exogenous_columns", []))
        self._native = artifacts.intervals.get("method") == NATIVE
        self._model_grid: list[float] = artifacts.intervals.get("log_residual_quantiles", [])
        self._baseline_grid: list[float] = artifacts.intervals["baseline_log_residual_quantiles"]
        self._fh = ForecastingHorizon(self.timestamps, is_relative=False)
        self._model_point = self._predict(artifacts.future)
        self._baseline_point = self._predict_baseline()
        self._interval = lru_cache(maxsize=32)(self._default_interval)
        self.check()

    @property
    def max_horizon(self) -> int:
        """How many hours ahead the packaged features reach."""
        return len(self.timestamps)

    def _predict(self, future: pd.DataFrame) -> FloatArray:
        X = exogenous(future, self.columns) if self.uses_exog else None
        with running_sktime():
            return _bounded(self.artifacts.forecaster.predict(self._fh, X=X).to_numpy())

    def _predict_baseline(self) -> FloatArray:
        with running_sktime():
            return _bounded(self.artifacts.baseline.predict(self._fh).to_numpy())

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
        with running_sktime():
            band = self.artifacts.forecaster.predict_interval(self._fh, X=X, coverage=coverage)
        return _bounded(band.iloc[:, 0].to_numpy()), _bounded(band.iloc[:, 1].to_numpy())

    def _default_interval(self, coverage: float) -> tuple[FloatArray, FloatArray]:
        lower, upper = self._model_interval(self._model_point, self.artifacts.future, coverage)
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
        future = self.artifacts.future.copy()
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
