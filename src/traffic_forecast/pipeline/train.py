"""Stage 4, train: fit the configured forecaster and the seasonal-naive fallback on all history.

With ``model=auto`` the forecaster is the one the evaluate stage chose (``reports/choice.json``).

Writes ``models/forecaster.zip``, ``models/baseline.zip`` (sktime's own format, byte-stable) and
``models/model_card.json``: the raw data that trained the model (version, each file's MD5),
the resolved config and its hash, the training window and the library versions. Nothing in
them changes from one commit or process to the next: the same data, code and config give the
same bytes, so ``dvc.lock`` changes only when something really changed. The commit a model was
packaged at is a BentoML label (`traffic_forecast.serving.package`), not part of the card.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from traffic_forecast.core import command, lineage
from traffic_forecast.core.config import Config, ModelConfig
from traffic_forecast.core.io import write_json_atomic
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.forecasting import forecasters
from traffic_forecast.forecasting.features import exogenous_columns
from traffic_forecast.pipeline import outputs
from traffic_forecast.pipeline.chosen import trained_model

log = logging.getLogger(__name__)

# The sections that decide what a trained model is; the stage's `params` in dvc.yaml match.
MODEL_SECTIONS = ("seed", "data", "features", "model", "baseline")


def resolved_config(cfg: Config) -> dict[str, Any]:
    """The config sections that made the model, as plain resolved data (card and hash)."""
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    assert isinstance(resolved, dict)
    return {str(key): resolved[key] for key in MODEL_SECTIONS}


def model_card(
    cfg: Config, model: ModelConfig, history: pd.DataFrame, data: dict[str, Any]
) -> dict[str, Any]:
    """Lineage of ``model`` trained on ``history`` (from the raw ``data``) with ``cfg``."""
    stamps = history[TrafficRaw.timestamp]
    resolved = resolved_config(cfg)
    return {
        "model": model.name,
        "chosen_by": "model=auto" if cfg.model.candidates else "config",
        "baseline": cfg.baseline.name,
        "uses_exog": model.uses_exog,
        "exogenous_columns": exogenous_columns(history) if model.uses_exog else [],
        "data_version": data["version"],
        "data": data,
        "training_frame_hash": lineage.frame_hash(history),
        "config_hash": lineage.config_hash(resolved),
        "config": resolved,
        "training_window": {
            "start": str(stamps.iloc[0]),
            "end": str(stamps.iloc[-1]),
            "hours": len(history),
        },
        "libraries": lineage.library_versions(),
    }


def run(cfg: Config) -> dict[str, Any]:
    """Fit model and fallback, save both and the model card; return the card."""
    paths = cfg.paths
    history, _ = outputs.read_features(paths)
    model = trained_model(cfg)
    forecaster = forecasters.fit(model, history)
    baseline = forecasters.fit(cfg.baseline, history, setting="baseline")
    forecasters.save(forecaster, outputs.FORECASTER.path(paths))
    forecasters.save(baseline, outputs.BASELINE.path(paths))
    card = model_card(cfg, model, history, outputs.read_json(outputs.FEATURES_DATA, paths))
    write_json_atomic(outputs.MODEL_CARD.path(paths), card)
    return card


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    card = run(cfg)
    window = card["training_window"]
    log.info(
        "trained %s on %d hours (%s → %s) of data %s; fallback %s; saved in %s/",
        card["model"],
        window["hours"],
        window["start"],
        window["end"],
        card["data_version"],
        card["baseline"],
        cfg.paths.model_dir,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast train [overrides…]`` (DVC: ``python -m …pipeline.train``)."""
    return command.run(command.parser("train", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
