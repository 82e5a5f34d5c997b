"""Stage 3, train: fit the configured forecaster and the seasonal-naive fallback on all history.

Writes ``models/forecaster.zip``, ``models/baseline.zip`` (sktime's own serialisation) and
``models/model_card.json``: data version, code commit, resolved config, training window and
library versions, so every model can say exactly which data and code made it.
"""

from __future__ import annotations

import logging
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf
from sktime.base import load

from traffic_forecast import lineage
from traffic_forecast.cli import run_stage
from traffic_forecast.config import Config, ModelConfig, load_config
from traffic_forecast.errors import PipelineInputError
from traffic_forecast.io import write_atomic, write_json_atomic
from traffic_forecast.models import (
    build_forecaster,
    check_fits_history,
    exogenous,
    running_sktime,
    target_series,
)
from traffic_forecast.pipeline.features import FUTURE_FILE, HISTORY_FILE, exogenous_columns

log = logging.getLogger(__name__)

FORECASTER_FILE = "forecaster.zip"
BASELINE_FILE = "baseline.zip"
MODEL_CARD_FILE = "model_card.json"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def fit(model: ModelConfig, history: pd.DataFrame, *, setting: str = "model") -> Any:
    """Fit ``model`` on the whole history (with the exogenous features if it uses them)."""
    check_fits_history(model, len(history), setting=setting)
    forecaster = build_forecaster(model, setting=setting)
    y = target_series(history)
    X = exogenous(history, exogenous_columns(history)) if model.uses_exog else None
    with running_sktime():
        return forecaster.fit(y, X=X)


def model_card(cfg: Config, history: pd.DataFrame) -> dict[str, Any]:
    """Lineage of a model trained on ``history`` with ``cfg``."""
    stamps = history["timestamp"]
    resolved = resolved_config(cfg)
    return {
        "model": cfg.model.name,
        "baseline": cfg.baseline.name,
        "uses_exog": cfg.model.uses_exog,
        "exogenous_columns": exogenous_columns(history) if cfg.model.uses_exog else [],
        "data_version": lineage.data_version(),
        "training_frame_hash": lineage.frame_hash(history),
        "git_commit": lineage.git_commit(),
        "config_hash": lineage.config_hash(resolved),
        "config": resolved,
        "training_window": {
            "start": str(stamps.iloc[0]),
            "end": str(stamps.iloc[-1]),
            "hours": len(history),
        },
        "libraries": lineage.library_versions(),
    }


# The sections that decide what a trained model is; the stage's `params` in dvc.yaml match.
MODEL_SECTIONS = ("seed", "data", "features", "model", "baseline")


def resolved_config(cfg: Config) -> dict[str, Any]:
    """The config sections that made the model, as plain resolved data (card and hash)."""
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    assert isinstance(resolved, dict)
    return {str(key): resolved[key] for key in MODEL_SECTIONS}


def save_forecaster(forecaster: Any, path: Path) -> None:
    """Save in sktime's format (a zip of ``_metadata`` and ``_obj``), byte-for-byte repeatable.

    sktime's own ``save`` zips through a temporary folder, stamping the current time into the
    archive, so the same model would hash differently on every run and DVC would see a change.
    """
    cls, payload = forecaster.save()  # no path: sktime returns the class and the pickle

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in (("_metadata", pickle.dumps(cls)), ("_obj", payload)):
                archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), data)

    write_atomic(path, write)


def load_forecaster(path: Path) -> Any:
    """Load a forecaster saved by `save_forecaster`."""
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: run the train stage first")
    return load(path)


def read_features(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features stage's history and future frames."""
    folder = Path(cfg.paths.features_dir)
    paths = folder / HISTORY_FILE, folder / FUTURE_FILE
    for path in paths:
        if not path.is_file():
            raise PipelineInputError(f"{path} not found: run the features stage first")
    return pd.read_parquet(paths[0]), pd.read_parquet(paths[1])


def run(cfg: Config) -> dict[str, Any]:
    """Fit model and fallback, save both and the model card; return the card."""
    history, _ = read_features(cfg)
    forecaster = fit(cfg.model, history)
    baseline = fit(cfg.baseline, history, setting="baseline")
    out = Path(cfg.paths.model_dir)
    save_forecaster(forecaster, out / FORECASTER_FILE)
    save_forecaster(baseline, out / BASELINE_FILE)
    card = model_card(cfg, history)
    write_json_atomic(out / MODEL_CARD_FILE, card)
    return card


def _main(overrides: list[str]) -> int:
    cfg = load_config(overrides)
    card = run(cfg)
    window = card["training_window"]
    log.info(
        "trained %s on %d hours (%s → %s); fallback %s; saved in %s/",
        card["model"],
        window["hours"],
        window["start"],
        window["end"],
        card["baseline"],
        cfg.paths.model_dir,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the stage (``python -m traffic_forecast.pipeline.train [overrides…]``)."""
    return run_stage(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
