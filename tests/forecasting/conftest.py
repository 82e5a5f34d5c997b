"""Shared by the forecasting tests: the model options, and six simulated weeks model-ready."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import REPO_ROOT, SMALL_PERIOD
from traffic_forecast.core.config import Config, ModelConfig
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.data.validation import read_raw, validate_raw
from traffic_forecast.forecasting.features import ModelInputs, build_features

AUTO = "auto"  # not a forecaster: the candidates it chooses from are the other options
MODEL_OPTIONS = sorted(
    path.stem for path in (REPO_ROOT / "conf" / "model").glob("*.yaml") if path.stem != AUTO
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, base_config: Config) -> ModelInputs:
    """The model-ready frames of six simulated weeks (what `small_raw` holds), validated."""
    raw = tmp_path_factory.mktemp("models") / "raw"
    write_raw_tables(simulate(SMALL_PERIOD), raw)
    data = dataclasses.replace(
        base_config.data,
        traffic_file=str(raw / "traffic.csv"),
        sale_events_file=str(raw / "sale_events.csv"),
        infrastructure_file=str(raw / "infrastructure.csv"),
    )
    result = validate_raw(data, *read_raw(data))
    assert result.passed, result.failures
    return build_features(
        result.tables["traffic"],
        result.tables["sale_events"],
        data.sale_kinds,
        base_config.features,
    )


def model_config(option: str) -> ModelConfig:
    """The `ModelConfig` of ``conf/model/<option>.yaml``."""
    return load_config([f"model={option}"], params_file=None).model
