"""A packaged model for the serving and deploy tests: six simulated weeks through the pipeline."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import bentoml
import pandas as pd

from tests.conftest import SMALL_PERIOD, config_under
from traffic_forecast.core.config import Config
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.pipeline import evaluate, features, train, validate
from traffic_forecast.serving.engine import ForecastEngine


@dataclass(frozen=True)
class Packaged:
    """The pipeline's config and the model tag it was saved under."""

    cfg: Config
    tag: str

    @property
    def folder(self) -> Path:
        """The model's folder in the BentoML store."""
        return Path(bentoml.models.get(self.tag).path)


def run_pipeline(root: Path, base: Config) -> Config:
    """Validate, features, train and a small backtest on six simulated weeks under ``root``."""
    backtest = dataclasses.replace(base.backtest, n_folds=5, horizon=24, step_hours=120)
    cfg = dataclasses.replace(config_under(root, base), backtest=backtest)
    write_raw_tables(simulate(SMALL_PERIOD), Path(cfg.paths.raw_dir))
    assert validate.run(cfg).passed
    features.run(cfg)
    train.run(cfg)
    evaluate.run(cfg)
    return cfg


def quiet_evening(engine: ForecastEngine) -> pd.Timestamp:
    """An evening hour of the horizon with no packaged sale for a day around it."""
    future = engine.artifacts.future
    for stamp in engine.timestamps[24:-24]:
        if stamp.hour != 18:
            continue
        near = (future["timestamp"] >= stamp - pd.Timedelta(hours=24)) & (
            future["timestamp"] < stamp + pd.Timedelta(hours=24)
        )
        if future.loc[near, "sale_active"].sum() == 0:
            return pd.Timestamp(stamp)
    raise AssertionError("the simulated horizon has no quiet evening")
