"""promtool (Debian's `prometheus`, installed by `make system-deps`), as the tests run it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``promtool args…``: its exit code and output, whatever they are."""
    command = [shutil.which("promtool") or "promtool", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
