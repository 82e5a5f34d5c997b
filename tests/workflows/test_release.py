"""The release workflow, run end to end by act: a push to ``release`` builds and deploys.

The test repository is this working tree with a DVC remote, and deploy ports, of its own. act
runs the build job (check-lock, pipeline, Bento exported as an artifact) and the deploy job
(the self-hosted production runner: import, blue/green deploy, a forecast through the router).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.repos import git, working_tree_repository
from tests.serving.server import free_port
from tests.workflows.act import REPOSITORY, ActRun, clone_for_act, run_workflow
from traffic_forecast.core.config import Config
from traffic_forecast.deploy import rollout
from traffic_forecast.serving.guard import VERSION_HEADER

pytestmark = [pytest.mark.serial, pytest.mark.workflow]

WORKFLOW = "release.yml"
DEPLOY_CONF = Path("conf/deploy/default.yaml")


def _project(repo: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@dataclasses.dataclass(frozen=True)
class Release:
    """The act run and where its deployment lives."""

    run: ActRun
    cfg: Config


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, base_config: Config) -> Iterator[Release]:
    root = tmp_path_factory.mktemp("release")
    origin = working_tree_repository(root / "origin")
    _project(origin, "dvc", "remote", "modify", "storage", "url", str(root / "dvc-remote"))
    ports = {"router_port": free_port(), "blue_port": free_port(), "green_port": free_port()}
    conf = origin / DEPLOY_CONF
    text = conf.read_text(encoding="utf-8")
    for key, port in ports.items():
        text, found = re.subn(rf"^{key}: \d+", f"{key}: {port}", text, flags=re.MULTILINE)
        assert found == 1, key
    conf.write_text(text, encoding="utf-8")
    _project(origin, "traffic_forecast.cli", "params")
    git(origin, "commit", "--quiet", "-am", "a DVC remote and deploy ports for this test")
    git(origin, "branch", "release")
    checkout = clone_for_act(origin, root / "checkout", "release")
    sha = git(origin, "rev-parse", "release")
    event = {"ref": "refs/heads/release", "after": sha, "repository": {"full_name": REPOSITORY}}
    state_dir, store = root / "deploy-state", root / "bentoml"
    run = run_workflow(
        checkout,
        origin,
        WORKFLOW,
        "push",
        event,
        scratch=root / "act",
        variables={"DEPLOY_STATE_DIR": str(state_dir), "DEPLOY_BENTOML_HOME": str(store)},
    )
    deploy = dataclasses.replace(base_config.deploy, state_dir=str(state_dir), **ports)
    cfg = dataclasses.replace(base_config, deploy=deploy)
    try:
        yield Release(run, cfg)
    finally:
        rollout.stop_all(cfg)  # the deployment, and the retirement waiting for its window


@pytest.mark.slow
def test_a_push_to_release_builds_deploys_and_answers_through_the_router(release: Release) -> None:
    run = release.run
    print(f"\n{run.timing()}")
    assert run.returncode == 0, run.tail(80)
    assert run.failed_steps() == [], run.tail(80)
    for step in (
        "dvc.lock must record this commit (the release ships what the PR report showed)",
        "Train, save the model, build and export the Bento",
        "Deploy (ready, smoke, validation gate, switch, confirm)",
        "Post-deploy check through the router",
    ):
        assert run.steps.get(step) is True, (step, run.tail(80))
    assert "Roll back when the post-deploy check fails" not in run.steps  # it was not needed
    assert run.artifacts is not None
    assert (run.artifacts / "bento" / "traffic-forecast.bento").is_file()
    status = rollout.status(release.cfg)
    assert status["live"] == "blue"
    model = status["colours"]["blue"]["model"]
    router = f"http://{release.cfg.deploy.host}:{release.cfg.deploy.router_port}"
    response = httpx.post(router + "/forecast", json={"horizon": 24})
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER] == model
    assert len(response.json()["forecast"]) == 24
    print(f"\nrelease workflow under act: {run.timing()}")
