"""The notes around the numbers: the override label, the run's files, the remote without its URL."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.report.samples import FAILED, GATE, metrics_json, report_inputs
from traffic_forecast.core.config import GateConfig
from traffic_forecast.data.remote import EMBEDDED_REMOTE, choose_remote
from traffic_forecast.report import render_json, render_markdown
from traffic_forecast.report.gate import apply_gate
from traffic_forecast.report.gather import remote_record
from traffic_forecast.report.notes import ARTIFACT, remote_line, run_url

PULL_REQUEST_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "pull-request.yml"
ACTIONS = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/traffic-forecast",
    "GITHUB_RUN_ID": "9876543210",
}
S3 = "s3://acme-private-bucket/teams/forecasting/dvc"


def _override_line(report: str) -> str:
    return next(line for line in report.splitlines() if line.startswith("**Override label**"))


# --- the override label ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mase", "labels", "says"),
    [
        (0.6, (), ["not applied", "adds it to the pull request"]),
        (0.6, ("docs",), ["not applied", "adds it to the pull request"]),
        (0.6, ("gate-override",), ["applied", "failed checks above are accepted"]),
        (0.6, None, ["not given the pull request's labels", "adds it"]),
        (0.5, (), ["not applied", "Not needed"]),
        (0.5, ("gate-override",), ["applied", "Not needed"]),
    ],
    ids=["failed", "other-label", "overridden", "labels-unknown", "passed", "passed-labelled"],
)
def test_the_report_names_the_override_label_and_whether_it_is_applied(
    mase: float, labels: tuple[str, ...] | None, says: list[str]
) -> None:
    pr = metrics_json(mase=mase)
    verdict = apply_gate(pr, metrics_json(), GATE, list(labels or ()))
    report = render_markdown(report_inputs(pr_metrics=pr, verdict=verdict, labels=labels))
    line = _override_line(report)
    assert "`gate-override`" in line
    for text in says:
        assert text in line, line
    assert ("not applied" in line) is (labels is not None and "gate-override" not in labels)
    assert report.splitlines().index(line) < report.index("## Data")  # read with the verdict


def test_the_label_named_is_the_configured_one() -> None:
    gate = GateConfig(override_label="accept-regression")
    pr = metrics_json(mase=0.6)
    overridden = apply_gate(pr, metrics_json(), gate, ["accept-regression"])
    report = render_markdown(
        report_inputs(
            pr_metrics=pr,
            verdict=overridden,
            override_label=gate.override_label,
            labels=("accept-regression",),
        )
    )
    assert "`accept-regression`: applied" in _override_line(report)
    assert "gate-override" not in report


def test_a_failed_validation_says_the_label_does_not_override_it() -> None:
    labelled = report_inputs(validation=FAILED, verdict=None, labels=("gate-override",))
    line = _override_line(render_markdown(labelled))
    assert ": applied." in line
    assert "not data that failed validation" in line


# --- the run's files --------------------------------------------------------------------------


def test_in_github_actions_the_report_links_the_run_and_names_the_artifact() -> None:
    url = run_url(ACTIONS)
    assert url == "https://github.com/acme/traffic-forecast/actions/runs/9876543210"
    report = render_markdown(report_inputs(run_url=url))
    links = re.findall(r"\[([^\]]+)\]\((https?://[^)]+)\)", report)
    assert [target for _, target in links] == [url]
    files = next(line for line in report.splitlines() if line.startswith("**Files**"))
    assert f"`{ARTIFACT}`" in files
    assert url in files


@pytest.mark.parametrize(
    "changes",
    [
        {"GITHUB_ACTIONS": ""},
        {"GITHUB_RUN_ID": ""},
        {"GITHUB_REPOSITORY": ""},
        {"GITHUB_SERVER_URL": ""},
        {"GITHUB_RUN_ID": "12; rm -rf"},
        {"GITHUB_REPOSITORY": "acme/traffic-forecast/../../x"},
        {"GITHUB_REPOSITORY": "../.."},
        {"GITHUB_SERVER_URL": "https://user:token@github.com"},
        {"GITHUB_SERVER_URL": "javascript:alert(1)"},
    ],
    ids=[
        "not-actions",
        "no-run",
        "no-repository",
        "no-server",
        "odd-run",
        "odd-repository",
        "dots",
        "credentials",
        "scheme",
    ],
)
def test_outside_github_actions_or_with_odd_values_there_is_no_link(
    changes: dict[str, str],
) -> None:
    env = {key: value for key, value in {**ACTIONS, **changes}.items() if value}
    assert run_url(env) is None
    report = render_markdown(report_inputs(run_url=run_url(env)))
    assert "](" not in report  # no link at all, so none broken
    files = next(line for line in report.splitlines() if line.startswith("**Files**"))
    assert "`reports/`" in files


def test_the_artifact_named_is_the_one_the_pull_request_workflow_uploads() -> None:
    workflow = yaml.safe_load(PULL_REQUEST_WORKFLOW.read_text(encoding="utf-8"))
    uploads = [
        step["with"]
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    named = [upload for upload in uploads if upload.get("name") == ARTIFACT]
    assert len(named) == 1, uploads
    assert "reports/*.png" in named[0]["path"].split()


# --- the remote, named and never located -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "env", "says"),
    [
        (S3, {}, ["`storage` (s3) is configured", "no s3 credentials", "embedded default"]),
        (S3, {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY123"}, ["`storage` (s3)"]),
        ("gs://acme-private-bucket/dvc", {"CLOUDSDK_AUTH_ACCESS_TOKEN": "t0ken-value"}, ["(gs)"]),
        (EMBEDDED_REMOTE, {}, ["embedded default", "no cloud remote configured"]),
        ("/srv/acme-private-store/dvc", {}, ["local directory", "no cloud remote configured"]),
    ],
    ids=["s3-fallback", "s3", "gs", "embedded", "local-directory"],
)
def test_the_report_names_the_remote_and_its_kind_but_never_its_url(
    tmp_path: Path, url: str, env: dict[str, str], says: list[str]
) -> None:
    # What `traffic-forecast remote` records, read back as the report reads it.
    (tmp_path / "remote.json").write_text(
        json.dumps(asdict(choose_remote("storage", url, env))), encoding="utf-8"
    )
    recorded = remote_record(tmp_path)
    line = remote_line(recorded)
    assert line is not None
    for text in says:
        assert text in line, line
    # Nothing redacted here: the remote's line itself must hold no URL (redact.py is a second
    # line of defence, tested on its own).
    inputs = report_inputs(remote_note=line)
    public = render_markdown(inputs) + json.dumps(render_json(inputs))
    for secret in (url, "acme-private", EMBEDDED_REMOTE, *env.values()):
        assert secret not in public, secret
    assert f"Data remote: {line}" in public


def test_an_unexpected_record_still_prints_no_url() -> None:
    odd = {"name": "s3://acme-private-bucket", "configured_url": S3, "kind": "mystery"}
    line = remote_line(odd)
    assert line is not None
    assert "acme-private" not in line
    assert remote_line(None) is None
