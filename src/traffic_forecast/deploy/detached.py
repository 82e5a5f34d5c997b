"""Processes that outlive the command starting them: the colours' servers, the router, a retire.

A GitHub self-hosted runner, as a job ends, kills every process whose environment carries the
job's ``RUNNER_TRACKING_ID`` ("Cleaning up orphan processes"): a deploy job that left its
servers with that variable would take production down as it finished. So they start without it,
each in a session of its own (stopped as a group, apart from the job's terminal).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

# What a runner marks its job's processes with (actions/runner: ProcessInvoker, "orphan
# processes" clean-up). Never inherited by what a deploy leaves running.
RUNNER_MARKS = ("RUNNER_TRACKING_ID",)
# The processes this one started, kept while it runs so that they are reaped, not left as
# zombies (they outlive it by design: a deploy exits, the colours serve on).
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of this process plus ``extra``, without the runner's job marks."""
    env = {**os.environ, **(extra or {})}
    for name in RUNNER_MARKS:
        env.pop(name, None)
    return env


def start(
    command: list[str],
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    stderr_log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` detached: its own session, output appended to ``log``, no job marks."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        if stderr_log is None:
            process = _popen(command, out, subprocess.STDOUT, extra_env)
        else:
            with stderr_log.open("ab") as err:
                process = _popen(command, out, err, extra_env)
    CHILDREN[process.pid] = process
    return process


def _popen(
    command: list[str], out: IO[bytes], err: IO[bytes] | int, extra_env: Mapping[str, str] | None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        env=environment(extra_env),
        start_new_session=True,  # its own process group: stopped as one, outlives the CLI
    )
