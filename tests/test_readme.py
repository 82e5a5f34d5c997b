"""Every command the README shows is run by a test, and the targets it names exist.

The commands are read from the README's ``bash`` blocks, a command per line (a trailing comment
dropped). Each must be run somewhere: as a string a test runs (it appears verbatim in a test
file, placeholders such as ``<exp>`` included), or as a ``run:`` step of a workflow that a test
runs with act. The few that cannot run on a machine without the internet and a cloud account
are listed below, each with the reason.
"""

from __future__ import annotations

import ast
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
TESTS = REPO_ROOT / "tests"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# Workflows run by act in tests/workflows/test_<name>.py.
TESTED_WORKFLOWS = ("pull-request.yml", "release.yml", "monitor.yml")
NOT_RUN_HERE = {
    "make test": "it is the suite itself: CI runs it (.ci/run), and its figures are in the README",
    "make bench": "benchmarks print figures for people and take minutes: run by hand",
    "make bench-fleet": "an hour of Spark on fleets of 100 to 5,000 series: run by hand",
    "make fleet-demo": "minutes of Spark on the 20 series, measured by hand (README); "
    "tests/fleet/test_cli.py runs the same commands on a tiny fleet",
    "uv sync --extra s3": "re-syncs the project's .venv; make install has dvc-s3 (the dev group)",
    "make experiment-demo": "minutes of simulated live hours, measured by hand (README); "
    "tests/experiment/test_live.py runs its flow (experiment/demo.py) with a one-day design",
}
BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def _without_comment(line: str) -> str:
    # A comment starts at a `#` after whitespace, outside quotes (the commands here quote simply).
    quoted, previous = None, " "
    for i, char in enumerate(line):
        if quoted:
            quoted = None if char == quoted else quoted
        elif char in "'\"":
            quoted = char
        elif char == "#" and previous.isspace():
            return line[:i].rstrip()
        previous = char
    return line.rstrip()


def readme_commands(text: str) -> list[str]:
    """The commands of the README's bash blocks, in order, without comments."""
    commands = []
    for block in BLOCK.findall(text):
        for line in block.splitlines():
            command = _without_comment(line.strip())
            if command:
                commands.append(command)
    return list(dict.fromkeys(commands))


@cache  # read once for every command checked
def _strings_in_tests() -> set[str]:
    found: set[str] = set()
    for path in TESTS.rglob("*.py"):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        }
    return found


@cache  # read once for every command checked
def _workflow_steps() -> set[str]:
    steps = set()
    for name in TESTED_WORKFLOWS:
        workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
        for job in workflow["jobs"].values():
            steps |= {str(step["run"]).strip() for step in job.get("steps", []) if "run" in step}
    return steps


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_shows_commands() -> None:
    assert "make demo" in COMMANDS
    assert "make test" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_is_run_by_a_test(command: str) -> None:
    if command in NOT_RUN_HERE:
        return
    assert command in _strings_in_tests() | _workflow_steps(), (
        f"no test runs `{command}`: run it in a test (the exact string), or say in "
        "NOT_RUN_HERE why it cannot run here"
    )


def test_what_is_not_run_here_is_still_in_the_readme() -> None:
    assert set(NOT_RUN_HERE) <= set(COMMANDS), "drop what the README no longer shows"


def test_comments_and_blank_lines_are_not_commands() -> None:
    text = "```bash\nmake demo   # installs\n\n# a note\ngrep '#x' f  # not '#x'\n```\n"
    assert readme_commands(text) == ["make demo", "grep '#x' f"]


@cache  # read once for every command checked
def _targets() -> set[str]:
    listed = subprocess.run(
        ["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"^\s+(?:\x1b\[\d+m)?([\w-]+)", listed, re.MULTILINE))


def test_make_help_lists_every_documented_target_digits_included() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([\w-]+):.*## ", makefile, re.MULTILINE))
    assert "k8s" in documented
    assert documented <= _targets()


def test_every_make_target_the_readme_names_exists() -> None:
    named = {match for command in COMMANDS for match in re.findall(r"make ([\w-]+)", command)}
    assert named <= _targets()
