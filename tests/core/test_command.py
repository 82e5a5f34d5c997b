"""The command line: ``--help`` on every command, an unknown command named, no traceback for a user.

A user error (a bad setting, a missing file, a Bento that is not there) is one line on stderr
and an exit code; only a bug in the code may show a traceback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from traffic_forecast import cli
from traffic_forecast.core import command

COMMANDS = sorted(cli.COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_answers_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([name, "--help"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"usage: traffic-forecast {name}")


def test_the_command_list_is_the_answer_to_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in COMMANDS:
        assert f"\n  {name} " in listed


def test_an_unknown_command_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deploi"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("traffic-forecast: unknown command 'deploi'")


def test_a_wrong_option_gets_the_usage_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["simulate", "--period", "someday"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'someday'" in err
    assert "Traceback" not in err


# (arguments, exit code, what the one line says): mistakes a user makes, run as a user would.
USER_ERRORS = {
    # Hydra's own reason, its list of options included, not its first line alone.
    "unknown_model": (["params", "model=nope"], 2, "Available options in 'model'"),
    "misspelt_setting": (["train", "backtest.nfolds=3"], 2, "backtest.nfolds"),
    "not_an_override": (["evaluate", "backtest.n_folds"], 2, "missing EQUAL"),
    "unknown_bento": (["deploy", "no-such-bento:v1", "deploy.state_dir={tmp}"], 1, "no-such-bento"),
    "nothing_deployed": (["verify", "deploy.state_dir={tmp}"], 1, "nothing is deployed"),
    "missing_report": (["gate", "--report", "{tmp}/report.json"], 1, "make report"),
    "unknown_model_version": (["monitor", "--model", "traffic-forecast:nope"], 1, "nope"),
    "missing_features": (["explain", "paths.features_dir={tmp}"], 1, "run the features stage"),
}


@pytest.mark.parametrize(("args", "code", "fragment"), USER_ERRORS.values(), ids=list(USER_ERRORS))
def test_a_user_error_is_one_line_without_a_traceback(
    args: list[str], code: int, fragment: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "traffic_forecast", *(a.format(tmp=tmp_path) for a in args)],
        cwd=REPO_ROOT,
        env={**os.environ, "TRAFFIC_FORECAST_DEPLOY_DIR": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, done.stderr
    assert fragment in error[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["in.csv", "--hours", "2", "--wait", "model=theta"],
        ["in.csv", "model=theta", "--hours", "2", "--wait"],
        ["--wait", "in.csv", "--hours", "2", "model=theta"],
    ],
    ids=["after-options", "before-options", "between"],
)
def test_overrides_are_taken_before_or_after_a_commands_options(argv: list[str]) -> None:
    seen = {}

    def body(args: argparse.Namespace) -> int:
        seen.update(vars(args))
        return 0

    made = command.parser("observe", "a command with a file, options and overrides")
    made.add_argument("file")
    made.add_argument("--hours", type=int)
    made.add_argument("--wait", action="store_true")

    assert command.run(made, body, argv) == 0
    assert seen == {"file": "in.csv", "hours": 2, "wait": True, "overrides": ["model=theta"]}
