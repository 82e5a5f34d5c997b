"""The report's notes around the numbers: the override label, the files of the run, the remote.

The comment is public on a public repository: the remote is named, never its URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from traffic_forecast.data.remote import EMBEDDED_REMOTE, scheme
from traffic_forecast.report.gate import Verdict

# The artifact .github/workflows/pull-request.yml uploads reports/ as (a test keeps them equal).
ARTIFACT = "pr-report"

# What GitHub Actions puts in the environment, checked before it goes into a link: a host
# without credentials or path, owner/name, a number. Anything else gives no link at all.
_SERVER = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?/?")
# GitHub's rules: an owner is letters, digits and inner hyphens; a repository name may hold dots
# (``.github``) but is never ``.`` or ``..``.
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/(?!\.\.?$)[A-Za-z0-9_.-]+")
_RUN_ID = re.compile(r"[0-9]+")
_REMOTE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_STORE = re.compile(r"[a-z][a-z0-9+.-]*")


def run_url(env: Mapping[str, str]) -> str | None:
    """The workflow run's page (it lists the run's artifacts), or None outside GitHub Actions."""
    server, repository, run = (
        env.get(name, "") for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if env.get("GITHUB_ACTIONS") != "true" or not (
        _SERVER.fullmatch(server) and _REPOSITORY.fullmatch(repository) and _RUN_ID.fullmatch(run)
    ):
        return None
    return f"{server.rstrip('/')}/{repository}/actions/runs/{run}"


def artifact_line(url: str | None) -> str:
    """Where the PNG plots and JSON files are: the run's artifact, or ``reports/`` locally."""
    if url is None:
        return (
            "**Files** (PNG plots, JSON): `reports/` in this checkout; a pull request's workflow "
            f"run uploads them as the artifact `{ARTIFACT}`."
        )
    return f"**Files** (PNG plots, JSON): the artifact `{ARTIFACT}` of [this workflow run]({url})."


def override_line(
    verdict: Verdict | None, validation_passed: bool, label: str, labels: Sequence[str] | None
) -> str:
    """Which PR label overrides a failed gate, and whether it is applied (None: not known)."""
    if labels is None:
        state = "this run was not given the pull request's labels"
    else:
        state = "applied" if label in labels else "not applied"
    start = f"**Override label** `{label}`: {state}."
    if not validation_passed or verdict is None:
        return f"{start} It accepts a metric regression, not data that failed validation."
    if verdict.overridden:
        return f"{start} The failed checks above are accepted; remove it to enforce the gate."
    if verdict.failures:
        return (
            f"{start} A reviewer who accepts this regression adds it to the pull request: the "
            "workflow re-runs and the gate passes, marked ⚠️."
        )
    return f"{start} Not needed: the gate passed."


def remote_line(recorded: Mapping[str, Any] | None) -> str | None:
    """The DVC remote ``traffic-forecast remote`` recorded: its name and kind of store, no URL."""
    if recorded is None:
        return None
    name = str(recorded.get("name", ""))
    shown = f"`{name}`" if _REMOTE_NAME.fullmatch(name) else "(unnamed)"
    configured = str(recorded.get("configured_url", ""))
    store = scheme(configured)
    store = store if _STORE.fullmatch(store) else "unknown store"
    kind = recorded.get("kind")
    if kind == "local":
        where = "the embedded default, " if configured == EMBEDDED_REMOTE else ""
        return f"{shown}, {where}a local directory (no cloud remote configured)"
    if kind == "fallback":
        return (
            f"{shown} ({store}) is configured, but this run has no {store} credentials (a fork's "
            "pull request gets no secrets): it used the embedded default instead, a local "
            "directory where the simulator regenerates the example data"
        )
    return f"{shown} ({store})"


def footer(commit: str, data_version: str, remote: str | None, url: str | None) -> str:
    """Commit, data version, how to reproduce, where the data came from and the run's files."""
    lines = [
        "---",
        f"commit `{commit}` · data `{data_version}` · reproduce: "
        f"`git checkout {commit} && make data && dvc repro`",
        "",
    ]
    if remote:
        lines += [f"Data remote: {remote}", ""]
    lines.append(artifact_line(url))
    return "\n".join(lines)
