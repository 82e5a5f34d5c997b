"""Shared fixtures: the composed Hydra config and small raw tables written by the simulator."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from traffic_forecast.config import Config, compose, to_typed
from traffic_forecast.simulate import SimulationConfig, simulate, write_raw_tables

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BIKE_SHARING_CSV = SHARED_DATA / "bike-sharing" / "hour.csv"

# Telemetry off for everything the tests start (DVC, BentoML, CML).
os.environ.update(
    {"DVC_NO_ANALYTICS": "1", "BENTOML_DO_NOT_TRACK": "True", "ITERATIVE_DO_NOT_TRACK": "1"}
)


@pytest.fixture(autouse=True)
def _run_in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stages resolve conf/ and relative paths from the repository root, as DVC runs them.
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="session")
def base_config() -> Config:
    """``conf/`` composed with its defaults, typed."""
    os.chdir(REPO_ROOT)
    return to_typed(compose([]), origin="conf/")


@pytest.fixture
def config_in(tmp_path: Path, base_config: Config) -> Config:
    """The default config with every path under ``tmp_path``."""
    raw = tmp_path / "data" / "raw"
    paths = dataclasses.replace(
        base_config.paths,
        raw_dir=str(raw),
        validated_dir=str(tmp_path / "data" / "validated"),
        features_dir=str(tmp_path / "data" / "features"),
        model_dir=str(tmp_path / "models"),
        reports_dir=str(tmp_path / "reports"),
    )
    data = dataclasses.replace(
        base_config.data,
        traffic_file=str(raw / "traffic.csv"),
        sale_events_file=str(raw / "sale_events.csv"),
        infrastructure_file=str(raw / "infrastructure.csv"),
    )
    return dataclasses.replace(base_config, paths=paths, data=data)


SMALL_PERIOD = SimulationConfig(start="2024-01-01", end="2024-02-11 23:00")


@pytest.fixture
def small_raw(config_in: Config) -> Config:
    """Six weeks of simulated raw tables under ``tmp_path``; the config that reads them."""
    write_raw_tables(simulate(SMALL_PERIOD), Path(config_in.paths.raw_dir))
    return config_in


def needs_shared_data() -> pytest.MarkDecorator:
    """Skip where ``../shared/data`` is absent (the repository must not copy it)."""
    return pytest.mark.skipif(not BIKE_SHARING_CSV.is_file(), reason="../shared/data is absent")
