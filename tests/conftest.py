"""Shared fixtures: the composed Hydra config and small raw tables written by the simulator."""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.deploy.bentos import BuiltBentos
    from tests.packaged import Packaged
    from traffic_forecast.serving.artifacts import ModelArtifacts

from traffic_forecast.core.config import Config
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.simulate import SimulationConfig, simulate, write_raw_tables

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BIKE_SHARING_CSV = SHARED_DATA / "bike-sharing" / "hour.csv"

# Telemetry off for everything the tests start (DVC, BentoML, CML).
os.environ.update(
    {"DVC_NO_ANALYTICS": "1", "BENTOML_DO_NOT_TRACK": "True", "ITERATIVE_DO_NOT_TRACK": "1"}
)
# The tests play each role themselves (main, release, a pull request): CI running on a pull
# request must not make every DVC remote they push to read-only (`traffic-forecast data`).
os.environ.pop("GITHUB_EVENT_NAME", None)
# BentoML's model and Bento store: the tests' own, never the user's (~/bentoml or .bentoml).
# Set before anything imports bentoml, which reads it once.
BENTOML_HOME = Path(tempfile.mkdtemp(prefix="traffic-forecast-bentoml-"))
os.environ["BENTOML_HOME"] = str(BENTOML_HOME)
atexit.register(shutil.rmtree, BENTOML_HOME, ignore_errors=True)
# uv (BentoML builds with it): on PATH, or bootstrapped by the Makefile into .tools, as make
# puts it on PATH for `make test`; a plain `pytest` gets the same.
if (REPO_ROOT / ".tools" / "bin" / "uv").is_file():
    os.environ["PATH"] = os.pathsep.join([str(REPO_ROOT / ".tools" / "bin"), os.environ["PATH"]])
# Tests commit in temporary clones (dvc exp run): a fresh machine may have no git identity.
for _key, _value in {
    "GIT_AUTHOR_NAME": "traffic-forecast tests",
    "GIT_AUTHOR_EMAIL": "tests@traffic-forecast.invalid",
    "GIT_COMMITTER_NAME": "traffic-forecast tests",
    "GIT_COMMITTER_EMAIL": "tests@traffic-forecast.invalid",
}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(autouse=True)
def _run_in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stages resolve conf/ and relative paths from the repository root, as DVC runs them.
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="session")
def base_config() -> Config:
    """``conf/`` composed with its defaults, typed."""
    os.chdir(REPO_ROOT)
    return load_config(params_file=None)


def config_under(root: Path, base: Config) -> Config:
    """``base`` with every path (raw data, outputs, reports) under ``root``."""
    raw = root / "data" / "raw"
    paths = dataclasses.replace(
        base.paths,
        raw_dir=str(raw),
        validated_dir=str(root / "data" / "validated"),
        features_dir=str(root / "data" / "features"),
        model_dir=str(root / "models"),
        reports_dir=str(root / "reports"),
    )
    data = dataclasses.replace(
        base.data,
        traffic_file=str(raw / "traffic.csv"),
        sale_events_file=str(raw / "sale_events.csv"),
        infrastructure_file=str(raw / "infrastructure.csv"),
    )
    return dataclasses.replace(base, paths=paths, data=data)


@pytest.fixture
def config_in(tmp_path: Path, base_config: Config) -> Config:
    """The default config with every path under ``tmp_path``."""
    return config_under(tmp_path, base_config)


SMALL_PERIOD = SimulationConfig(start="2024-01-01", end="2024-02-11 23:00")


@pytest.fixture
def small_raw(config_in: Config) -> Config:
    """Six weeks of simulated raw tables under ``tmp_path``; the config that reads them."""
    write_raw_tables(simulate(SMALL_PERIOD), Path(config_in.paths.raw_dir))
    return config_in


def needs_shared_data() -> pytest.MarkDecorator:
    """Skip where ``../shared/data`` is absent (the repository must not copy it)."""
    return pytest.mark.skipif(not BIKE_SHARING_CSV.is_file(), reason="../shared/data is absent")


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory, base_config: Config) -> Packaged:
    """Six simulated weeks through the pipeline, saved once in the tests' BentoML store."""
    # Imported here: tests.packaged imports this module, and BentoML must not be imported
    # before BENTOML_HOME is set above.
    from tests.packaged import Packaged, run_pipeline  # noqa: PLC0415
    from traffic_forecast.serving.package import save as save_model  # noqa: PLC0415

    cfg = run_pipeline(tmp_path_factory.mktemp("serving"), base_config)
    packaged = Packaged(cfg, save_model(cfg))
    # The service tests serve this model, whatever other tests save into the store later.
    os.environ["TRAFFIC_FORECAST_MODEL"] = packaged.tag
    return packaged


@pytest.fixture(scope="session")
def built(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> BuiltBentos:
    """Bentos of the packaged model that the deploy and experiment tests share (built once)."""
    from tests.deploy.bentos import build_shared  # noqa: PLC0415

    return build_shared(packaged, tmp_path_factory.mktemp("bentos"))


@pytest.fixture(scope="session")
def loaded(packaged: Packaged) -> ModelArtifacts:
    """The packaged model, read back as the service reads it."""
    from traffic_forecast.serving.artifacts import load  # noqa: PLC0415

    return load(packaged.folder)


# The longest modules first. `make test` runs on two workers, a module at a time each: the
# longest one starts at once on one worker while the short ones fill the other, so the pass ends
# when its longest module does, not some minutes after. (Collection order otherwise.)
LONGEST_FIRST = (
    "tests/pipeline/test_make.py",
    "tests/pipeline/test_dvc.py",
    "tests/workflows/test_monitor.py",
    "tests/workflows/test_pull_request.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the modules of `LONGEST_FIRST` to the front, in that order; keep the rest's order."""

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
