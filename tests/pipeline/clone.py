"""A fresh clone of this project with the pipeline run in it, and running commands there as a user.

The clone gets its own empty DVC remote (``dvc remote modify --local storage url …``);
``traffic-forecast data`` regenerates data/raw and pushes it there; ``dvc repro`` runs once.
Commands run with ``PYTHONPATH`` on the clone's own ``src/``, not the editable install of the
working tree, so what DVC hashes is what runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

STAGES = ("validate", "features", "evaluate", "train", "explain")  # dvc.yaml's order
METRICS = Path("reports/metrics.json")
RUNNING = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping", re.MULTILINE)
RAN_EXPERIMENT = re.compile(r"Ran experiment\(s\): (\S+)")


@dataclass(frozen=True, repr=False)
class Run:
    """One command in the clone: its exit code and its stdout and stderr, interleaved."""

    args: tuple[str, ...]
    returncode: int
    output: str

    def __repr__(self) -> str:  # assertion messages show `tail()`, not the whole output
        return f"Run({' '.join(self.args[2:])!r}, returncode={self.returncode})"

    @property
    def ran(self) -> list[str]:
        """The stages DVC ran, in order."""
        return RUNNING.findall(self.output)

    @property
    def skipped(self) -> set[str]:
        """The stages DVC found unchanged."""
        return set(SKIPPED.findall(self.output))

    def tail(self, lines: int = 25) -> str:
        """The command and the last ``lines`` of its output, for assertion messages."""
        return f"$ {' '.join(self.args)} -> {self.returncode}\n" + "\n".join(
            self.output.splitlines()[-lines:]
        )


def env_of(repo: Path) -> dict[str, str]:
    """The environment of a command in the clone: telemetry off, the clone's code."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "ITERATIVE_DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
        "TRAFFIC_FORECAST_LOG": "INFO",
        # dvc.yaml runs `python -m …`: the project's interpreter, importing the clone's code.
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(repo / "src"),
    }


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """``args`` in the clone, whatever their exit code."""
    result = subprocess.run(
        args,
        cwd=repo,
        env={**env_of(repo), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    return Run(args, result.returncode, result.stdout)


def dvc(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Run:
    """``dvc args…`` in the clone; it must succeed unless ``check`` is off."""
    ran = run(repo, sys.executable, "-m", "dvc", *args, env=env)
    assert not check or ran.returncode == 0, ran.tail()
    return ran


def shell(repo: Path, command: str, **placeholders: str) -> Run:
    """A command as the README shows it (``<exp>``-style placeholders filled), run by bash."""
    for name, value in placeholders.items():
        command = command.replace(f"<{name}>", value)
    ran = run(repo, "bash", "-c", command)
    assert ran.returncode == 0, ran.tail()
    return ran


def git_status(repo: Path) -> str:
    """``git status --porcelain``: empty when the checkout is exactly what was committed."""
    return run(repo, "git", "status", "--porcelain").output.strip()


def status(repo: Path) -> dict[str, Any]:
    """``dvc status --json`` of the whole project: ``{}`` when everything is up to date."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=repo,
        env=env_of(repo),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout or "{}")
    return found


@dataclass(frozen=True)
class Pipeline:
    """The clone after ``traffic-forecast data`` and one ``dvc repro``."""

    repo: Path
    status_before_repro: dict[str, Any]
    repro: Run
    status_after_repro: dict[str, Any]
    metrics: dict[str, Any]


def cloned_with_pipeline(root: Path) -> Pipeline:
    """A clone of HEAD under ``root``, its data made, ``dvc repro`` run (hash seed 1)."""
    repo = root / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO_ROOT), str(repo)], check=True, env=env_of(repo)
    )
    dvc(repo, "remote", "modify", "--local", "storage", "url", str(root / "remote"))
    data = run(repo, sys.executable, "-m", "traffic_forecast.cli", "data")
    assert data.returncode == 0, data.tail()
    status_before = status(repo)
    repro = dvc(repo, "repro", env={"PYTHONHASHSEED": "1"})
    metrics = json.loads((repo / METRICS).read_text(encoding="utf-8"))
    return Pipeline(repo, status_before, repro, status(repo), metrics)


def with_make(repo: Path) -> Path:
    """The clone, ready for make: this tree's installed venv and uv stand in for `make install`."""
    for folder in (".venv", ".tools"):
        if (REPO_ROOT / folder).exists() and not (repo / folder).exists():
            (repo / folder).symlink_to(REPO_ROOT / folder)
    (repo / ".venv" / ".installed").touch()  # newer than the clone's pyproject.toml and uv.lock
    return repo
