"""One way to run a tool (dvc, git, bentoml, cml): its output, or an error that says why, first.

A failed tool often prints pages (a traceback, a recursive path thousands of characters long).
The error raised here leads with the line that names the cause, then the last lines of the
output, every line cut to a readable width.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from traffic_forecast.core.errors import PipelineInputError, TrafficForecastError

# A line that names a failure: "OSError: …", "bentoml.exceptions.NotFound: …", "ERROR: …".
CAUSE = re.compile(r"^(?:[\w.]*(?:Error|Exception|NotFound|Exit)\b.*|(?i:error)\b.*)$")
WIDTH = 240
TAIL_LINES = 10


def _cut(line: str, width: int = WIDTH) -> str:
    if len(line) <= width:
        return line
    half = (width - 5) // 2
    return f"{line[:half]} […] {line[-half:]}"


def cause_first(output: str) -> str:
    """The cause (the last line that names an error), then the output's last lines, cut."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "(it printed nothing)"
    causes = [line for line in lines if CAUSE.match(line.strip())]
    cause = causes[-1].strip() if causes else lines[-1].strip()
    tail = [_cut(line) for line in lines[-TAIL_LINES:]]
    return "\n".join([_cut(cause), "last lines of its output:", *(f"  {line}" for line in tail)])


def run_checked(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    error: type[TrafficForecastError] = PipelineInputError,
) -> str:
    """Run ``args``; its stdout, or ``error`` with the cause first when it fails."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        where = f" in {cwd}" if cwd else ""
        raise error(
            f"`{_cut(' '.join(args), 160)}` failed{where} (exit {done.returncode}): "
            + cause_first(done.stderr + "\n" + done.stdout if done.stderr else done.stdout)
        )
    return done.stdout
