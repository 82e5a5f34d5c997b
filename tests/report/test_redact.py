"""The public report never prints a remote URL, a secret of the environment or a runner path."""

from __future__ import annotations

import json
from pathlib import Path

from tests.report.samples import PASSED, report_inputs
from traffic_forecast.report import render_json, render_markdown
from traffic_forecast.report.redact import HIDDEN, REMOTE_URL, private_values, redact

S3 = "s3://acme-private-bucket/teams/forecasting/dvc"
RUNNER_HOME = Path("/home/runner")
CHECKOUT = RUNNER_HOME / "work" / "traffic-forecast" / "traffic-forecast"
ENV = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "REPO_TOKEN": "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
    "AWS_REGION": "eu-west-1",  # not a secret: printed as it is
    "SHORT_KEY": "abc",  # too short to tell from an ordinary word
}
REMOTE = {"name": "storage", "configured_url": S3, "url": "/tmp/traffic-forecast-dvc-storage"}


def _private() -> dict[str, str]:
    return private_values(ENV, REMOTE, CHECKOUT, RUNNER_HOME)


def test_text_from_elsewhere_is_redacted_before_it_is_published() -> None:
    # Validation notes and skip reasons come from other modules (an error message, a config value):
    # whatever they hold, the URL, the secrets and the runner's paths do not reach the comment.
    leaky = {**PASSED, "notes": [f"pulled from {S3} with key {ENV['AWS_SECRET_ACCESS_KEY']}"]}
    inputs = report_inputs(
        validation=leaky,
        capacity=None,
        capacity_reason=f"Skipped: {CHECKOUT}/data/validated/infrastructure.csv unreadable "
        f"(token {ENV['REPO_TOKEN']}, cache {RUNNER_HOME}/.cache)",
        private=_private(),
    )
    report = render_markdown(inputs)
    published = report + json.dumps(render_json(inputs))
    for value in (S3, "acme-private", ENV["AWS_SECRET_ACCESS_KEY"], ENV["REPO_TOKEN"], "/home/"):
        assert value not in published, value
    assert f"pulled from {REMOTE_URL} with key {HIDDEN}" in report
    assert "Skipped: ./data/validated/infrastructure.csv" in report  # the checkout, not its parent
    assert "~/.cache" in report


def test_only_secrets_by_name_and_long_enough_are_hidden() -> None:
    private = _private()
    assert ENV["AWS_SECRET_ACCESS_KEY"] in private
    assert ENV["REPO_TOKEN"] in private
    assert "eu-west-1" not in private
    assert "abc" not in private
    assert redact("region eu-west-1, abc", private) == "region eu-west-1, abc"


def test_without_a_remote_record_or_a_root_path_nothing_is_invented() -> None:
    private = private_values({}, None, Path("/"), Path("/"))
    assert private == {}
    assert redact("/ stays /", private) == "/ stays /"
