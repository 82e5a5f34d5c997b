"""Bentos made for tests from the packaged model: its artifacts edited, then built."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bentoml

from tests.packaged import Packaged
from traffic_forecast.serving import artifacts, bento


def custom_bento(packaged: Packaged, folder: Path, edit: Callable[[Path], None]) -> str:
    """A Bento of the packaged model's artifacts after ``edit`` (on a copy in ``folder``)."""
    folder.mkdir()
    artifacts.gather(packaged.cfg, folder)
    edit(folder)
    with bentoml.models.create(packaged.cfg.serving.model_name) as model:
        shutil.copytree(folder, model.path, dirs_exist_ok=True)
    return bento.build_bento()  # takes the newest model: this one


@dataclass(frozen=True)
class BuiltBentos:
    """Bentos several modules deploy (the `built` fixture: each made once per session)."""

    plain: str  # the packaged model as `make bento` builds it
    naive: str  # seasonal naive where the model should be: well-formed, worse
    no_capacity: str  # without capacity data: /capacity answers 503


def build_shared(packaged: Packaged, root: Path) -> BuiltBentos:
    """Build `BuiltBentos` under ``root``."""
    _, plain = bento.build(packaged.cfg)
    return BuiltBentos(
        plain,
        custom_bento(packaged, root / "naive", seasonal_naive),
        custom_bento(packaged, root / "no-capacity", without_capacity),
    )


def without_capacity(folder: Path) -> None:
    """No infrastructure table: the model's ``/capacity`` answers 503."""
    settings = json.loads((folder / artifacts.SERVING_FILE).read_text())
    (folder / artifacts.SERVING_FILE).write_text(json.dumps({**settings, "capacity": None}))


def seasonal_naive(folder: Path) -> None:
    """The pipeline's baseline (seasonal naive) where the model should be."""
    shutil.copyfile(folder / "baseline.zip", folder / "forecaster.zip")
    card = json.loads((folder / "model_card.json").read_text())
    card |= {"uses_exog": False, "exogenous_columns": []}
    (folder / "model_card.json").write_text(json.dumps(card))
