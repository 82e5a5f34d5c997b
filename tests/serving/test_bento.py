"""The Bento: built from bentofile.yaml with the model just saved, and serving that model only."""

from __future__ import annotations

from pathlib import Path

import bentoml
import httpx
import pytest

from tests.packaged import Packaged
from tests.serving.server import running
from traffic_forecast.serving import bento, package
from traffic_forecast.serving.contract import EXAMPLE_INPUT
from traffic_forecast.serving.guard import VERSION_HEADER


@pytest.mark.slow
def test_a_bento_serves_the_model_it_was_built_with(packaged: Packaged, tmp_path: Path) -> None:
    model_tag, bento_tag = bento.build(packaged.cfg)
    assert bento.model_of(bento_tag) == model_tag
    labels = bentoml.models.get(model_tag).info.labels
    assert labels["data_version"] != "unknown"
    assert float(labels["backtest_mase"]) > 0
    newer = package.save(packaged.cfg)  # the store's latest is now another model
    assert newer != model_tag
    with running(bento_tag, newer, tmp_path / "bento.log") as live:  # even asked for the newer
        live.wait("/readyz", 200)
        response = httpx.post(live.url + "/forecast", json=EXAMPLE_INPUT)
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER] == model_tag


def test_the_container_step_containerizes_then_pushes_to_the_registry() -> None:
    commands = bento.container_commands("traffic-forecast:abc123", "ghcr.io/acme/")
    assert commands[0][-4:] == [
        "containerize",
        "traffic-forecast:abc123",
        "--image-tag",
        "ghcr.io/acme/traffic-forecast:abc123",
    ]
    assert commands[1] == ["docker", "push", "ghcr.io/acme/traffic-forecast:abc123"]
