"""``model=auto``: candidates backtested on the same folds, the winner chosen by MASE.

The choice is a small record (`Choice`): the evaluate stage writes it, the train and explain
stages read it and rebuild the winning model's config (`chosen_model`), so a model is trained
only after the evidence that picked it, and the same evidence always picks the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from traffic_forecast.core.config import ModelConfig
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.forecasting.ensemble import stacked

ENSEMBLE = "ensemble"
STACKED = f"{stacked.__module__}.{stacked.__name__}"  # the ensemble's `_target_`


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, and the ensemble's weights when the ensemble won."""

    model: str
    weights: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The record as written to ``reports/choice.json``."""
        return {"model": self.model, "weights": self.weights}

    @classmethod
    def of(cls, record: dict[str, Any]) -> Choice:
        """The record read back."""
        return cls(str(record["model"]), {k: float(v) for k, v in record["weights"].items()})


def candidate_models(auto: ModelConfig) -> dict[str, ModelConfig]:
    """The candidates of ``model=auto`` as typed model configs, in their listed order."""
    models = {}
    for key, block in auto.candidates.items():
        fields = dict(block)
        if fields.get("candidates"):
            raise ConfigError(f"model.candidates.{key}: a candidate cannot itself be auto")
        models[str(key)] = ModelConfig(**fields)
    if ENSEMBLE in models:
        raise ConfigError(f"model.candidates: '{ENSEMBLE}' is the stacked ensemble's own name")
    return models


def choose(mase: dict[str, float | None], tie_tolerance: float) -> str:
    """The candidate with the lowest MASE; within ``tie_tolerance`` of it, the first listed.

    ``mase`` is in cost order (cheapest first, the ensemble last). A candidate without a
    score (a flat series gives no MASE) is never chosen unless none has one.
    """
    scored = {name: value for name, value in mase.items() if value is not None}
    if not scored:
        return next(iter(mase))
    best = min(scored.values())
    return next(name for name, value in scored.items() if value <= best * (1 + tie_tolerance))


def ensemble_model(candidates: dict[str, ModelConfig], weights: dict[str, float]) -> ModelConfig:
    """The stacked ensemble of the candidates with a non-zero weight, as a model config."""
    members = {name: candidates[name] for name, weight in weights.items() if weight > 0}
    if not members:  # nnls gave every candidate 0: nothing to combine
        raise ConfigError("the stacked ensemble has no candidate with a positive weight")
    forecaster = {
        "_target_": STACKED,
        "members": {name: model.forecaster for name, model in members.items()},
        "weights": {name: weights[name] for name in members},
        "without_features": [name for name, model in members.items() if not model.uses_exog],
    }
    return ModelConfig(
        name=ENSEMBLE,
        forecaster=forecaster,
        uses_exog=any(model.uses_exog for model in members.values()),
        intervals="conformal",
    )


def chosen_model(model: ModelConfig, choice: Choice | None) -> ModelConfig:
    """The model to train: ``model`` itself, or for ``model=auto`` the candidate it chose."""
    if not model.candidates:
        return model
    if choice is None:
        raise ConfigError("model=auto: no choice recorded yet: run the evaluate stage first")
    candidates = candidate_models(model)
    if choice.model == ENSEMBLE:
        return ensemble_model(candidates, choice.weights)
    if choice.model not in candidates:
        raise ConfigError(
            f"model=auto chose {choice.model!r}, which is no longer a candidate: "
            "run the evaluate stage again"
        )
    return candidates[choice.model]
