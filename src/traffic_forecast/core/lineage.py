"""Where a model came from: data version, code commit, config hash, library versions."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

DATA_DVC = Path("data.dvc")
TRACKED_LIBRARIES = (
    "traffic-forecast",
    "sktime",
    "scikit-learn",
    "pandas",
    "numpy",
    "dvc",
    "pandera",
)


def data_version(dvc_file: Path = DATA_DVC) -> str:
    """The DVC hash of ``data/raw`` as ``data.dvc`` names it (``unknown`` without it)."""
    if not dvc_file.is_file():
        return "unknown"
    outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("outs", [])
    return str(outs[0]["md5"]) if outs else "unknown"


def data_version_of(files: dict[str, dict[str, Any]], dvc_file: Path = DATA_DVC) -> str:
    """The version of the raw files a run read: ``data.dvc``'s hash where it tracks them all.

    Bring-your-own files outside the tracked directory get ``untracked-`` and a hash of their
    MD5s instead, so a model card never names a data version that did not train it.
    """
    tracked = _tracked_directory(dvc_file)
    if (
        tracked is not None
        and files
        and all(Path(f).resolve().is_relative_to(tracked) for f in files)
    ):
        return data_version(dvc_file)
    digest = hashlib.sha256(json.dumps(sorted(e["md5"] for e in files.values())).encode())
    return f"untracked-{digest.hexdigest()[:12]}"


def _tracked_directory(dvc_file: Path) -> Path | None:
    if not dvc_file.is_file():
        return None
    outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8")).get("outs", [])
    return (dvc_file.parent / str(outs[0]["path"])).resolve() if outs else None


def git_commit() -> str:
    """The commit of the working tree, with ``-dirty`` when it has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def config_hash(resolved: dict[str, Any]) -> str:
    """A short, stable hash of a resolved config (sorted-key JSON)."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def frame_hash(frame: pd.DataFrame) -> str:
    """A short hash of a DataFrame's values and index (what the model was really fit on)."""
    digest = pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
    return hashlib.sha256(digest).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that decide a model's numbers."""
    found = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
