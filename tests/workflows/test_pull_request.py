"""The pull-request workflow, run end to end by act: retrain, report comment, gate.

A test repository is made from this working tree (branch ``main``, the base) with a DVC remote
of its own, and two pull requests: one changing a model parameter (the AR lags 24 → 2, a known
regression of about 20 % MASE), one breaking the data (a negative session count in a new data
version pushed to the remote). act runs ``.github/workflows/pull-request.yml`` itself; the CML
stand-in records the comment it was asked to post.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.repos import git
from tests.workflows.act import (
    ActRun,
    clone_for_act,
    origin_with_dvc_remote,
    project,
    pull_request_event,
    run_workflow,
)

pytestmark = [pytest.mark.serial, pytest.mark.workflow]

WORKFLOW = "pull-request.yml"
WATERMARK = "--watermark-title=traffic-forecast report"
LAGS_KEY = "model.forecaster.steps[3].forecaster.lags"
MODEL_CONF = Path("conf/model/gradient_boosting.yaml")
TRAFFIC = Path("data/raw/traffic.csv")
BAD_LINE = 100  # CSV line (header = 1) whose session count the bad-data PR makes negative


@dataclass(frozen=True)
class PullRequests:
    """The test repository (the checkout stand-in's origin) and its branches."""

    origin: Path
    remote: Path
    root: Path


@pytest.fixture(scope="module")
def pull_requests(tmp_path_factory: pytest.TempPathFactory) -> PullRequests:
    root = tmp_path_factory.mktemp("pr-loop")
    origin, remote = origin_with_dvc_remote(root), root / "dvc-remote"

    git(origin, "checkout", "--quiet", "-b", "pr-lags")
    conf = origin / MODEL_CONF
    text = conf.read_text(encoding="utf-8")
    assert "        lags: 24\n" in text
    conf.write_text(text.replace("        lags: 24\n", "        lags: 2\n"), encoding="utf-8")
    project(origin, "traffic_forecast.cli", "params")
    git(origin, "commit", "--quiet", "-am", "model: AR(2) errors instead of AR(24)")

    git(origin, "checkout", "--quiet", "main")
    project(origin, "traffic_forecast.cli", "data")  # regenerates data/raw, pushes it
    git(origin, "checkout", "--quiet", "-b", "pr-bad-data")
    traffic = origin / TRAFFIC
    lines = traffic.read_text(encoding="utf-8").splitlines(keepends=True)
    stamp, _ = lines[BAD_LINE - 1].rstrip("\n").split(",")
    lines[BAD_LINE - 1] = f"{stamp},-5\n"
    traffic.unlink()  # never write through a link into the DVC cache
    traffic.write_text("".join(lines), encoding="utf-8")
    project(origin, "dvc", "commit", "--force", "data.dvc")
    project(origin, "dvc", "push", "data.dvc")
    git(origin, "commit", "--quiet", "-am", "data: a new version (with a bad row)")
    git(origin, "checkout", "--quiet", "main")
    return PullRequests(origin, remote, root)


def _run_pull_request(prs: PullRequests, branch: str, labels: list[str] | None = None) -> ActRun:
    name = branch + ("-" + "-".join(labels) if labels else "")
    checkout = clone_for_act(prs.origin, prs.root / f"checkout-{name}", branch)
    event = pull_request_event(prs.origin, branch, "main", labels=labels)
    return run_workflow(
        checkout, prs.origin, WORKFLOW, "pull_request", event, scratch=prs.root / name
    )


def _comment(run: ActRun) -> str:
    comments = [call for call in run.cml_calls if call["argv"][:1] == ["comment"]]
    assert len(comments) == 1, (run.cml_calls, run.tail())
    argv = comments[0]["argv"]
    assert argv[:3] == ["comment", "update", "--target=pr"], argv
    assert WATERMARK in argv  # one comment, updated in place on each push
    assert "--no-publish" in argv  # no image upload to a third-party host
    assert comments[0]["token_set"], "the comment step got no token"
    body: str = comments[0]["body"]
    return body


def _table_row(body: str, first_cell: str) -> list[str]:
    line = next(line for line in body.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.fixture(scope="module")
def lags_pr(pull_requests: PullRequests) -> ActRun:
    return _run_pull_request(pull_requests, "pr-lags")


@pytest.mark.slow
def test_a_regressing_model_change_gets_its_report_and_a_failing_gate(lags_pr: ActRun) -> None:
    run = lags_pr
    assert run.returncode != 0, run.tail()
    assert run.failed_steps() == ["Gate"], run.tail()  # everything before the gate worked
    body = _comment(run)
    print(f"\n{run.timing()}; report comment {len(body.encode()):,} bytes")
    assert body.startswith("**❌ Gate failed:"), body[:300]
    assert "MASE +" in body.splitlines()[0]
    # The PR did not commit the dvc.lock of its change: the gate says so, naming the stages.
    assert "dvc.lock is stale for evaluate, explain, train" in body.splitlines()[0]
    assert _table_row(body, f"`{LAGS_KEY}`") == [f"`{LAGS_KEY}`", "`24`", "`2`"]
    mase = _table_row(body, "MASE")
    base, pr = float(mase[1]), float(mase[2])
    assert pr > base * 1.02, mase  # the gate's limit: this change is worse by more than 2 %
    assert mase[3] == f"{(pr - base) / base * 100:+.1f} %"
    assert mase[4] == "🔴 worse"
    for heading in ("## Data", "## Params", "## Metrics", "## Plots", "## Capacity impact"):
        assert f"\n{heading}\n" in body
    assert "```mermaid\nxychart-beta" in body
    assert "| instances at 60% CPU |" in body  # capacity from the validated infrastructure data
    assert "no cloud remote configured" in body
    # The same report in the job summary, and the files as an artifact.
    assert body in run.summary
    assert run.artifacts is not None
    for name in ("report.md", "report.json", "forecast.png", "metrics.json"):
        assert (run.artifacts / "pr-report" / name).is_file(), name


@pytest.mark.slow
def test_a_pull_request_breaking_the_data_fails_at_validation_with_the_failure_table(
    pull_requests: PullRequests,
) -> None:
    run = _run_pull_request(pull_requests, "pr-bad-data")
    assert run.returncode != 0, run.tail()
    assert run.failed_steps() == ["Validate the data", "Gate"], run.tail()
    assert "Retrain and backtest (dvc repro)" not in run.steps  # training never started
    body = _comment(run)
    print(f"\n{run.timing()}; report comment {len(body.encode()):,} bytes")
    assert body.startswith("**❌ Data validation failed: training did not run**"), body[:300]
    row = _table_row(body, f"`{TRAFFIC.as_posix()}` | `sessions`")
    assert row[-1].startswith(f"{BAD_LINE} (`-5"), row  # the CSV line and its value
    assert "## Metrics" not in body
    assert "changed from `" in body  # the data version differs from the base's
