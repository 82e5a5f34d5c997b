"""What-ifs in lean form: one horizon's forecasts under the default features and under others.

Serving forecasts the default scenario once and then what-ifs (planned sales) by the hundred.
A scenario only moves the hours its features can reach: in a row-wise model the hours whose
features it changes; in a recursive one every hour from the first it changes. Those hours are
computed again, the rest taken from the default, so a what-if of any model agrees with a fresh
`LeanForecaster.predict` of it (tests/forecasting/test_inference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # they make the scenarios: a run-time import would be circular
    from traffic_forecast.forecasting.inference import FeatureRecursion, LeanForecaster

FloatArray = npt.NDArray[np.float64]


class Scenarios(Protocol):
    """A model's forecasts of the hours of one horizon: under the default features, and others."""

    @property
    def default(self) -> FloatArray:
        """The forecast under the features the scenarios were made with."""

    def under(self, features: list[FloatArray]) -> list[FloatArray]:
        """Per ``X`` in ``features``: the forecast of the ``len(X)`` first hours under ``X``.

        ``X`` holds those hours' features. Only the hours they can move are computed again.
        """


@dataclass(frozen=True)
class RowWiseScenarios:
    """A row-wise model's scenarios: an hour changes only if its own features do."""

    model: LeanForecaster
    days: FloatArray
    X: FloatArray | None
    series: FloatArray  # the series forecaster's values: no feature moves them
    default: FloatArray

    def under(self, features: list[FloatArray]) -> list[FloatArray]:
        """Only the changed hours are restored, those of every ``X`` in one call."""
        if self.X is None or not features:
            return [self.default[: len(rows)] for rows in features]
        changed = [_changed(rows, self.X) for rows in features]
        hours = np.concatenate(changed)
        values = np.empty(0)
        if len(hours):
            X = np.concatenate([rows[h] for rows, h in zip(features, changed, strict=True)])
            values = self.model.restore(self.series[hours], self.days[hours], X)
        answers, at = [], 0
        for rows, moved in zip(features, changed, strict=True):
            point = self.default[: len(rows)].copy()
            point[moved] = values[at : at + len(moved)]
            at += len(moved)
            answers.append(point)
        return answers


@dataclass(frozen=True)
class RecursiveScenarios:
    """A recursive model's scenarios: every hour from the first whose features change."""

    model: LeanForecaster
    recursion: FeatureRecursion
    days: FloatArray
    X: FloatArray | None
    series: FloatArray  # the recursion's values under the default features
    default: FloatArray

    def under(self, features: list[FloatArray]) -> list[FloatArray]:
        """Before its first change a scenario is the default; all go on from there together."""
        if self.X is None or not features:
            return [self.default[: len(rows)] for rows in features]
        starts = [_first_change(rows, self.X) for rows in features]
        paths = self.recursion.continued(
            [self.series[:start] for start in starts],
            [rows[start:] for rows, start in zip(features, starts, strict=True)],
        )
        answers = []
        for rows, start, path in zip(features, starts, paths, strict=True):
            point = self.default[: len(rows)].copy()
            if len(path):
                point[start:] = self.model.restore(path, self.days[start : len(rows)], rows[start:])
            answers.append(point)
        return answers


def _changed(rows: FloatArray, default: FloatArray) -> npt.NDArray[np.intp]:
    """The hours whose features differ from the default's."""
    return np.flatnonzero((rows != default[: len(rows)]).any(axis=1))


def _first_change(rows: FloatArray, default: FloatArray) -> int:
    """The first hour whose features differ from the default's (``len(rows)`` if none)."""
    changed = _changed(rows, default)
    return int(changed[0]) if len(changed) else len(rows)
