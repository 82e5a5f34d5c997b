"""The Bento: built from bentofile.yaml with the model just saved, and serving that model only."""

from __future__ import annotations

import sys
from pathlib import Path

import bentoml
import httpx
import pytest

from tests.packaged import Packaged
from tests.repos import working_tree_repository
from tests.serving.server import running
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.proc import cause_first, run_checked
from traffic_forecast.serving import bento, package
from traffic_forecast.serving.contract import EXAMPLE_INPUT
from traffic_forecast.serving.guard import VERSION_HEADER


@pytest.mark.slow
@pytest.mark.serial
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


def _sources(store: Path, tag: str) -> list[Path]:
    """The files a Bento of the store in ``store`` carries as its source."""
    name, version = tag.split(":")
    root = store / "bentos" / name / version / "src"
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


@pytest.mark.slow
def test_a_second_build_with_the_store_inside_the_project_works(
    packaged: Packaged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `make bento` runs it: BENTOML_HOME is .bentoml/ inside the build context, where a
    # pattern matching at any depth found the earlier Bentos' files and copied them again.
    project = working_tree_repository(tmp_path / "project")
    store = project / ".bentoml"
    exported = tmp_path / "model.bentomodel"
    bentoml.models.export_model(packaged.tag, str(exported))
    monkeypatch.chdir(project)
    monkeypatch.setenv("BENTOML_HOME", str(store))  # for the build's own processes
    run_checked(
        sys.executable, "-c", f"import bentoml; bentoml.models.import_model({str(exported)!r})"
    )

    first = bento.build_bento()
    second = bento.build_bento()

    assert first != second
    sources = _sources(store, second)
    assert not [path for path in sources if path.parts[0] in {".bentoml", "build", "data"}]
    assert sources.count(Path("params.yaml")) == 1
    assert Path("conf/ops.yaml") in sources  # the deploy gates read the settings it was built with


def test_a_failed_command_leads_with_its_cause() -> None:
    long_path = "/x" * 2000
    printed = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "bento.py", line 330, in create',
            f"OSError: [Errno 36] File name too long: '{long_path}'",
            "",
        ]
    )

    shown = cause_first(printed).splitlines()

    assert shown[0].startswith("OSError: [Errno 36] File name too long")
    assert all(len(line) <= 242 for line in shown)  # every line cut to a readable width


@pytest.mark.slow
def test_a_build_that_fails_says_why_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bentofile.yaml").write_text('service: "no_such_module:Service"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bento, "export_requirements", lambda: None)

    with pytest.raises(PipelineInputError) as raised:
        bento.build_bento()

    first = str(raised.value).splitlines()[0]
    assert "bentoml build" in first
    assert "no_such_module" in first.split("(exit 1): ")[1]  # the cause, not a traceback's start
