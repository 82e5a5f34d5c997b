"""``traffic-forecast package``: save the trained model into the BentoML model store, traceably.

The model's labels say where it came from (the git commit it was packaged at, data version,
config hash) and how it backtested (MASE, against the baseline's), so ``bentoml models list``
answers "which data and code made the model that is serving" without opening it. The commit is
a label, not part of the model card: the card is a DVC output, the same bytes at every commit
that trains the same model. Serving then loads only this folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.lineage import config_hash, git_commit
from traffic_forecast.core.settings import load_config
from traffic_forecast.serving import artifacts

log = logging.getLogger(__name__)


def labels(card: dict[str, Any], metrics: dict[str, Any], commit: str) -> dict[str, str]:
    """BentoML labels (strings): the commit, and lineage from the model card and the metrics."""

    def text(value: Any) -> str:
        return (
            "unknown"
            if value is None
            else f"{value:.4g}"
            if isinstance(value, float)
            else str(value)
        )

    return {
        "git_commit": commit,
        "data_version": text(card.get("data_version")),
        "config_hash": text(card.get("config_hash") or config_hash(card.get("config", {}))),
        "model": text(card.get("model")),
        "baseline": text(card.get("baseline")),
        "backtest_mase": text(metrics.get("model", {}).get("mase")),
        "baseline_mase": text(metrics.get("baseline", {}).get("mase")),
        "backtest_folds": text(metrics.get("backtest", {}).get("folds")),
    }


def save(cfg: Config, edit: Callable[[Path], None] | None = None) -> str:
    """Create a new model version in the store from the pipeline's outputs; its tag.

    The folder is read back as serving will read it before the version is kept: a model that
    cannot load never reaches the store. ``edit`` changes the gathered folder first (an
    experiment's demo challenger: the pipeline's baseline as the model).
    """
    with tempfile.TemporaryDirectory() as staging:
        artifacts.gather(cfg, Path(staging))
        if edit is not None:
            edit(Path(staging))
        loaded = artifacts.load(Path(staging))
        metadata = {
            "training_window": loaded.card.get("training_window", {}),
            "interval_method": loaded.intervals.get("method"),
        }
        with bentoml.models.create(
            cfg.serving.model_name,
            labels=labels(loaded.card, loaded.metrics, git_commit()),
            metadata=metadata,
        ) as model:
            shutil.copytree(staging, model.path, dirs_exist_ok=True)
    return str(model.tag)


def _run(args: argparse.Namespace) -> int:
    tag = save(load_config(args.overrides))
    home = os.environ.get("BENTOML_HOME", "~/bentoml")
    log.info("saved %s in the BentoML model store (%s)", tag, home)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast package [overrides…]``."""
    return command.run(command.parser("package", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
