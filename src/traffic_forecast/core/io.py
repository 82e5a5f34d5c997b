"""Atomic file writes: a reader (or a crashed stage) never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here: the deploy commands use this module without pandas
    import pandas as pd


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes 0600 files; outputs are meant to be read by others
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text (UTF-8) to ``path`` through a temporary file and a rename."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON with sorted keys, so equal content gives equal bytes (and DVC hashes)."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as Parquet through a temporary file and a rename."""
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
