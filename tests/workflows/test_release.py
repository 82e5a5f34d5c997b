"""The release and rollback workflows, run end to end by act on the production runner's path.

The test repository is this working tree with a DVC remote, and deploy ports, of its own. act
runs release.yml's build job (check-lock, pipeline, Bento exported, the wheelhouse) and its
deploy job (the self-hosted production runner: the release's environment made offline from the
wheelhouse, import, blue/green deploy, a forecast through the router). Then rollback.yml: from
another branch it is refused before it reaches the production host; from the release branch,
after a second deploy, it goes back to the previous colour.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.repos import git, working_tree_repository
from tests.serving.server import free_port
from tests.workflows.act import REPOSITORY, ActRun, clone_for_act, project, run_workflow
from traffic_forecast.core.config import Config
from traffic_forecast.deploy import rollout
from traffic_forecast.serving.guard import VERSION_HEADER

pytestmark = [pytest.mark.serial, pytest.mark.workflow]

WORKFLOW = "release.yml"
ROLLBACK = "rollback.yml"
DEPLOY_CONF = Path("conf/deploy/default.yaml")
REFUSED = "refused: production deploys and rolls back from refs/heads/release only"


@dataclasses.dataclass(frozen=True)
class Release:
    """The act run, where its deployment lives, and what another workflow run needs."""

    run: ActRun
    cfg: Config
    root: Path
    origin: Path
    checkout: Path
    sha: str
    variables: dict[str, str]

    @property
    def state_dir(self) -> Path:
        """The deploy host's state directory (``DEPLOY_STATE_DIR``)."""
        return Path(self.cfg.deploy.state_dir)

    def dispatch(self, workflow: str, ref: str, scratch: str) -> ActRun:
        """A ``workflow_dispatch`` of ``workflow`` on ``ref``, with the release's settings."""
        event = {"ref": ref, "inputs": {}, "repository": {"full_name": REPOSITORY}}
        return run_workflow(
            self.checkout,
            self.origin,
            workflow,
            "workflow_dispatch",
            event,
            scratch=self.root / scratch,
            variables=self.variables,
        )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, base_config: Config) -> Iterator[Release]:
    root = tmp_path_factory.mktemp("release")
    origin = working_tree_repository(root / "origin")
    project(origin, "dvc", "remote", "modify", "storage", "url", str(root / "dvc-remote"))
    ports = {"router_port": free_port(), "blue_port": free_port(), "green_port": free_port()}
    conf = origin / DEPLOY_CONF
    text = conf.read_text(encoding="utf-8")
    for key, port in ports.items():
        text, found = re.subn(rf"^{key}: \d+", f"{key}: {port}", text, flags=re.MULTILINE)
        assert found == 1, key
    conf.write_text(text, encoding="utf-8")
    project(origin, "traffic_forecast.cli", "params")
    git(origin, "commit", "--quiet", "-am", "a DVC remote and deploy ports for this test")
    git(origin, "branch", "release")
    checkout = clone_for_act(origin, root / "checkout", "release")
    sha = git(origin, "rev-parse", "release")
    event = {"ref": "refs/heads/release", "after": sha, "repository": {"full_name": REPOSITORY}}
    state_dir, store = root / "deploy-state", root / "bentoml"
    variables = {"DEPLOY_STATE_DIR": str(state_dir), "DEPLOY_BENTOML_HOME": str(store)}
    run = run_workflow(
        checkout, origin, WORKFLOW, "push", event, scratch=root / "act", variables=variables
    )
    deploy = dataclasses.replace(base_config.deploy, state_dir=str(state_dir), **ports)
    cfg = dataclasses.replace(base_config, deploy=deploy)
    try:
        yield Release(run, cfg, root, origin, checkout, sha, variables)
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
        "Wheelhouse (every locked dependency, uv, the project's wheel)",
        "Production deploys from the release branch only",
        "The release's environment, from its wheelhouse (offline)",
        "Deploy (ready, smoke, validation gate, switch, confirm)",
        "Post-deploy check through the router",
    ):
        assert run.steps.get(step) is True, (step, run.tail(80))
    assert "Roll back when the post-deploy check fails" not in run.steps  # it was not needed
    assert run.artifacts is not None
    assert (run.artifacts / "bento" / "traffic-forecast.bento").is_file()
    wheels = {path.name.split("-")[0] for path in (run.artifacts / "wheelhouse").glob("*.whl")}
    assert {"traffic_forecast", "uv", "bentoml", "sktime"} <= wheels
    # The production job installed nothing from an index: no setup action, no `uv sync`.
    deploy_log = "\n".join(re.findall(r"^\[release/Deploy blue/green *\].*", run.output, re.M))
    assert "Main The release's environment, from its wheelhouse (offline)" in deploy_log
    for fetch in ("setup-python", "setup-uv", "uv sync", "apt-get"):
        assert fetch not in deploy_log, fetch
    status = rollout.status(release.cfg)
    assert status["live"] == "blue"
    model = status["colours"]["blue"]["model"]
    # The live colour runs from the release's own environment, which the rollback path will use.
    release_env = release.state_dir / "releases" / release.sha
    cmdline = Path(f"/proc/{status['colours']['blue']['pid']}/cmdline").read_bytes()
    assert cmdline.split(b"\0")[0] == bytes(release_env / "bin" / "python"), cmdline
    assert (release.state_dir / "releases" / "current").resolve() == release_env
    router = f"http://{release.cfg.deploy.host}:{release.cfg.deploy.router_port}"
    response = httpx.post(router + "/forecast", json={"horizon": 24})
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER] == model
    assert len(response.json()["forecast"]) == 24
    print(f"\nrelease workflow under act: {run.timing()}")


@pytest.mark.slow
def test_a_rollback_from_another_branch_is_refused_before_the_production_host(
    release: Release,
) -> None:
    run = release.dispatch(ROLLBACK, "refs/heads/main", "act-rollback-main")
    print(f"\nrollback.yml from main under act: {run.timing()}")
    assert run.returncode != 0, run.tail(40)
    assert REFUSED in run.output, run.tail(40)
    jobs = {job.strip() for job in re.findall(r"^\[rollback/([^\]]+)\]", run.output, re.M)}
    assert jobs == {"Refuse a rollback from another ref"}, jobs  # the production job never ran
    assert rollout.status(release.cfg)["live"] == "blue"


@pytest.mark.slow
def test_a_rollback_from_release_goes_back_to_the_previous_colour_at_once(
    release: Release,
) -> None:
    assert release.run.returncode == 0, "the release did not deploy"
    bento = rollout.status(release.cfg)["colours"]["blue"]["bento"]
    # The next release, as its deploy job would run it: green, from the release's environment.
    tooling = release.state_dir / "releases" / "current" / "bin" / "traffic-forecast"
    env = {
        **os.environ,
        "TRAFFIC_FORECAST_DEPLOY_DIR": str(release.state_dir),
        "BENTOML_HOME": release.variables["DEPLOY_BENTOML_HOME"],
        "DVC_NO_ANALYTICS": "1",
        "BENTOML_DO_NOT_TRACK": "True",
    }
    deployed = subprocess.run(
        [str(tooling), "deploy", bento],
        cwd=release.checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    assert rollout.status(release.cfg)["live"] == "green"

    run = release.dispatch(ROLLBACK, "refs/heads/release", "act-rollback-release")
    print(f"\nrollback.yml from release under act: {run.timing()}")
    assert run.returncode == 0, run.tail(80)
    for step in ("Production rolls back from the release branch only", "Roll back",
                 "Check through the router", "Deployment status"):  # fmt: skip
        assert run.steps.get(step) is True, (step, run.tail(80))
    assert "instant" in run.output  # the old colour still ran: no redeploy
    status = rollout.status(release.cfg)
    assert status["live"] == "blue"
    router = f"http://{release.cfg.deploy.host}:{release.cfg.deploy.router_port}"
    response = httpx.post(router + "/forecast", json={"horizon": 24})
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER] == status["colours"]["blue"]["model"]
