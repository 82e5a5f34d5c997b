"""Every workflow file, read as data: the security rules and the "thin YAML" rule hold.

zizmor and actionlint (``make lint``) check much of this too; these tests state the project's own
rules, so a workflow added later is held to them without anyone remembering to.
"""

from __future__ import annotations

import re
import subprocess
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


# Workflows with no concurrency group on purpose, and why.
UNQUEUED = {
    "rollback.yml": "GitHub keeps one pending run per group and cancels the older when another "
    "arrives: a group would drop a rollback; the deploy tooling's lock serialises them on the host",
}
RELEASE_REF = "refs/heads/release"
ON_RELEASE = f"github.ref == '{RELEASE_REF}'"
PRODUCTION_LABEL = "traffic-forecast-prod"


def _groups(workflow: dict[str, Any]) -> set[str]:
    """Every concurrency group a workflow names, for the whole run or for a job."""
    jobs = workflow["jobs"].values()
    found = [workflow.get("concurrency"), *(job.get("concurrency") for job in jobs)]
    return {str(c["group"] if isinstance(c, dict) else c) for c in found if c is not None}


def _production_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """(workflow, job name, job) of every job on the production runner or environment."""
    found = []
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            runs_on = job.get("runs-on", [])
            labels = [runs_on] if isinstance(runs_on, str) else list(runs_on)
            if PRODUCTION_LABEL in labels or job.get("environment") == "production":
                found.append((path.name, name, job))
    return found


PRODUCTION_JOBS = _production_jobs()


def test_there_are_workflows_to_check() -> None:
    names = {path.name for path in WORKFLOWS}
    assert {"ci.yml", "pull-request.yml", "release.yml", "rollback.yml"} <= names


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
    if path.name not in UNQUEUED:
        assert "concurrency" in workflow or all(
            "concurrency" in job for job in workflow["jobs"].values()
        ), f"{path.name}: no concurrency group"
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


def test_the_rollback_path_shares_no_concurrency_group_with_builds_or_deploys() -> None:
    release = _load(REPO_ROOT / ".github" / "workflows" / "release.yml")
    rollback = _load(REPO_ROOT / ".github" / "workflows" / "rollback.yml")
    assert "workflow_dispatch" in rollback["on"]
    assert "concurrency" not in release, "a workflow-wide group queues everything behind a build"
    assert _groups(rollback) == set(), UNQUEUED["rollback.yml"]
    assert "workflow_dispatch" not in release["on"], "rolling back is rollback.yml's alone"
    jobs = release["jobs"]
    assert jobs["build"]["concurrency"]["group"] != jobs["deploy"]["concurrency"]["group"]
    assert jobs["deploy"]["concurrency"]["group"].endswith(jobs["deploy"]["environment"])
    assert jobs["deploy"]["concurrency"]["cancel-in-progress"] is False


def test_the_production_jobs_are_the_deploy_and_the_rollback() -> None:
    assert {(workflow, name) for workflow, name, _ in PRODUCTION_JOBS} == {
        ("release.yml", "deploy"),
        ("rollback.yml", "rollback"),
    }


@pytest.mark.parametrize(
    ("workflow", "name", "job"), PRODUCTION_JOBS, ids=[f"{w}:{n}" for w, n, _ in PRODUCTION_JOBS]
)
def test_every_production_job_runs_from_the_release_branch_only(
    workflow: str, name: str, job: dict[str, Any]
) -> None:
    assert job.get("if") == ON_RELEASE, f"{workflow}: job {name} is not skipped on other refs"
    assert job.get("environment") == "production", f"{workflow}: job {name}"
    steps = job["steps"]
    first_run = next(i for i, step in enumerate(steps) if "run" in step)
    assert steps[first_run]["run"] == "make release-ref", f"{workflow}: {name} checks no ref"
    # Only the checkout (which reads the Makefile's check) comes before it.
    assert all(step["uses"].startswith("actions/checkout@") for step in steps[:first_run])


@pytest.mark.parametrize("path", WORKFLOWS, ids=_ids(WORKFLOWS))
def test_the_release_and_rollback_workflows_run_nothing_from_other_refs(path: Path) -> None:
    if path.name not in {"release.yml", "rollback.yml"}:
        return
    workflow = _load(path)
    for name, job in workflow["jobs"].items():
        condition = str(job.get("if", ""))
        if condition == f"github.ref != '{RELEASE_REF}'":  # the job that fails such a run
            assert [s["run"] for s in job["steps"] if "run" in s] == ["make release-ref"]
            assert job["runs-on"] == "ubuntu-latest"
            continue
        assert condition.startswith(ON_RELEASE), f"{path.name}: job {name} runs on any ref"


@pytest.mark.parametrize(
    ("workflow", "name", "job"), PRODUCTION_JOBS, ids=[f"{w}:{n}" for w, n, _ in PRODUCTION_JOBS]
)
def test_production_jobs_install_nothing_and_fetch_from_no_index(
    workflow: str, name: str, job: dict[str, Any]
) -> None:
    uses = [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]
    assert not {"actions/setup-python", "astral-sh/setup-uv"} & set(uses), f"{workflow}: {name}"
    assert job["env"]["UV_OFFLINE"] == "1"
    assert job["env"]["PIP_NO_INDEX"] == "1"
    assert job["env"]["DEPLOY_ENV"].endswith(("/releases/${{ github.sha }}", "/releases/current"))
    runs = [step["run"] for step in job["steps"] if "run" in step]
    # What each make target would run on the host, prerequisites included whether or not they
    # look up to date here (make -n -B), with the release's environment.
    commands = ""
    for run in runs:
        commands += subprocess.run(
            [*run.split(), "-nB", "DEPLOY_ENV=/srv/deploy/releases/0123abc", "GITHUB_REF=x"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert "/srv/deploy/releases/0123abc/bin/traffic-forecast" in commands
    for forbidden in ("uv sync", "apt-get", "system-deps", ".venv/bin/traffic-forecast", "sudo"):
        assert forbidden not in commands, f"{workflow}: {name} would run {forbidden}"
    installs = re.findall(r"pip install.*", commands.replace("\\\n", " "))
    assert bool(installs) == ("make deploy-env" in runs), f"{workflow}: {name}"
    for install in installs:
        assert "--no-index" in install, install


REGISTRY_TOKEN_IF = "startsWith(vars.CONTAINER_REGISTRY, 'ghcr.io/')"


def _registry_logins() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            for step in job.get("steps", []):
                if step.get("run") == "make registry-login":
                    found.append((f"{path.name}:{name}", job, step))
    return found


REGISTRY_LOGINS = _registry_logins()


@pytest.mark.parametrize(
    ("name", "job", "step"), REGISTRY_LOGINS, ids=[n for n, _, _ in REGISTRY_LOGINS]
)
def test_the_workflow_token_goes_to_ghcr_io_only(
    name: str, job: dict[str, Any], step: dict[str, Any]
) -> None:
    env = step["env"]
    token = env["REGISTRY_PASSWORD"] in {"${{ github.token }}", "${{ secrets.GITHUB_TOKEN }}"}
    packages = job["permissions"].get("packages")
    if token:
        assert env["REGISTRY_LOGIN_HOST"] == "ghcr.io", name
        assert REGISTRY_TOKEN_IF in job["if"], name
        assert f"!{REGISTRY_TOKEN_IF}" not in job["if"], name
        assert packages == "write", name
    else:
        assert packages is None, f"{name}: packages permission without the workflow's token"
        assert f"!{REGISTRY_TOKEN_IF}" in job["if"], name
        assert env["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}", name
        assert "github.token" not in str(job), name
        assert "GITHUB_TOKEN" not in str(job), name
        assert job.get("environment"), f"{name}: registry secrets belong to an environment"


def test_there_is_a_registry_login_for_ghcr_io_and_one_for_the_rest() -> None:
    passwords = [step["env"]["REGISTRY_PASSWORD"] for _, _, step in REGISTRY_LOGINS]
    assert sorted(passwords) == ["${{ github.token }}", "${{ secrets.REGISTRY_PASSWORD }}"]
