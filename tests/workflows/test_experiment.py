"""The experiment workflow, run end to end by act: a clearly better challenger is proposed.

The test plays the deploy host: its state directory (``vars.DEPLOY_STATE_DIR``) holds a running
shadow experiment, nine days of both arms' logged forecasts and the observation store with the
hours that came (the simulator's next quarter); the raw history comes from the test
repository's DVC remote. A scheduled run analyses it, posts the report on the challenger's pull
request and, the challenger being clearly better, asks CML to open the pull request that makes
it the release. The CML stand-in records both calls and commits what it was given.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.repos import git
from tests.workflows.act import (
    REPOSITORY,
    ActRun,
    clone_for_act,
    origin_with_dvc_remote,
    project,
    run_workflow,
)
from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.data.observations import OBSERVATION_COLUMNS, Batch
from traffic_forecast.data.simulate import SimulationConfig, simulate
from traffic_forecast.data.store import ObservationStore, default_url
from traffic_forecast.deploy.slots import prediction_log_path
from traffic_forecast.deploy.state import State, save
from traffic_forecast.experiment.record import CHALLENGER, CHAMPION, Arm, Experiment

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.workflow]

WORKFLOW = "experiment.yml"
EXPERIMENT_ID = "exp-test-1"
PULL_REQUEST = 7
HORIZON = 24
FIRST_ORIGIN = pd.Timestamp("2025-07-01 00:00")  # the hour after the raw history ends
DAYS = 9  # past min_days (7): the daily look may decide
# Relative error of each arm's forecasts: the challenger's is a fifth of the champion's.
NOISE = {CHAMPION: 0.2, CHALLENGER: 0.04}
COLOURS = {CHAMPION: "blue", CHALLENGER: "green"}


def _next_quarter() -> pd.Series:
    """The hours after the raw history: the simulator's next quarter, as the store receives it."""
    traffic = simulate(SimulationConfig(), period="drift").traffic
    series = pd.Series(traffic["sessions"].to_numpy(float), index=traffic["timestamp"])
    return series[: FIRST_ORIGIN + pd.Timedelta(days=DAYS, hours=HORIZON)]


def _answers(actuals: pd.Series, experiment: Experiment) -> dict[str, list[dict[str, Any]]]:
    """Each arm's logged answers: one per hourly origin, the actuals with the arm's noise."""
    rng = np.random.default_rng(18)
    origins = pd.date_range(FIRST_ORIGIN, periods=DAYS * 24, freq="h")
    logged: dict[str, list[dict[str, Any]]] = {CHAMPION: [], CHALLENGER: []}
    for origin in origins:
        truth = actuals[origin : origin + pd.Timedelta(hours=HORIZON - 1)].to_numpy()
        for arm, noise in NOISE.items():
            value = truth * (1 + noise * rng.standard_normal(HORIZON))
            logged[arm].append(
                {
                    "experiment": experiment.id,
                    "arm": arm,
                    "model_version": experiment.arm(arm).model,
                    "endpoint": "forecast",
                    "origin": origin.isoformat(),
                    "what_if": False,
                    "fallback": False,
                    "coverage": 0.8,
                    "value": [round(float(v), 3) for v in value],
                }
            )
    return logged


def deploy_host(state_dir: Path, challenger_commit: str) -> Experiment:
    """A deploy state with a running shadow experiment, its logs and the observation store."""
    experiment = Experiment(
        id=EXPERIMENT_ID,
        mode="shadow",
        share=0.5,
        client_header="X-Client-Id",
        champion=Arm("blue", "traffic-forecast:champ", "traffic-forecast-model:champ", ""),
        challenger=Arm(
            "green", "traffic-forecast:chall", "traffic-forecast-model:chall", challenger_commit
        ),
        started_at=FIRST_ORIGIN.timestamp(),
        pull_request=PULL_REQUEST,
        # Declared at its start: a four-week design, whatever conf/experiment now says.
        settings=dataclasses.asdict(ExperimentConfig(max_days=28)),
    )
    save(state_dir, State(live="blue", experiment=experiment.as_json()))
    actuals = _next_quarter()
    for arm, entries in _answers(actuals, experiment).items():
        log = prediction_log_path(state_dir, COLOURS[arm])
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    frame = pd.DataFrame({"timestamp": actuals.index, "target": actuals.to_numpy()})
    store = ObservationStore(default_url(state_dir))
    store.write(Batch(frame.reindex(columns=list(OBSERVATION_COLUMNS)), "the test"))
    store.close()
    return experiment


@dataclass(frozen=True)
class Scheduled:
    """The run, and what the test set up for it."""

    run: ActRun
    challenger_commit: str


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Scheduled:
    root = tmp_path_factory.mktemp("experiment")
    origin = origin_with_dvc_remote(root)
    project(origin, "traffic_forecast.cli", "data")  # regenerates data/raw, pushes it
    git(origin, "branch", "release")
    # The challenger's pull request: its branch and commit (the Bento's lineage names it).
    git(origin, "checkout", "--quiet", "-b", "challenger")
    git(origin, "commit", "--quiet", "--allow-empty", "-m", "challenger: another model")
    challenger_commit = git(origin, "rev-parse", "HEAD")
    git(origin, "checkout", "--quiet", "main")
    deploy_host(root / "deploy", challenger_commit)
    checkout = clone_for_act(origin, root / "checkout", "main")
    event = {"schedule": "41 6 * * *", "repository": {"full_name": REPOSITORY}}
    run = run_workflow(
        checkout,
        origin,
        WORKFLOW,
        "schedule",
        event,
        scratch=root / "act",
        variables={"DEPLOY_STATE_DIR": str(root / "deploy")},
        timeout=600,
    )
    return Scheduled(run, challenger_commit)


def _calls(run: ActRun, *command: str) -> list[dict[str, Any]]:
    return [call for call in run.cml_calls if call["argv"][: len(command)] == list(command)]


def test_the_daily_run_decides_promote_and_reports_it(scheduled: Scheduled) -> None:
    run = scheduled.run
    print(f"\n{run.timing()}")
    assert run.returncode == 0, run.tail()
    assert run.failed_steps() == [], run.tail()
    assert run.artifacts is not None
    analysis = json.loads((run.artifacts / "experiment" / "experiment.json").read_text())
    assert analysis["experiment"] == EXPERIMENT_ID
    assert analysis["verdict"]["decision"] == "promote", analysis["verdict"]
    assert analysis["challenger"]["mae"] < analysis["champion"]["mae"]
    assert (run.artifacts / "experiment" / "experiment.md").is_file()
    assert EXPERIMENT_ID in run.summary


def test_the_report_is_one_comment_on_the_challengers_pull_request(scheduled: Scheduled) -> None:
    [comment] = _calls(scheduled.run, "comment", "update")
    assert comment["argv"][2:] == [
        f"--target=pr/{PULL_REQUEST}",
        f"--watermark-title=traffic-forecast experiment {EXPERIMENT_ID}",
        "--no-publish",
        "reports/experiment.md",
    ]
    assert comment["token_set"]
    assert EXPERIMENT_ID in comment["body"]


def test_promote_proposes_the_challengers_commit_for_release(scheduled: Scheduled) -> None:
    [proposal] = _calls(scheduled.run, "pr", "create")
    argv = proposal["argv"]
    assert "--target-branch=release" in argv
    assert proposal["branch"] == f"experiment/{EXPERIMENT_ID}"
    assert proposal["files"] == [f"reports/experiments/{EXPERIMENT_ID}.md"]
    assert "traffic-forecast-model:chall" in proposal["title"]
    assert EXPERIMENT_ID in proposal["body"]
    # The branch is the challenger's commit and the report, not this run's commit (main). act
    # removes a successful job's workspace: the step's own line says where it branched from.
    commit = scheduled.challenger_commit[:12]
    assert f"experiment/{EXPERIMENT_ID} (the challenger's commit {commit} and the report)" in (
        scheduled.run.output
    )
