"""Every workflow file, read as data: the security rules and the "thin YAML" rule hold.

zizmor and actionlint (``make lint``) check much of this too; these tests state the project's own
rules, so a workflow added later is held to them without anyone remembering to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.workflows.act import ActRun, local_repositories

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40} # v\d+(\.\d+)*\s*$")
MAKE_TARGET = re.compile(r"^([a-zA-Z_-]+):.*## ", re.MULTILINE)
THIN_RUN = re.compile(r"^(make (?P<target>[a-z-]+)( [A-Z_]+=[\w./-]+)*|\.ci/run)$")


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in loaded:  # YAML 1.1 reads the key `on` as the boolean True
        loaded["on"] = loaded.pop(True)
    return loaded


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def test_there_are_workflows_to_check() -> None:
    assert {"ci.yml", "pull-request.yml"} <= {path.name for path in WORKFLOWS}


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_actions_are_pinned_by_commit_with_the_version_beside_it(path: Path) -> None:
    for step in _steps(_load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned by SHA"
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.search(r"\buses:", line):
            assert VERSION_COMMENT.search(line), f"{path.name}: no `# vX.Y.Z` comment: {line}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_permissions_are_none_by_default_and_granted_per_job(path: Path) -> None:
    workflow = _load(path)
    assert workflow.get("permissions") == {}, f"{path.name}: top-level `permissions: {{}}`"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} declares no permissions"
        assert job["permissions"] != "write-all", f"{path.name}: job {name}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_no_privileged_trigger_and_no_persisted_credentials(path: Path) -> None:
    workflow = _load(path)
    triggers = workflow["on"] if isinstance(workflow["on"], dict) else {workflow["on"]: None}
    assert "pull_request_target" not in triggers
    assert "workflow_run" not in triggers  # runs fork code with the base's secrets
    assert "concurrency" in workflow or all("concurrency" in j for j in workflow["jobs"].values())
    for step in _steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, path.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_every_run_step_is_a_make_target_with_no_expression_in_it(path: Path) -> None:
    targets = set(MAKE_TARGET.findall((REPO_ROOT / "Makefile").read_text(encoding="utf-8")))
    for step in _steps(_load(path)):
        if "run" not in step:
            continue
        command = step["run"].strip()
        # Untrusted values (branch names, titles, labels) reach commands only through `env:`.
        assert "${{" not in command, f"{path.name}: an expression in `run:`: {command}"
        thin = THIN_RUN.match(command)
        assert thin, f"{path.name}: `run:` is not one make target: {command}"
        if thin["target"]:
            assert thin["target"] in targets, f"{path.name}: no make target {thin['target']}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_every_pinned_action_has_an_offline_stand_in(path: Path) -> None:
    mapped = local_repositories(path)  # raises, naming the action, where one is missing
    uses = {step["uses"] for step in _steps(_load(path)) if "uses" in step}
    assert len(mapped) == 2 * len(uses)


SECONDS = {"845ms": 0.845, "12.3s": 12.3, "1m2.24s": 62.24, "1h0m3.5s": 3603.5}


@pytest.mark.parametrize("duration", list(SECONDS), ids=["ms", "s", "minutes", "hours"])
def test_a_step_result_is_read_whatever_its_duration(duration: str) -> None:
    line = f"[release/deploy] ❌  Failure - Main Deploy blue/green [{duration}]\n"
    run = ActRun(returncode=1, output=line, seconds=0.0)
    assert run.steps == {"Deploy blue/green": False}
    assert run.step_seconds["Deploy blue/green"] == pytest.approx(SECONDS[duration])
