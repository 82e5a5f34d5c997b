"""The stacked ensemble in lean form: ``Σ weight · member``, each member lean where it can be.

A member without a lean form (theta, MSTL + ETS) stays the fitted sktime forecaster inside the
lean ensemble (`SktimeMember`): these take no features and cost tens of milliseconds through
sktime, so the ensemble still forecasts a horizon's what-ifs at the speed of its lean members,
the sktime ones forecasting it once (`Scenarios`). Live actuals move each member as it moves
alone: numpy for the lean ones, sktime's ``update(update_params=False)`` on a copy for the rest.
That update only moves the cutoff of statsmodels' Theta and exponential smoothing (their fitted
results cannot take new data): they forecast on from what they were fitted on, as through sktime.
The sum is taken in `StackedEnsemble._predict`'s order, so both agree to
rounding.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from traffic_forecast.forecasting.forecasters import HOURLY, running_sktime
from traffic_forecast.forecasting.inference import Lean
from traffic_forecast.forecasting.scenarios import Scenarios

FloatArray = npt.NDArray[np.float64]
HOUR = pd.Timedelta(hours=1)
# What sktime warns on every update of a statsmodels forecaster that cannot take new data.
CANNOT_APPEND = "NotImplementedWarning: .* can not accept new data when update_params=False"


@dataclass(frozen=True)
class SktimeMember:
    """A fitted sktime forecaster with `Lean`'s interface: a member that has no lean form."""

    forecaster: Any  # fitted sktime forecaster; this object's own (export copies it)
    columns: tuple[str, ...]  # the features it takes, in order (empty: none)

    @property
    def uses_features(self) -> bool:
        """Whether forecasts depend on the hours' features."""
        return bool(self.columns)

    def _hours(self, count: int) -> pd.DatetimeIndex:
        """The ``count`` hours after the last one told."""
        last = pd.Timestamp(self.forecaster.cutoff[0])
        return pd.date_range(last + HOUR, periods=count, freq=HOURLY)

    def _frame(self, X: FloatArray | None, hours: pd.DatetimeIndex) -> pd.DataFrame | None:
        if not self.uses_features or X is None:
            return None
        return pd.DataFrame(X, index=hours, columns=list(self.columns))

    def predict(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The sktime forecast of the ``len(days)`` hours after the last seen."""
        hours = self._hours(len(days))
        fh = ForecastingHorizon(hours, is_relative=False)
        with running_sktime(libraries_loaded=True):
            predicted = self.forecaster.predict(fh, X=self._frame(X, hours))
        return np.asarray(predicted, dtype=float).ravel()

    def scenarios(self, days: FloatArray, X: FloatArray | None) -> Scenarios:
        """The forecasts of the hours ``days``: once, unless the member takes features."""
        return SktimeScenarios(self, days, X, self.predict(days, X))

    def advanced(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> SktimeMember:
        """A copy told ``y``, its parameters kept (what `serving.state.told` does)."""
        hours = self._hours(len(y))
        moved = copy.deepcopy(self.forecaster)
        with running_sktime(libraries_loaded=True), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=CANNOT_APPEND)  # known: see the docstring
            moved.update(self._target(y, hours), X=self._frame(X, hours), update_params=False)
        return replace(self, forecaster=moved)

    def _target(self, y: FloatArray, hours: pd.DatetimeIndex) -> pd.Series | pd.DataFrame:
        """``y`` as the member saw its target: the ensemble hands its members a frame."""
        seen = getattr(self.forecaster, "_y", None)
        if isinstance(seen, pd.DataFrame):
            return pd.DataFrame(y, index=hours, columns=seen.columns)
        return pd.Series(y, index=hours, name=getattr(seen, "name", "y"))


@dataclass(frozen=True)
class SktimeScenarios:
    """An sktime member's scenarios: its default forecast, or sktime's for other features."""

    member: SktimeMember
    days: FloatArray
    X: FloatArray | None
    default: FloatArray

    def under(self, features: list[FloatArray]) -> list[FloatArray]:
        """The default where the features do not matter or did not change; else sktime's."""
        answers = []
        for rows in features:
            hours = len(rows)
            same = self.X is None or np.array_equal(rows, self.X[:hours])
            if not self.member.uses_features or same:
                answers.append(self.default[:hours])
            else:
                answers.append(self.member.predict(self.days[:hours], rows))
        return answers


@dataclass(frozen=True)
class LeanEnsemble:
    """`StackedEnsemble` exported: named members, their weights, and the features they share."""

    names: tuple[str, ...]
    members: tuple[Lean, ...]  # each a `LeanForecaster` or an `SktimeMember`
    weights: tuple[float, ...]
    columns: tuple[str, ...]  # the ensemble's features, in order (empty: it takes none)

    @property
    def uses_features(self) -> bool:
        """Whether forecasts depend on the hours' features (a sale calendar changes them)."""
        return bool(self.columns)

    @property
    def through_sktime(self) -> tuple[str, ...]:
        """The members that run through sktime (they have no lean form)."""
        return tuple(
            name
            for name, member in zip(self.names, self.members, strict=True)
            if isinstance(member, SktimeMember)
        )

    def _features(self, member: Lean, X: FloatArray | None) -> FloatArray | None:
        """What the member sees: the ensemble's features, or none (sktime's ``IgnoreX``)."""
        return X if member.uses_features else None

    def predict(self, days: FloatArray, X: FloatArray | None) -> FloatArray:
        """The weighted sum of the members' forecasts of the hours after the last seen."""
        return weighted(self.weights, [m.predict(days, self._features(m, X)) for m in self.members])

    def scenarios(self, days: FloatArray, X: FloatArray | None) -> Scenarios:
        """The forecasts of the hours ``days``, each member's scenarios made once."""
        parts = tuple(m.scenarios(days, self._features(m, X)) for m in self.members)
        return EnsembleScenarios(self, parts, weighted(self.weights, [p.default for p in parts]))

    def advanced(self, y: FloatArray, days: FloatArray, X: FloatArray | None) -> LeanEnsemble:
        """Every member having seen ``y`` (the hours after its last seen one)."""
        members = tuple(m.advanced(y, days, self._features(m, X)) for m in self.members)
        return replace(self, members=members)


@dataclass(frozen=True)
class EnsembleScenarios:
    """The ensemble's scenarios: the weighted sum of its members'."""

    ensemble: LeanEnsemble
    parts: tuple[Scenarios, ...]
    default: FloatArray

    def under(self, features: list[FloatArray]) -> list[FloatArray]:
        """Each member recomputes what the features move in it (a featureless one: nothing)."""
        by_member = [
            part.under(features) if member.uses_features else [part.default] * len(features)
            for member, part in zip(self.ensemble.members, self.parts, strict=True)
        ]
        return [
            weighted(self.ensemble.weights, [answers[k][: len(rows)] for answers in by_member])
            for k, rows in enumerate(features)
        ]


def weighted(weights: tuple[float, ...], forecasts: list[FloatArray]) -> FloatArray:
    """``Σ weight · forecast`` summed as Python's ``sum`` does in `StackedEnsemble._predict`."""
    total: FloatArray = np.zeros(len(forecasts[0]))
    for weight, forecast in zip(weights, forecasts, strict=True):
        total = total + weight * forecast
    return total
