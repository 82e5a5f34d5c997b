"""The train stage: saved forecasters that load and forecast, and a truthful model card."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
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
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.lineage import data_version_of
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.forecasting import forecasters
from traffic_forecast.forecasting.features import exogenous_columns
from traffic_forecast.forecasting.forecasters import exogenous
from traffic_forecast.pipeline import features, outputs, train, validate

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
        (Path(cfg.paths.model_dir) / outputs.MODEL_CARD.name).read_text(encoding="utf-8")
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

    assert {outputs.FORECASTER.name, outputs.BASELINE.name, outputs.MODEL_CARD.name} <= names
    assert not [name for name in names if name.startswith((".", "tmp"))]  # no leftovers


def test_saved_forecaster_forecasts_every_hour_ahead(trained: Config) -> None:
    history, future = outputs.read_features(trained.paths)

    forecast = _forecast(
        forecasters.load(Path(trained.paths.model_dir) / outputs.FORECASTER.name), future
    )

    assert forecast.shape == (FORECAST_HOURS,)
    assert np.isfinite(forecast).all()
    assert (forecast > 0).all()
    # Sessions per hour of the same order as those observed, not e.g. on the log scale.
    observed = history["target"]
    assert observed.min() / 2 < np.median(forecast) < 2 * observed.max()


def test_saved_baseline_forecasts_the_same_hour_last_week(trained: Config) -> None:
    history, _ = outputs.read_features(trained.paths)
    baseline = forecasters.load(Path(trained.paths.model_dir) / outputs.BASELINE.name)

    forecast = baseline.predict(fh=np.arange(1, FORECAST_HOURS + 1)).to_numpy(dtype=float)

    last_week = history["target"].to_numpy(dtype=float)[-168 : -168 + FORECAST_HOURS]
    np.testing.assert_allclose(forecast, last_week)


def test_save_and_load_round_trip_gives_the_same_forecasts(trained: Config, tmp_path: Path) -> None:
    history, future = outputs.read_features(trained.paths)
    fitted = forecasters.fit(trained.model, history)
    path = tmp_path / "copy" / "forecaster.zip"

    forecasters.save(fitted, path)
    loaded = forecasters.load(path)

    np.testing.assert_array_equal(_forecast(loaded, future), _forecast(fitted, future))


def test_training_twice_gives_identical_forecasts(trained: Config, tmp_path: Path) -> None:
    again = dataclasses.replace(
        trained, paths=dataclasses.replace(trained.paths, model_dir=str(tmp_path / "again"))
    )
    _, future = outputs.read_features(trained.paths)

    train.run(again)

    first = forecasters.load(Path(trained.paths.model_dir) / outputs.FORECASTER.name)
    second = forecasters.load(Path(again.paths.model_dir) / outputs.FORECASTER.name)
    np.testing.assert_array_equal(_forecast(first, future), _forecast(second, future))
    # Where the models go is no part of what they are: the card says the same.
    assert _card(again)["config_hash"] == _card(trained)["config_hash"]
    assert _card(again)["training_frame_hash"] == _card(trained)["training_frame_hash"]


def test_card_names_the_raw_files_that_trained_the_model(trained: Config) -> None:
    data = _card(trained)["data"]

    assert data["name"] == trained.data.name
    for file in (trained.data.traffic_file, trained.data.sale_events_file):
        assert file is not None
        digest = hashlib.md5(Path(file).read_bytes(), usedforsecurity=False).hexdigest()
        assert data["files"][file]["md5"] == digest
    # The files lie outside data/raw, which data.dvc tracks: the card does not claim its version.
    assert _card(trained)["data_version"] == data["version"]
    assert data["version"].startswith("untracked-")


def test_files_under_the_tracked_directory_have_the_version_data_dvc_names() -> None:
    outs = yaml.safe_load((REPO_ROOT / "data.dvc").read_text(encoding="utf-8"))["outs"]
    files = {"data/raw/traffic.csv": {"md5": "0" * 32}, "data/raw/sale_events.csv": {"md5": "1"}}

    assert data_version_of(files, REPO_ROOT / "data.dvc") == outs[0]["md5"]
    assert data_version_of({"mine.csv": {"md5": "2"}}, REPO_ROOT / "data.dvc") != outs[0]["md5"]


def _train_in_a_process(trained: Config, model_dir: Path, hash_seed: int) -> dict[str, bytes]:
    """``python -m traffic_forecast.pipeline.train`` as DVC runs it; the files it wrote."""
    overrides = [
        f"paths.features_dir={trained.paths.features_dir}",
        f"paths.model_dir={model_dir}",
    ]
    subprocess.run(
        [sys.executable, "-m", "traffic_forecast.pipeline.train", *overrides],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
        check=True,
        capture_output=True,
    )
    return {path.name: path.read_bytes() for path in sorted(model_dir.iterdir())}


def test_two_processes_with_other_hash_seeds_write_the_same_bytes(
    trained: Config, tmp_path: Path
) -> None:
    first = _train_in_a_process(trained, tmp_path / "first", hash_seed=1)
    second = _train_in_a_process(trained, tmp_path / "second", hash_seed=2)

    assert set(first) == {outputs.FORECASTER.name, outputs.BASELINE.name, outputs.MODEL_CARD.name}
    for name, content in first.items():
        assert second[name] == content, f"{name} differs between the two processes"
    card = json.loads(first[outputs.MODEL_CARD.name])
    assert "git_commit" not in card  # lineage that changes per commit is a BentoML label


def test_card_training_window_is_the_raw_data(trained: Config) -> None:
    raw = pd.read_csv(trained.data.traffic_file)

    window = _card(trained)["training_window"]

    assert window == {
        "start": raw["timestamp"].iloc[0],
        "end": raw["timestamp"].iloc[-1],
        "hours": len(raw),
    }


def test_card_lists_the_features_serving_must_provide(trained: Config) -> None:
    _, future = outputs.read_features(trained.paths)

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
    history, _ = outputs.read_features(trained.paths)
    written = _card(trained)

    data = written["data"]
    changed = change(trained)
    card = train.model_card(changed, changed.model, history, data)

    assert (
        written["config_hash"]
        == train.model_card(trained, trained.model, history, data)["config_hash"]
    )
    assert (card["config_hash"] != written["config_hash"]) is changes_hash


def test_load_of_a_missing_forecaster_says_to_train(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "forecaster.zip"

    with pytest.raises(PipelineInputError, match="run the train stage") as raised:
        forecasters.load(missing)

    assert str(missing) in str(raised.value)
