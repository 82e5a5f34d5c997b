"""The monitor workflow, run end to end by act: drift found, a retrain proposed as a pull request.

The test repository is this working tree with a DVC remote of its own. A scheduled run pulls
the data, reproduces the model, receives the example's new actuals (the simulator's drifted
quarter), fails its monitor step (the alert), retrains with ``dvc exp run`` and asks CML to
open the pull request; the CML stand-in commits what it was given on the branch and records it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

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

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.workflow]

WORKFLOW = "monitor.yml"
MONITOR_STEP = "Monitor (fails on a breached threshold)"
PROPOSED = {"data.dvc", "dvc.lock", "params.yaml", "conf/data/example.yaml", "reports/metrics.json"}


@pytest.fixture(scope="module")
def scheduled_run(tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    root = tmp_path_factory.mktemp("monitor")
    origin = origin_with_dvc_remote(root)
    checkout = clone_for_act(origin, root / "checkout", "main")
    event = {"schedule": "23 5 * * 1", "repository": {"full_name": REPOSITORY}}
    return run_workflow(checkout, origin, WORKFLOW, "schedule", event, scratch=root / "act")


def _proposal(run: ActRun) -> dict[str, object]:
    proposals = [call for call in run.cml_calls if call["argv"][:2] == ["pr", "create"]]
    assert len(proposals) == 1, (run.cml_calls, run.tail())
    return proposals[0]


def test_drift_fails_the_monitor_step_and_the_retrain_still_runs(scheduled_run: ActRun) -> None:
    run = scheduled_run
    print(f"\n{run.timing()}")
    assert run.returncode != 0, run.tail()  # the alert: a scheduled run that failed
    assert run.failed_steps() == [MONITOR_STEP], run.tail()
    assert run.steps["Retrain and open the pull request (cml pr create)"], run.tail()
    assert "🔴 Data drift, and the model's error rose with it" in run.summary
    assert run.artifacts is not None
    monitoring = run.artifacts / "monitoring"
    verdict = json.loads((monitoring / "monitoring.json").read_text(encoding="utf-8"))
    assert verdict["new_sale_kinds"] == ["live_stream"]
    assert {c["name"] for c in verdict["checks"] if c["breached"]} >= {"level", "sale_kinds"}
    assert (monitoring / "retrain.md").is_file()


def test_the_retrain_is_proposed_with_the_new_data_version_and_model(
    scheduled_run: ActRun,
) -> None:
    proposal = _proposal(scheduled_run)
    branch = str(proposal["branch"])
    assert re.fullmatch(r"retrain/[0-9a-f]{12}", branch), branch
    files = {str(name) for name in proposal["files"]}  # type: ignore[attr-defined]
    assert files >= PROPOSED, files
    body = str(proposal["body"])
    assert body.startswith("## Retrain proposed by the monitor")
    assert "live_stream" in body
    assert "| live model |" in body
    assert "| retrained |" in body
    assert str(proposal["title"]).startswith(f"Retrain on data {branch.removeprefix('retrain/')}")


def test_the_proposed_commit_records_its_data_and_a_current_lock(scheduled_run: ActRun) -> None:
    proposal = _proposal(scheduled_run)
    workspace = Path(str(proposal["cwd"]))
    assert git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == proposal["branch"]
    assert "live_stream" in git(workspace, "show", "HEAD:conf/data/example.yaml")
    assert "data.dvc" in git(workspace, "show", "--name-only", "--format=", "HEAD").split()
    # What the release will check: dvc.lock records this commit's code, params and data.
    project(workspace, "traffic_forecast.cli", "check-lock")
