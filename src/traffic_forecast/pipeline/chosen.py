"""The model the train and explain stages fit: the configured one, or what model=auto chose.

Not in `outputs`, which every stage imports: only the stages after evaluate depend on the
selection code, so a change to it does not re-run validate or features.
"""

from __future__ import annotations

from traffic_forecast.core.config import Config, ModelConfig
from traffic_forecast.forecasting.selection import Choice, chosen_model
from traffic_forecast.pipeline import outputs


def trained_model(cfg: Config) -> ModelConfig:
    """``cfg.model``, or for ``model=auto`` the candidate ``reports/choice.json`` names."""
    if not cfg.model.candidates:
        return cfg.model
    return chosen_model(cfg.model, Choice.of(outputs.read_json(outputs.CHOICE, cfg.paths)))
