"""The train stage: saved forecasters that load and forecast, and a truthful model card."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO_ROOT, SMALL_PERIOD, config_under
from traffic_forecast.config import Config
from traffic_forecast.errors import PipelineInputError
from traffic_forecast.models import exogenous
from traffic_forecast.pipeline import features, train, validate
from traffic_forecast.pipeline.features import exogenous_columns
from traffic_forecast.simulate import simulate, write_raw_tables

FORECAST_HOURS = 24


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, base_config: Config) -> Config:
    """Six weeks of simulated data through validate, features and train (once per module)."""
    cfg = config_under(tmp_path_factory.mktemp("train"), base_config)
    write_raw_tables(simulate(SMALL_PERIOD), Path(cfg.paths.raw_dir))
    assert validate.run(cfg).passed
    features.run(cfg)
    train.run(cfg)
    return cfg


def _card(cfg: Config) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(
        (Path(cfg.paths.model_dir) / train.MODEL_CARD_FILE).read_text(encoding="utf-8")
    )
    return card


def _forecast(forecaster: Any, future: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The next `FORECAST_HOURS` hours, given the future frame's features."""
    X = exogenous(future, exogenous_columns(future))
    fh = np.arange(1, FORECAST_HOURS + 1)
    values: npt.NDArray[np.float64] = forecaster.predict(fh=fh, X=X).to_numpy(dtype=float)
    return values


def test_train_writes_both_forecasters_and_the_card(trained: Config) -> None:
    out = Path(trained.paths.model_dir)

    names = {path.name for path in out.iterdir()}

    assert {train.FORECASTER_FILE, train.BASELINE_FILE, train.MODEL_CARD_FILE} <= names
    assert not [name for name in names if name.startswith((".", "tmp"))]  # no leftovers


def test_saved_forecaster_forecasts_every_hour_ahead(trained: Config) -> None:
    history, future = train.read_features(trained)

    forecast = _forecast(
        train.load_forecaster(Path(trained.paths.model_dir) / train.FORECASTER_FILE), future
    )

    assert forecast.shape == (FORECAST_HOURS,)
    assert np.isfinite(forecast).all()
    assert (forecast > 0).all()
    # Sessions per hour of the same order as those observed, not e.g. on the log scale.
    observed = history["target"]
    assert observed.min() / 2 < np.median(forecast) < 2 * observed.max()


def test_saved_baseline_forecasts_the_same_hour_last_week(trained: Config) -> None:
    history, _ = train.read_features(trained)
    baseline = train.load_forecaster(Path(trained.paths.model_dir) / train.BASELINE_FILE)

    forecast = baseline.predict(fh=np.arange(1, FORECAST_HOURS + 1)).to_numpy(dtype=float)

    last_week = history["target"].to_numpy(dtype=float)[-168 : -168 + FORECAST_HOURS]
    np.testing.assert_allclose(forecast, last_week)


def test_save_and_load_round_trip_gives_the_same_forecasts(trained: Config, tmp_path: Path) -> None:
    history, future = train.read_features(trained)
    fitted = train.fit(trained.model, history)
    path = tmp_path / "copy" / "forecaster.zip"

    train.save_forecaster(fitted, path)
    loaded = train.load_forecaster(path)

    np.testing.assert_array_equal(_forecast(loaded, future), _forecast(fitted, future))


def test_training_twice_gives_identical_forecasts(trained: Config, tmp_path: Path) -> None:
    again = dataclasses.replace(
        trained, paths=dataclasses.replace(trained.paths, model_dir=str(tmp_path / "again"))
    )
    _, future = train.read_features(trained)

    train.run(again)

    first = train.load_forecaster(Path(trained.paths.model_dir) / train.FORECASTER_FILE)
    second = train.load_forecaster(Path(again.paths.model_dir) / train.FORECASTER_FILE)
    np.testing.assert_array_equal(_forecast(first, future), _forecast(second, future))
    # Where the models go is no part of what they are: the card says the same.
    assert _card(again)["config_hash"] == _card(trained)["config_hash"]
    assert _card(again)["training_frame_hash"] == _card(trained)["training_frame_hash"]


def test_card_names_the_data_version_of_data_dvc(trained: Config) -> None:
    outs = yaml.safe_load((REPO_ROOT / "data.dvc").read_text(encoding="utf-8"))["outs"]

    assert _card(trained)["data_version"] == outs[0]["md5"]


def test_card_names_the_git_commit(trained: Config) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()

    # Other work in the tree may or may not be uncommitted when the card is written.
    assert _card(trained)["git_commit"] in {head, f"{head}-dirty"}


def test_card_training_window_is_the_raw_data(trained: Config) -> None:
    raw = pd.read_csv(trained.data.traffic_file)

    window = _card(trained)["training_window"]

    assert window == {
        "start": raw["timestamp"].iloc[0],
        "end": raw["timestamp"].iloc[-1],
        "hours": len(raw),
    }


def test_card_lists_the_features_serving_must_provide(trained: Config) -> None:
    _, future = train.read_features(trained)

    card = _card(trained)

    assert card["model"] == trained.model.name
    assert card["baseline"] == trained.baseline.name
    assert card["uses_exog"] is True
    assert card["exogenous_columns"] == [c for c in future.columns if c != "timestamp"]


def test_card_records_library_versions(trained: Config) -> None:
    libraries = _card(trained)["libraries"]

    assert libraries["python"] == platform.python_version()
    for name in ("sktime", "scikit-learn", "pandas", "numpy", "pandera", "dvc"):
        assert libraries[name] == version(name), name


def _reseeded(cfg: Config) -> Config:
    return dataclasses.replace(cfg, seed=cfg.seed + 1)


def _other_model(cfg: Config) -> Config:
    return dataclasses.replace(cfg, model=cfg.baseline)


def _baseline_setting(cfg: Config) -> Config:
    forecaster = {**cfg.baseline.forecaster, "strategy": "last"}
    return dataclasses.replace(
        cfg, baseline=dataclasses.replace(cfg.baseline, forecaster=forecaster)
    )


def _other_horizon(cfg: Config) -> Config:
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, horizon=24))


def _more_folds(cfg: Config) -> Config:
    return dataclasses.replace(cfg, backtest=dataclasses.replace(cfg.backtest, n_folds=3))


def _other_reports_dir(cfg: Config) -> Config:
    return dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, reports_dir="elsewhere"))


@pytest.mark.parametrize(
    ("change", "changes_hash"),
    [
        (_reseeded, True),
        (_other_model, True),
        (_baseline_setting, True),
        (_other_horizon, True),
        (_more_folds, False),
        (_other_reports_dir, False),
    ],
    ids=["seed", "model", "baseline_setting", "features", "backtest_only", "reports_dir_only"],
)
def test_config_hash_changes_with_what_makes_the_model(
    trained: Config, change: Callable[[Config], Config], changes_hash: bool
) -> None:
    history, _ = train.read_features(trained)
    written = _card(trained)

    card = train.model_card(change(trained), history)

    assert written["config_hash"] == train.model_card(trained, history)["config_hash"]
    assert (card["config_hash"] != written["config_hash"]) is changes_hash


def test_load_of_a_missing_forecaster_says_to_train(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "forecaster.zip"

    with pytest.raises(PipelineInputError, match="run the train stage") as raised:
        train.load_forecaster(missing)

    assert str(missing) in str(raised.value)
