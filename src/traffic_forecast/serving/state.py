"""What the served model has been told, and in which form it runs: lean, or through sktime.

A state is the model and its fallback up to the last observed hour. The packaged state is
checked once, at start: the lean forms serve only if they forecast what sktime forecasts.
Told new hours, a state moves on without a refit (`told`): in numpy for a lean form, through
sktime's ``update(update_params=False)`` otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from traffic_forecast.forecasting.export import LeanModel, days_since_epoch
from traffic_forecast.forecasting.forecasters import exogenous, one_openmp_thread, running_sktime
from traffic_forecast.forecasting.inference import LeanForecaster
from traffic_forecast.forecasting.lean_ensemble import LeanEnsemble
from traffic_forecast.serving.artifacts import ModelArtifacts

FloatArray = npt.NDArray[np.float64]
LEAN, SKTIME = "lean", "sktime"
# The lean form serves only if it forecasts what sktime does, to this relative difference.
LEAN_TOLERANCE = 1e-9
# What `export` makes of a whole model, as classes for isinstance (typed: get_args is not)
LEAN_FORMS: tuple[type[LeanForecaster], type[LeanEnsemble]] = get_args(LeanModel)


@dataclass(frozen=True)
class ModelState:
    """What the model has been told: model and fallback up to the last observed hour.

    Each is a lean form (`LEAN_FORMS`) or a fitted sktime forecaster (`packaged_state` chooses).
    """

    forecaster: Any
    baseline: Any
    recent: pd.Series  # the target's last week up to the last observed hour, hourly index
    inference: str = SKTIME  # LEAN when the model runs in its lean form
    why_not_lean: str | None = None

    @property
    def last_observed(self) -> pd.Timestamp:
        """The newest hour the model has seen."""
        return pd.Timestamp(self.recent.index[-1])


def _disagreement(lean: FloatArray, reference: FloatArray) -> float:
    """The largest relative difference between two forecasts (inf where one is not finite)."""
    if lean.shape != reference.shape or not np.isfinite(lean).all():
        return float("inf")
    scale = np.maximum(np.abs(reference), 1.0)
    return float(np.max(np.abs(lean - reference) / scale, initial=0.0))


def packaged_state(artifacts: ModelArtifacts) -> ModelState:
    """The packaged model's state: lean where its lean form agrees with sktime's forecast."""
    forms = artifacts.lean
    stamps = pd.date_range(
        artifacts.recent.index[-1] + pd.Timedelta(hours=1), periods=len(artifacts.future), freq="h"
    )
    fh = ForecastingHorizon(stamps, is_relative=False)
    columns = list(artifacts.card.get("exogenous_columns", []))
    X = exogenous(artifacts.future, columns) if artifacts.card.get("uses_exog") else None
    days = days_since_epoch(stamps)
    chosen, reasons = [], [forms.not_exported] if forms.not_exported else []
    model_form = forms.forecaster
    if model_form is not None and artifacts.intervals.get("method") == "native":
        model_form = None  # its intervals are sktime's own quantiles: the model stays sktime's
        reasons.append("the model's native intervals come from sktime")
    for name, lean, fitted, features in (
        ("model", model_form, artifacts.forecaster, X),
        ("fallback", forms.baseline, artifacts.baseline, None),
    ):
        if lean is None:
            chosen.append(fitted)
            continue
        with running_sktime(libraries_loaded=True):
            reference = np.asarray(fitted.predict(fh, X=features), dtype=float).ravel()
            try:
                mine = lean.predict(days, None if features is None else features.to_numpy())
            except ValueError:  # packaged with other features than the card lists
                mine = np.full(len(days), np.nan)
        difference = _disagreement(mine, reference)
        if difference <= LEAN_TOLERANCE:
            chosen.append(lean)
            reasons += _partly_sktime(lean)
        else:
            chosen.append(fitted)
            reasons.append(f"the {name}'s lean form differs from sktime by {difference:.1e}")
    inference = LEAN if isinstance(chosen[0], LEAN_FORMS) else SKTIME
    return ModelState(chosen[0], chosen[1], artifacts.recent, inference, "; ".join(reasons) or None)


def _partly_sktime(lean: LeanModel) -> list[str]:
    """Why a lean ensemble still runs some members through sktime (for ``/metadata``)."""
    slow = lean.through_sktime if isinstance(lean, LeanEnsemble) else ()
    return [f"the ensemble runs {', '.join(slow)} through sktime (no lean form)"] if slow else []


def told(model: Any, y: pd.Series, X: pd.DataFrame | None) -> Any:
    """``model`` having seen ``y`` (and the hours' features ``X``), its parameters kept."""
    if isinstance(model, LEAN_FORMS):
        features = X.to_numpy() if X is not None and model.uses_features else None
        with one_openmp_thread():
            return model.advanced(
                y.to_numpy(), days_since_epoch(pd.DatetimeIndex(y.index)), features
            )
    moved = copy.deepcopy(model)
    with running_sktime(libraries_loaded=True):
        moved.update(y, X=X, update_params=False)
    return moved
