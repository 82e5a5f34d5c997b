"""A stacked ensemble: a non-negative weighted sum of candidate forecasts, weights learnt in order.

The weights are least squares with non-negative coefficients (scipy's ``nnls``) of the actual
hours on the candidates' forecasts, each fold scaled by its MASE denominator so that every fold
counts as it does in the MASE. They need not sum to 1: a common bias of the candidates is
corrected too. In the backtest, fold ``k`` is combined with weights learnt on folds before it
only (no look-ahead); the first fold, with nothing before it, takes the plain mean. The model
that is trained and served uses the weights learnt on every fold.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import nnls
from sktime.forecasting.compose import EnsembleForecaster, IgnoreX

from traffic_forecast.forecasting.metrics import Fold

FloatArray = npt.NDArray[np.float64]


class StackedEnsemble(EnsembleForecaster):  # type: ignore[misc]  # sktime is untyped
    """sktime's ``EnsembleForecaster`` whose forecast is ``Σ weight·forecast``, unnormalised.

    sktime's own weighted mean divides by the weights' sum, which would undo the bias
    correction the stacking weights carry.
    """

    def __init__(
        self, forecasters: list[tuple[str, Any]], weights: list[float], n_jobs: int | None = None
    ) -> None:
        super().__init__(forecasters=forecasters, n_jobs=n_jobs, weights=weights)

    def _predict(self, fh: Any, X: Any = None) -> Any:
        forecasts = self._predict_forecasters(fh, X)
        return sum(w * f for w, f in zip(self.weights, forecasts, strict=True))


def stacked(
    members: dict[str, Any], weights: dict[str, float], without_features: list[str]
) -> StackedEnsemble:
    """The ensemble from Hydra-built ``members``; those ``without_features`` never see X.

    A candidate configured without exogenous inputs is wrapped in sktime's ``IgnoreX``, so in
    the ensemble it forecasts exactly as it was backtested alone.
    """
    forecasters = [
        (name, IgnoreX(forecaster) if name in without_features else forecaster)
        for name, forecaster in members.items()
    ]
    return StackedEnsemble(forecasters, [float(weights[name]) for name in members])


def stacking_weights(forecasts: list[list[Fold]]) -> FloatArray:
    """Non-negative weights of the candidates (``forecasts[i]``: candidate i's folds).

    Every candidate's folds must be the same folds; the plain mean when there are none.
    """
    count = len(forecasts)
    if not forecasts[0]:
        return np.full(count, 1.0 / count)
    scales = np.concatenate([np.full(len(f.actual), f.scale) for f in forecasts[0]])
    scales = np.where(np.isfinite(scales) & (scales > 0), scales, 1.0)  # a flat fold: unscaled
    actual = np.concatenate([f.actual.to_numpy(dtype=float) for f in forecasts[0]]) / scales
    design = np.column_stack(
        [np.concatenate([f.forecast.to_numpy(dtype=float) for f in folds]) for folds in forecasts]
    )
    weights, _ = nnls(design / scales[:, None], actual)
    return np.asarray(weights, dtype=float)


def stacked_folds(forecasts: list[list[Fold]]) -> list[Fold]:
    """The ensemble's backtest: fold ``k`` weighted by what folds before ``k`` taught."""
    folds = []
    for k, parts in enumerate(zip(*forecasts, strict=True)):
        weights = stacking_weights([candidate[:k] for candidate in forecasts])
        combined = sum(
            w * part.forecast.to_numpy(dtype=float) for w, part in zip(weights, parts, strict=True)
        )
        forecast = pd.Series(combined, index=parts[0].actual.index, name=parts[0].forecast.name)
        folds.append(dataclasses.replace(parts[0], forecast=forecast, lower=None, upper=None))
    return folds
