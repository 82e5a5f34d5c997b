"""dvc.yaml: each stage's code deps are exactly the modules it imports; its outputs the contract's.

A stage whose deps miss a module it imports would not re-run when that module changes, and
`check-lock` (the release guard) would not notice. ``traffic-forecast stage-deps`` writes them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from traffic_forecast.core.config import PathsConfig
from traffic_forecast.pipeline import outputs
from traffic_forecast.pipeline.deps import closure, expected, stage_deps, sync

DVC_YAML = REPO_ROOT / "dvc.yaml"
SOURCE = REPO_ROOT / "src"


def _dvc_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DVC_YAML.read_text(encoding="utf-8"))
    return loaded


STAGES = list(_dvc_yaml()["stages"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_module_a_stage_imports_is_a_dep(stage: str) -> None:
    deps = [str(dep) for dep in _dvc_yaml()["stages"][stage]["deps"]]

    missing = sorted(set(stage_deps(stage, SOURCE)) - set(deps))
    stray = sorted({dep for dep in deps if dep.startswith("src/")} - set(stage_deps(stage, SOURCE)))

    assert not missing, f"{stage} imports {missing}: run `traffic-forecast stage-deps`"
    assert not stray, f"{stage} no longer imports {stray}: run `traffic-forecast stage-deps`"


def test_deps_follow_imports_through_other_modules() -> None:
    # explain → forecasting.forecasters → forecasting.features → data.schemas
    files = {path.relative_to(REPO_ROOT).as_posix() for path in closure(
        "traffic_forecast.pipeline.explain", SOURCE
    )}  # fmt: skip
    assert "src/traffic_forecast/data/schemas.py" in files
    assert "src/traffic_forecast/core/config.py" in files
    assert "src/traffic_forecast/serving/service.py" not in files


def test_a_new_import_makes_the_check_fail_and_stage_deps_fixes_it(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(SOURCE, work / "src")
    shutil.copyfile(DVC_YAML, work / "dvc.yaml")
    stage = work / "src/traffic_forecast/pipeline/features.py"
    stage.write_text(
        stage.read_text(encoding="utf-8") + "\nfrom traffic_forecast.forecasting import metrics\n",
        encoding="utf-8",
    )

    document = yaml.safe_load((work / "dvc.yaml").read_text(encoding="utf-8"))
    wanted = expected(document, work / "src")["features"]
    assert "src/traffic_forecast/forecasting/metrics.py" in wanted

    assert sync(work / "dvc.yaml", write=False, root=work / "src") == ["features"]
    assert sync(work / "dvc.yaml", root=work / "src") == ["features"]
    assert sync(work / "dvc.yaml", write=False, root=work / "src") == []
    rewritten = (work / "dvc.yaml").read_text(encoding="utf-8")
    assert "src/traffic_forecast/forecasting/metrics.py" in rewritten
    assert rewritten.startswith("# The pipeline DAG")  # comments survive the rewrite


def _declared(stage: dict[str, Any]) -> set[str]:
    paths = set()
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            paths.add(entry if isinstance(entry, str) else next(iter(entry)))
    return paths


OUTPUT_IDS = [output.path(PathsConfig()).as_posix() for output in outputs.ALL]


@pytest.mark.parametrize("output", outputs.ALL, ids=OUTPUT_IDS)
def test_each_output_of_the_contract_is_declared_by_the_stage_that_writes_it(
    output: outputs.Output,
) -> None:
    path = output.path(PathsConfig())
    declared = _declared(_dvc_yaml()["stages"][output.stage])
    assert any(path == Path(d) or path.is_relative_to(d) for d in declared), (
        f"{path}: {output.stage} does not declare it in dvc.yaml"
    )
