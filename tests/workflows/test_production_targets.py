"""The make targets the release and rollback workflows lean on for safety, run as they run there.

``make release-ref`` is the production jobs' first step; ``make registry-login`` is the only
place a registry credential is handed to ``docker login``. A stand-in ``docker`` on PATH records
what it was given (no Docker engine here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

REFS = {
    "refs/heads/release": True,
    "refs/heads/main": False,
    "refs/heads/release-candidate": False,  # a prefix is not the branch
    "refs/heads/feature/refs/heads/release": False,
    "refs/tags/release": False,  # a tag of that name is not the branch
    "refs/pull/1/merge": False,
    "": False,
}


def _make(
    target: str, env: dict[str, str], path: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith("REGISTRY")}
    base.pop("GITHUB_REF", None)
    if path is not None:
        base["PATH"] = path
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("ref", list(REFS), ids=[ref or "unset" for ref in REFS])
def test_production_steps_run_from_the_release_branch_only(ref: str) -> None:
    done = _make("release-ref", {"GITHUB_REF": ref} if ref else {})
    assert (done.returncode == 0) is REFS[ref], done.stdout + done.stderr
    if not REFS[ref]:
        assert "refused" in done.stdout


@pytest.fixture
def docker(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose ``docker`` records its arguments and the password it read from stdin."""
    bin_dir, record = tmp_path / "bin", tmp_path / "docker.log"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(f'#!/bin/sh\necho "$@ stdin=$(cat)" >> {record}\n', encoding="utf-8")
    fake.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}", record


# (REGISTRY, REGISTRY_LOGIN_HOST, REGISTRY_PASSWORD) → the host logged in to, or None: refused.
LOGINS = {
    "ghcr.io with the workflow token": ("ghcr.io/acme", "ghcr.io", "ghs_token", "ghcr.io"),
    "a look-alike host": ("ghcr.io.evil.example/acme", "ghcr.io", "ghs_token", None),
    "ghcr.io as a path": ("evil.example/ghcr.io/acme", "ghcr.io", "ghs_token", None),
    "a port is another host": ("ghcr.io:8443/acme", "ghcr.io", "ghs_token", None),
    "a GitHub token elsewhere": ("quay.io/acme", "quay.io", "ghs_token", None),
    "a fine-grained token elsewhere": ("quay.io/acme", "quay.io", "github_pat_x", None),
    "another registry, its own secret": ("quay.io/acme", "quay.io", "s3cret", "quay.io"),
    "no host configured": ("quay.io/acme", "", "s3cret", None),
}


@pytest.mark.parametrize("case", list(LOGINS), ids=list(LOGINS))
def test_a_registry_credential_goes_only_to_the_host_it_is_for(
    case: str, docker: tuple[str, Path]
) -> None:
    registry, login_host, password, expected = LOGINS[case]
    path, record = docker
    env = {
        "REGISTRY": registry,
        "REGISTRY_LOGIN_HOST": login_host,
        "REGISTRY_USER": "octocat",
        "REGISTRY_PASSWORD": password,
    }
    done = _make("registry-login", env, path)
    if expected is None:
        assert done.returncode != 0
        assert "refused" in done.stdout
        assert not record.exists(), "docker was called"
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert record.read_text(encoding="utf-8").split() == [
            "login",
            expected,
            "-u",
            "octocat",
            "--password-stdin",
            f"stdin={password}",
        ]
    assert password not in done.stdout + done.stderr  # never echoed
