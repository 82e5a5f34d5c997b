"""Git repositories for tests that run the project as a user would: made from this working tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "traffic-forecast tests",
    "GIT_AUTHOR_EMAIL": "tests@traffic-forecast.invalid",
    "GIT_COMMITTER_NAME": "traffic-forecast tests",
    "GIT_COMMITTER_EMAIL": "tests@traffic-forecast.invalid",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout, stripped."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_IDENTITY},
    ).stdout.strip()


def working_tree_repository(path: Path, only: tuple[str, ...] = ()) -> Path:
    """A new git repository (branch ``main``) of this working tree's files, tracked or new.

    CI checks out what is committed; during development the tree also holds changes not yet
    committed, and they are what is under test. Ignored files (data, models, .venv) stay out.
    ``only`` keeps just these files and folders (a small repository: every DVC command in a
    repository with the pipeline's dvc.yaml parses it first).
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *only],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(path, "init", "--quiet", "--initial-branch", "main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "base: the template as it stands")
    return path
