"""Forecasts for serving, without HTTP: the default scenario once per state, what-ifs on demand.

An engine is one state of the model: what it has been told up to its last observed hour. The
default scenario (the packaged sale calendar) is forecast once, when the engine is made; a
request slices it and puts an interval of any coverage around it. A what-if (planned sale
events) rebuilds the sale features of the horizon and forecasts again the hours they change.
New actuals make a new engine (`advanced`): the model's state moves forward without a refit,
and the old engine keeps answering until the new one replaces it whole.

The model runs in its lean form (`traffic_forecast.forecasting.inference`) when the package
has one that agrees with sktime's own forecast; otherwise through sktime, which is slower
(``inference`` says which, and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from traffic_forecast.core.config import WEEK_HOURS
from traffic_forecast.data.schemas import SaleEventsRaw
from traffic_forecast.forecasting.export import days_since_epoch
from traffic_forecast.forecasting.features import (
    SaleCalendar,
    event_columns,
    features_after,
    sale_column_names,
    sale_columns,
)
from traffic_forecast.forecasting.forecasters import exogenous, one_openmp_thread, running_sktime
from traffic_forecast.forecasting.inference import LeanForecaster
from traffic_forecast.forecasting.scenarios import Scenarios
from traffic_forecast.serving.artifacts import ModelArtifacts
from traffic_forecast.serving.bands import (
    NATIVE_LEVELS,
    at_level,
    bounded,
    conformal,
    fallback_grids,
    holding,
    model_grids,
)
from traffic_forecast.serving.state import LEAN_FORMS, ModelState, packaged_state, told

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
class WhatIf:
    """One what-if asked of the model: planned sales, hours ahead, interval coverage."""

    events: list[PlannedEvent]
    horizon: int
    coverage: float


@dataclass(frozen=True)
class Forecast:
    """Hourly forecasts from the origin: point and interval, and whether the fallback made them."""

    window: pd.DatetimeIndex  # every hour the model forecasts; the answer's are the first
    value: FloatArray
    lower: FloatArray
    upper: FloatArray
    coverage: float
    fallback: bool = False
    reason: str | None = None  # why the fallback answered

    def __len__(self) -> int:
        return len(self.value)

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        """The answer's hours (sliced when asked: a request needs only their labels)."""
        return self.window[: len(self.value)]


class ForecastEngine:
    """The packaged model's forecasts: precomputed default, what-ifs, the fallback."""

    def __init__(self, artifacts: ModelArtifacts, state: ModelState | None = None) -> None:
        self.artifacts = artifacts
        self.state = state or packaged_state(artifacts)
        self.last_observed = self.state.last_observed
        self.origin = self.last_observed + pd.Timedelta(hours=1)
        self.timestamps = pd.date_range(self.origin, periods=len(artifacts.future), freq="h")
        self.hour_labels = [stamp.isoformat() for stamp in self.timestamps]  # for JSON answers
        self.uses_exog = bool(artifacts.card.get("uses_exog"))
        self.columns: list[str] = list(artifacts.card.get("exogenous_columns", []))
        self._events = event_columns(self.columns)  # 0 in every hour served: none is known
        self._native = artifacts.intervals.get("method") == NATIVE
        hours = len(self.timestamps)  # per-bucket grids spread over the hours, once per engine
        self._model_grids = None if self._native else model_grids(artifacts.intervals, hours)
        self._baseline_grids = fallback_grids(artifacts.intervals, hours)
        self._fh = ForecastingHorizon(self.timestamps, is_relative=False)
        self._days = days_since_epoch(self.timestamps)
        self._hours = self.timestamps.to_numpy(dtype="datetime64[ns]")
        self.future = self._features(self.timestamps, self.state.recent)  # FutureFeatures
        self._X = exogenous(self.future, self.columns).to_numpy() if self.uses_exog else None
        sale_names = set(sale_column_names(artifacts.sale_kinds))
        self._sale_columns = [(i, c) for i, c in enumerate(self.columns) if c in sale_names]
        self._discounts = _typical_discounts(artifacts.sale_events)
        self._calendar = SaleCalendar.of(artifacts.sale_events).touching(
            self._hours[0], self._hours[-1]
        )
        self._scenarios = self._lean_scenarios()  # None on sktime's path
        self._model_point = self._predict(self.future)
        self._baseline_point = self._predict_baseline()
        self._native_quantiles = self._quantiles() if self._native else None
        self.check()

    @property
    def max_horizon(self) -> int:
        """How many hours ahead the model forecasts (``features.horizon``)."""
        return len(self.timestamps)

    @property
    def is_lean(self) -> bool:
        """Whether the model runs in its lean form (else through sktime)."""
        return isinstance(self.state.forecaster, LEAN_FORMS)

    @property
    def inference(self) -> dict[str, Any]:
        """How the model forecasts, for ``/metadata``: lean or sktime, and why not lean."""
        return {"path": self.state.inference, "why_not_lean": self.state.why_not_lean}

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
        X = None
        if self.uses_exog:
            X = exogenous(self._features(expected, observed), self.columns)
        state = ModelState(
            told(self.state.forecaster, y, X),
            told(self.state.baseline, y, None),
            observed.iloc[-WEEK_HOURS:],
            self.state.inference,
            self.state.why_not_lean,
        )
        return ForecastEngine(self.artifacts, state)

    def _features(self, stamps: pd.DatetimeIndex, observed: pd.Series) -> pd.DataFrame:
        artifacts = self.artifacts
        return features_after(
            stamps,
            observed,
            artifacts.sale_events,
            artifacts.sale_kinds,
            artifacts.holidays,
            events=self._events,
        )

    def _lean_scenarios(self) -> Scenarios | None:
        """The lean form's forecasts of the horizon, default scenario first (None: sktime's)."""
        model = self.state.forecaster
        if not isinstance(model, LEAN_FORMS):
            return None
        with one_openmp_thread():
            return model.scenarios(self._days, self._X)

    def _predict(self, future: pd.DataFrame) -> FloatArray:
        if self._scenarios is not None:
            return bounded(self._scenarios.default)
        frame = exogenous(future, self.columns) if self.uses_exog else None
        with running_sktime(libraries_loaded=True):
            predicted = self.state.forecaster.predict(self._fh, X=frame)
            return bounded(np.asarray(predicted, dtype=float).ravel())

    def _predict_baseline(self) -> FloatArray:
        baseline = self.state.baseline
        if isinstance(baseline, LeanForecaster):
            return bounded(baseline.predict(self._days, None))
        with running_sktime(libraries_loaded=True):
            return bounded(np.asarray(baseline.predict(self._fh), dtype=float).ravel())

    def _quantiles(self) -> FloatArray:
        """The native quantiles at `NATIVE_LEVELS`, an hour per row (the sktime path)."""
        frame = exogenous(self.future, self.columns) if self.uses_exog else None
        with running_sktime(libraries_loaded=True):
            table = self.state.forecaster.predict_quantiles(
                self._fh, X=frame, alpha=list(NATIVE_LEVELS)
            )
        quantiles: FloatArray = np.sort(bounded(table.to_numpy()), axis=1)
        return quantiles

    def check(self) -> None:
        """Raise `SelfCheckError` unless both forecasts are whole, finite and non-negative."""
        for name, values in (("model", self._model_point), ("fallback", self._baseline_point)):
            if len(values) != self.max_horizon or not np.isfinite(values).all():
                raise SelfCheckError(f"the {name} forecast is not {self.max_horizon} finite hours")
        coverage = self.artifacts.serving.default_coverage
        for name, (lower, upper) in (
            ("model", self._model_band(self._model_point, coverage)),
            ("fallback", conformal(self._baseline_point, self._baseline_grids, coverage)),
        ):
            if not (np.isfinite(lower).all() and np.isfinite(upper).all()):
                raise SelfCheckError(f"the {name}'s {coverage:.0%} interval is not finite")

    def _model_band(self, point: FloatArray, coverage: float) -> tuple[FloatArray, FloatArray]:
        if self._native_quantiles is not None:
            tail = (1.0 - coverage) / 2
            return holding(
                point,
                at_level(self._native_quantiles, tail),
                at_level(self._native_quantiles, 1.0 - tail),
            )
        assert self._model_grids is not None  # conformal whenever not native
        return conformal(point, self._model_grids, coverage)

    @property
    def last_value(self) -> float:
        """The target in the last observed hour."""
        return float(self.state.recent.iloc[-1])

    @property
    def next_value(self) -> float:
        """The default forecast of the hour after it."""
        return float(self._model_point[0])

    def default(self, horizon: int, coverage: float) -> Forecast:
        """The default scenario's first ``horizon`` hours at any ``coverage``, from memory."""
        point = self._model_point[:horizon]
        return self._answer(point, self._model_band(point, coverage), coverage)

    def fallback(self, horizon: int, coverage: float, reason: str) -> Forecast:
        """Seasonal naive (same hour last week), with intervals from its own backtest residuals."""
        point = self._baseline_point[:horizon]
        band = conformal(point, self._baseline_grids, coverage)
        return self._answer(point, band, coverage, reason)

    def what_if(self, events: list[PlannedEvent], horizon: int, coverage: float) -> Forecast:
        """The forecast if ``events`` were added to the sale calendar."""
        return self.what_ifs([WhatIf(events, horizon, coverage)])[0]

    def what_ifs(self, asked: list[WhatIf]) -> list[Forecast]:
        """Several what-ifs at once (the service batches those that arrive together).

        Lean: the model's `Scenarios` forecast again only the hours the events can move (a
        row-wise model the hours whose features change, a recursive one every hour from the
        first that changes) and every what-if together (one ``predict`` of a regressor for all).
        """
        if not self.uses_exog:  # a model without sale features ignores them
            return [self.default(one.horizon, one.coverage) for one in asked]
        scenarios = [self._scenario_matrix(one.events) for one in asked]
        if self._scenarios is None:
            return [
                self._sktime_what_if(X, one.horizon, one.coverage)
                for X, one in zip(scenarios, asked, strict=True)
            ]
        with one_openmp_thread():
            points = self._scenarios.under(
                [X[: one.horizon] for X, one in zip(scenarios, asked, strict=True)]
            )
        answers = []
        for one, values in zip(asked, points, strict=True):
            point = bounded(values)
            answers.append(self._answer(point, self._model_band(point, one.coverage), one.coverage))
        return answers

    def _sktime_what_if(self, X: FloatArray, horizon: int, coverage: float) -> Forecast:
        frame = pd.DataFrame(X, index=self.timestamps, columns=self.columns)
        with running_sktime(libraries_loaded=True):
            point = bounded(self.state.forecaster.predict(self._fh, X=frame).to_numpy())
            if self._native:  # quantiles of this scenario, not of the default one
                band = self.state.forecaster.predict_interval(self._fh, X=frame, coverage=coverage)
                low, high = band.iloc[:, 0].to_numpy(), band.iloc[:, 1].to_numpy()
                return self._answer(point[:horizon], holding(point, low, high), coverage)
        point = point[:horizon]
        return self._answer(point, self._model_band(point, coverage), coverage)

    def _scenario_sales(self, events: list[PlannedEvent]) -> dict[str, Any]:
        """The horizon's sale features with ``events`` added to the packaged calendar."""
        planned = SaleCalendar(
            np.array([e.start.to_datetime64() for e in events], dtype="datetime64[ns]"),
            np.array([e.end.to_datetime64() for e in events], dtype="datetime64[ns]"),
            np.array([e.kind for e in events], dtype=str),
            np.array(
                [
                    self.typical_discount(e.kind) if e.discount_pct is None else e.discount_pct
                    for e in events
                ],
                dtype=float,
            ),
        )
        return sale_columns(self._hours, self._calendar.plus(planned), self.artifacts.sale_kinds)

    def _scenario_matrix(self, events: list[PlannedEvent]) -> FloatArray:
        """The model's features of the horizon (its column order) in the scenario."""
        assert self._X is not None
        sales = self._scenario_sales(events)
        X = self._X.copy()
        for i, name in self._sale_columns:
            X[:, i] = sales[name]
        return X

    def scenario(self, events: list[PlannedEvent]) -> pd.DataFrame:
        """The horizon's features with ``events`` added to the packaged sale calendar."""
        future = self.future.copy()
        for name, values in self._scenario_sales(events).items():
            future[name] = values
        return future

    def typical_discount(self, kind: str) -> float:
        """The median discount of past sales of ``kind`` (of all sales if none; 0 without any)."""
        return self._discounts.get(kind, self._discounts[""])

    def _answer(
        self,
        point: FloatArray,
        band: tuple[FloatArray, FloatArray],
        coverage: float,
        reason: str | None = None,
    ) -> Forecast:
        lower, upper = band
        hours = len(point)
        return Forecast(
            self.timestamps,
            point,
            lower[:hours],
            upper[:hours],
            coverage,
            fallback=reason is not None,
            reason=reason,
        )


def _typical_discounts(events: pd.DataFrame | None) -> dict[str, float]:
    """Median discount per sale kind, and of all sales under ``""`` (0 without any)."""
    if events is None or events.empty:
        return {"": 0.0}
    discounts = events[SaleEventsRaw.discount_pct].astype(float)
    by_kind = discounts.groupby(events[SaleEventsRaw.kind]).median()
    return {**{str(k): float(v) for k, v in by_kind.items()}, "": float(discounts.median())}
