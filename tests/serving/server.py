"""A real ``bentoml serve`` process for tests, on a free loopback port, stopped with SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO_ROOT
from traffic_forecast.core.config import DeployConfig

STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def on_free_ports(cfg: DeployConfig, **changes: Any) -> DeployConfig:
    """``cfg`` with the router and both colours on free loopback ports, and ``changes``."""
    ports = {"router_port": free_port(), "blue_port": free_port(), "green_port": free_port()}
    return dataclasses.replace(cfg, **ports, **changes)


def serve_env(model_tag: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        **(extra or {}),
        "TRAFFIC_FORECAST_MODEL": model_tag,
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }


class Server:
    """A ``bentoml serve`` process on a free loopback port."""

    def __init__(
        self, target: str, model_tag: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=serve_env(model_tag, env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait(self, path: str, status: int, timeout: float = STARTUP_SECONDS) -> float:
        """Seconds until ``GET path`` answers ``status``; fails the test after ``timeout``."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(self.url + path, timeout=2).status_code == status:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{path} never answered {status}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        """SIGTERM, then the exit code (SIGKILL after 30 s: a test failure of its own)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        finally:
            self._log_file.close()


@contextmanager
def running(
    target: str, model_tag: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    server = Server(target, model_tag, log, env)
    try:
        yield server
    finally:
        server.stop()


HOOKS = "tests.serving.schemathesis_hooks"
PHASES = "examples,coverage,fuzzing,stateful"  # stateful: not applicable (no links), said so


def schemathesis(url: str, work: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` of the live spec: every check, no exclusion, every phase.

    A request the spec calls valid must be answered (positive_data_acceptance), one it calls
    invalid refused. The three rules the spec can only state in words (a sale ends after it
    starts, a batch names an hour once, an hour is observed once begun) are taught to the
    generator by `HOOKS`; nothing else is filtered.
    """
    return subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", url + "/openapi.json",
         "--checks", "all", "--phases", PHASES, "--workers", "1", "--no-color", *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=work,  # its cache of examples lands here, not in the repository
        env={
            **os.environ,
            "SCHEMATHESIS_TELEMETRY": "false",
            "SCHEMATHESIS_HOOKS": HOOKS,
            "PYTHONPATH": str(REPO_ROOT),  # where HOOKS is
        },
    )  # fmt: skip


def phases_passed(stdout: str) -> set[str]:
    """The phases schemathesis ran and passed, from its summary."""
    return set(re.findall(r"^\s*✅ (Examples|Coverage|Fuzzing|Stateful)\s*$", stdout, re.MULTILINE))
