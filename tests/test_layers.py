"""The import direction follows the data flow, and a stage never imports another stage.

core ← data ← forecasting ← pipeline (the outputs contract, then the stages) ← report, serving
← deploy ← monitor ← the command line. A module imports from its own group or from one to its
left; report and serving do not import each other; the stages share only what is to their
left, and name each other's files through ``pipeline/outputs.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from traffic_forecast.pipeline.deps import PACKAGE, imported_modules

SOURCE = REPO_ROOT / "src"
# Groups in the order data flows; groups sharing a rank do not import each other.
RANKS = (
    ("core",),
    ("data",),
    ("forecasting",),
    ("pipeline",),
    ("fleet",),  # may use pipeline.outputs; never serving, report or deploy
    ("report", "serving"),
    ("deploy",),
    ("monitor",),
    ("experiment",),  # runs on the deployment; its analysis scores what the service logged
    ("cli",),
    ("__main__",),
)
STAGES = ("validate", "features", "train", "evaluate", "explain")


def _module(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(path): path for path in sorted((SOURCE / PACKAGE).rglob("*.py"))}


def group_of(module: str) -> str | None:
    """``core`` for ``traffic_forecast.core.config``; None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def rank_of(group: str) -> int:
    """The position of a group in the data flow."""
    return next(i for i, groups in enumerate(RANKS) if group in groups)


def stage_of(module: str) -> str | None:
    """The stage a module is (``traffic_forecast.pipeline.train``: train), else None."""
    parts = module.split(".")
    return parts[2] if parts[1:2] == ["pipeline"] and parts[2:3] and parts[2] in STAGES else None


def _imports(module: str) -> set[str]:
    found = imported_modules(MODULES[module], module)
    return {name for name in found if name in MODULES and name != module}


def test_every_group_of_the_package_has_a_place_in_the_flow() -> None:
    groups = {group_of(module) for module in MODULES} - {None}
    placed = {group for rank in RANKS for group in rank}
    assert groups <= placed, f"place {sorted(groups - placed)} in RANKS (and the README layout)"


@pytest.mark.parametrize("module", sorted(MODULES), ids=sorted(MODULES))
def test_a_module_imports_only_from_its_left(module: str) -> None:
    group = group_of(module)
    if group is None:
        return
    for imported in _imports(module):
        other = group_of(imported)
        if other is None or other == group:
            continue
        assert rank_of(other) < rank_of(group), (
            f"{module} ({group}) imports {imported} ({other}): against the data flow"
        )


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage: str) -> None:
    module = f"{PACKAGE}.pipeline.{stage}"
    others = {stage_of(name) for name in _imports(module)} - {None, stage}
    assert not others, f"{module} imports the stages {sorted(others)}: use pipeline/outputs.py"


def test_outside_the_pipeline_nothing_imports_a_stage() -> None:
    importers = {
        module: sorted(name for name in _imports(module) if stage_of(name))
        for module in MODULES
        if group_of(module) != "pipeline"
    }
    assert not {module: names for module, names in importers.items() if names}


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    # A stage importing another stage, as the layout had it before: the helper must find it.
    file = tmp_path / "explain.py"
    file.write_text("from traffic_forecast.pipeline.train import fit\n", encoding="utf-8")
    found = imported_modules(file, f"{PACKAGE}.pipeline.explain")
    assert stage_of(f"{PACKAGE}.pipeline.train") in {stage_of(name) for name in found}
