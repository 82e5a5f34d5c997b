"""Run a workflow file with act on this machine (self-hosted mode, no Docker), offline.

Every action a workflow pins (``owner/repo@<sha>``) is mapped with ``--local-repository`` to
its stand-in under ``standins/``; a pinned action without a stand-in fails the test at once, so
a new action in a workflow cannot slip through untested. act runs in an empty environment (its
own HOME, a plain PATH): the workflow must install what it needs, as on a fresh runner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from tests.repos import GIT_IDENTITY, git, working_tree_repository

STANDINS = Path(__file__).parent / "standins"
ACT = Path(sys.executable).parent / "act"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})\b", re.MULTILINE)
# A step's result line ends with its duration: [845ms], [12.3s], [1m2.24s], [1h0m3s].
STEP_RESULT = re.compile(
    r"(✅  Success|❌  Failure) - Main (.+?)(?: \[((?:\d+h)?(?:\d+m)?[\d.]+(?:ms|µs|s))\])?$",
    re.M,
)
DURATION_PART = re.compile(r"([\d.]+)(h|ms|µs|m|s)")
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6}


def duration_seconds(text: str) -> float:
    """``1m2.24s`` → 62.24: act's (Go's) way of printing a duration."""
    return sum(float(value) * UNIT_SECONDS[unit] for value, unit in DURATION_PART.findall(text))


# act prints a step's summary as "⚙  Summary - <markdown>", up to the next prefixed log line.
SUMMARY = re.compile(r"⚙  Summary - (.*?)(?=^\[[^\]\n]+\] )", re.DOTALL | re.MULTILINE)
REPOSITORY = "acme/traffic-forecast"  # what act takes `github.repository` from (origin's URL)
TEST_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "ITERATIVE_DO_NOT_TRACK": "1",
    **GIT_IDENTITY,
}


def pinned_actions(workflow: Path) -> list[tuple[str, str]]:
    """Every ``owner/repo@sha`` a workflow file uses, in order, without repeats."""
    found = USES.findall(workflow.read_text(encoding="utf-8"))
    return list(dict.fromkeys((repo, sha) for repo, sha in found))


def local_repositories(workflow: Path) -> list[str]:
    """The ``--local-repository`` arguments for act: each pinned action to its stand-in."""
    args = []
    for repo, sha in pinned_actions(workflow):
        standin = STANDINS / repo
        if not (standin / "action.yml").is_file():
            raise AssertionError(
                f"{workflow.name} uses {repo}, which has no stand-in in {STANDINS}"
            )
        args += ["--local-repository", f"{repo}@{sha}={standin}"]
    return args


def uv_binary() -> Path:
    """The uv that `make install` used (on PATH, or bootstrapped into .tools)."""
    found = shutil.which("uv") or REPO_ROOT / ".tools" / "bin" / "uv"
    path = Path(found)
    if not path.is_file():
        raise AssertionError("no uv binary: run `make install` first")
    return path


def _uv_cache_dir(uv: Path) -> str:
    return subprocess.run(
        [str(uv), "cache", "dir"], check=True, capture_output=True, text=True
    ).stdout.strip()


# The machine's own network settings (its CA bundle, any proxy): a runner has its machine's.
NETWORK_ENV = re.compile(r"^(SSL_CERT_\w+|\w+_CA_BUNDLE|PIP_CERT|GIT_SSL_CAINFO|(?i:\w*_proxy))$")


def _machine_network_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if NETWORK_ENV.match(name)}


def _plain_path() -> str:
    """A PATH with the system tools and this Python's base interpreter, but no project venv."""
    base_bin = Path(sys.base_prefix) / "bin"
    return os.pathsep.join(
        [
            str(base_bin),
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
    )


@dataclass(frozen=True, repr=False)
class ActRun:
    """One ``act`` run: its exit code, its whole log, and what the stand-ins recorded."""

    returncode: int
    output: str
    seconds: float
    cml_calls: list[dict[str, Any]] = field(default_factory=list)
    artifacts: Path | None = None

    def __repr__(self) -> str:  # assertion messages show `tail()`, not the whole log
        return f"ActRun(returncode={self.returncode}, seconds={self.seconds:.0f})"

    @property
    def steps(self) -> dict[str, bool]:
        """Each step that ran (by its name in the log) and whether it succeeded."""
        return {
            name.strip(): result.startswith("✅")
            for result, name, _ in STEP_RESULT.findall(self.output)
        }

    @property
    def step_seconds(self) -> dict[str, float]:
        """How long each step that ran took."""
        return {
            name.strip(): duration_seconds(took)
            for _, name, took in STEP_RESULT.findall(self.output)
        }

    def timing(self, steps: int = 4) -> str:
        """The wall time and the slowest steps, for the test's printout."""
        slowest = sorted(self.step_seconds.items(), key=lambda item: -item[1])[:steps]
        shown = ", ".join(f"{name} {took:.0f} s" for name, took in slowest)
        return f"act run: {self.seconds:.0f} s (slowest steps: {shown})"

    @property
    def summary(self) -> str:
        """What the steps wrote to ``GITHUB_STEP_SUMMARY`` (act prints it after each step)."""
        return "".join(SUMMARY.findall(self.output))

    def failed_steps(self) -> list[str]:
        """The names of the steps that failed, in order."""
        return [name for name, ok in self.steps.items() if not ok]

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` of the log, for assertion messages."""
        return "\n".join(self.output.splitlines()[-lines:])


def run_workflow(
    checkout: Path,
    origin: Path,
    workflow: str,
    event_name: str,
    event: dict[str, Any],
    *,
    scratch: Path,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    timeout: float = 1200,
) -> ActRun:
    """Run ``.github/workflows/<workflow>`` of ``checkout`` for ``event_name`` with ``event``.

    ``checkout`` is a clone whose HEAD is the commit under test (act reads the workflow and
    ``GITHUB_SHA`` from it); the checkout stand-in clones ``origin``. ``scratch`` holds act's
    HOME, the event file, the stand-ins' records and the log.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    home, artifacts = scratch / "home", scratch / "artifacts"
    home.mkdir(exist_ok=True)
    event_file, cml_log = scratch / "event.json", scratch / "cml.jsonl"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    uv = uv_binary()
    workflow_file = checkout / ".github" / "workflows" / workflow
    workflow_env = {
        "STANDIN_ORIGIN": str(origin),
        "STANDIN_UV": str(uv),
        "STANDIN_UV_CACHE_DIR": _uv_cache_dir(uv),
        "STANDIN_ARTIFACTS": str(artifacts),
        "STANDIN_CML_LOG": str(cml_log),
        **TEST_ENV,
        **(env or {}),
    }
    args = [
        str(ACT),
        event_name,
        "--workflows",
        str(workflow_file),
        "--eventpath",
        str(event_file),
        "--platform",
        "ubuntu-latest=-self-hosted",
        "--platform",
        "self-hosted=-self-hosted",
        "--no-cache-server",
        "--no-skip-checkout",
        "--secret",
        "GITHUB_TOKEN=stand-in-token",
        *local_repositories(workflow_file),
    ]
    for name, value in workflow_env.items():
        args += ["--env", f"{name}={value}"]
    for name, value in (secrets or {}).items():
        args += ["--secret", f"{name}={value}"]
    for name, value in (variables or {}).items():
        args += ["--var", f"{name}={value}"]
    started = time.perf_counter()
    done = subprocess.run(
        args,
        cwd=checkout,
        env={
            "HOME": str(home),
            # act's workspaces live in the cache dir; not under ~/.cache, because BentoML
            # refuses to build from a path with a hidden directory in it.
            "XDG_CACHE_HOME": str(scratch / "cache"),
            "PATH": _plain_path(),
            "ACT_DISABLE_VERSION_CHECK": "1",
            "GIT_PAGER": "cat",
            "PAGER": "cat",
            **_machine_network_env(),
            **TEST_ENV,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    (scratch / "act.log").write_text(done.stdout, encoding="utf-8")
    calls = (
        [json.loads(line) for line in cml_log.read_text(encoding="utf-8").splitlines()]
        if cml_log.is_file()
        else []
    )
    return ActRun(done.returncode, done.stdout, seconds, calls, artifacts)


def pull_request_event(
    repo: Path, head: str, base: str, *, number: int = 1, labels: list[str] | None = None
) -> dict[str, Any]:
    """A ``pull_request`` payload for branch ``head`` into ``base`` of the test repository."""
    same_repo = {"full_name": REPOSITORY}
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "title": f"test PR {head}",
            "head": {"ref": head, "sha": git(repo, "rev-parse", head), "repo": same_repo},
            "base": {"ref": base, "sha": git(repo, "rev-parse", base), "repo": same_repo},
            "labels": [{"name": label} for label in labels or []],
        },
        "repository": same_repo,
    }


def clone_for_act(origin: Path, path: Path, branch: str) -> Path:
    """A clone of ``origin`` at ``branch`` that act runs in, named like the GitHub repository."""
    git(origin.parent, "clone", "--quiet", "--branch", branch, str(origin), str(path))
    # act derives github.repository from origin's URL (the checkout stand-in clones `origin`).
    git(path, "remote", "set-url", "origin", f"https://github.com/{REPOSITORY}.git")
    return path


def project(repo: Path, *args: str) -> str:
    """The project's CLI or DVC (``python -m …``) in ``repo``, running ``repo``'s own code.

    Its output; a failed command fails the test, with its output's tail.
    """
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=repo,
        env={
            **os.environ,
            "PYTHONPATH": str(repo / "src"),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "DVC_NO_ANALYTICS": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def origin_with_dvc_remote(root: Path) -> Path:
    """The working tree as ``root/origin``, committed, with a DVC remote of its own.

    The remote is ``root/dvc-remote`` (empty: the first ``data`` regenerates and pushes).
    """
    origin = working_tree_repository(root / "origin")
    project(origin, "dvc", "remote", "modify", "storage", "url", str(root / "dvc-remote"))
    git(origin, "commit", "--quiet", "-am", "a DVC remote for this test")
    return origin
