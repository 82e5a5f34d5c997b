"""The router: the tooling's own nginx (own prefix, config and pid file), never the system's.

A switch writes the new config beside the live one, has ``nginx -t`` check it, renames it into
place and reloads: nginx's old workers finish their requests while new ones take the new
upstream, so no request is dropped. The switch counts only once the router answers with the
new model's version.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from traffic_forecast.core.config import DeployConfig
from traffic_forecast.deploy.state import DeployError
from traffic_forecast.serving.guard import VERSION_HEADER

log = logging.getLogger(__name__)

TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
ACCESS_LOG = "logs/access.log"
CONFIRMATIONS = 5  # consecutive fresh connections answering with the new version


@dataclass(frozen=True)
class Route:
    """Where the router sends traffic: ports with weights, and optionally a mirror."""

    weights: dict[int, int]  # port: weight (percent)
    live_colour: str
    mirror_port: int | None = None


def render(route: Route, cfg: DeployConfig, prefix: Path) -> str:
    """The whole nginx.conf for ``route`` (pure: a test reads it)."""
    servers = "\n".join(
        f"        server {cfg.host}:{port} weight={weight} max_fails=0;"
        for port, weight in route.weights.items()
        if weight > 0
    )
    mirror = ""
    shadow = ""
    if route.mirror_port is not None:
        mirror = "            mirror /__shadow;\n            mirror_request_body on;\n"
        shadow = f"""
        location = /__shadow {{
            internal;
            proxy_pass http://{cfg.host}:{route.mirror_port}$request_uri;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
        }}"""
    extra = "".join(f"        {directive}\n" for directive in cfg.nginx_directives)
    temp = "\n".join(f"    {name}_temp_path {prefix}/temp/{name};" for name in TEMP_DIRS)
    return f"""# Written by traffic-forecast deploy: do not edit (it is rewritten on every switch).
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    log_format traffic escape=json '{{"time":$msec,"status":$status,'
        '"upstream":"$upstream_addr","request_time":$request_time,'
        '"version":"$upstream_http_{VERSION_HEADER.replace("-", "_")}","uri":"$uri"}}';
    access_log {prefix}/{ACCESS_LOG} traffic;
{temp}
    client_max_body_size 1m;
    client_body_buffer_size 128k;
    proxy_buffers 16 16k;
    upstream traffic_forecast {{
{servers}
        keepalive 16;
    }}
    server {{
        listen {cfg.host}:{cfg.router_port};
        add_header X-Live-Colour {route.live_colour} always;
{extra}        location / {{
            proxy_pass http://traffic_forecast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
{mirror}        }}{shadow}
    }}
}}
"""


class Router:
    """The nginx in ``<state_dir>/nginx``."""

    def __init__(self, cfg: DeployConfig, state_dir: Path) -> None:
        self.cfg = cfg
        self.prefix = (state_dir / "nginx").resolve()
        self.conf = self.prefix / "nginx.conf"
        self.url = f"http://{cfg.host}:{cfg.router_port}"
        self._before: str | None = None  # the config live before this object first changed it
        self._old_workers: set[int] = set()  # workers of the config the last reload replaced

    def _nginx(self, *args: str, conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = [
            self.cfg.nginx,
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "logs/error.log"),
        ]
        command += ["-c", str(conf or self.conf), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise DeployError(
                f"{self.cfg.nginx} not found: install nginx (`make system-deps`, Debian "
                "nginx-light)"
            ) from None

    def running(self) -> bool:
        """True when this router's nginx master runs."""
        try:  # nginx removes its pid file as it exits: it may go between any two steps
            os.kill(int((self.prefix / "nginx.pid").read_text().strip()), 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        return True

    def apply(self, route: Route) -> None:
        """Check the config for ``route`` with ``nginx -t``, put it in place, (re)load nginx.

        A config that fails the check is left beside the live one (``nginx.conf.rejected``),
        and the live config and traffic stay as they were.
        """
        for name in ("logs", *(f"temp/{d}" for d in TEMP_DIRS)):
            (self.prefix / name).mkdir(parents=True, exist_ok=True)
            (self.prefix / name).chmod(0o777)  # nginx's workers drop to an unprivileged user
        self._install(render(route, self.cfg, self.prefix))

    def restore(self) -> bool:
        """Put back the config that was live before this router changed it; False if none did."""
        if self._before is None:
            return False
        self._install(self._before)
        return True

    def _install(self, text: str) -> None:
        candidate = self.prefix / "nginx.conf.candidate"
        candidate.write_text(text, encoding="utf-8")
        checked = self._nginx("-t", conf=candidate)
        if checked.returncode != 0:
            candidate.replace(self.prefix / "nginx.conf.rejected")
            raise DeployError(f"nginx -t refused the new router config:\n{checked.stderr.strip()}")
        if self._before is None and self.conf.is_file():
            self._before = self.conf.read_text(encoding="utf-8")
        candidate.replace(self.conf)
        self._old_workers = self.workers()
        done = self._nginx("-s", "reload") if self.running() else self._nginx()
        if done.returncode != 0:
            raise DeployError(f"nginx failed to (re)load: {done.stderr.strip()}")

    def confirm(self, version: str) -> float:
        """Seconds until ``CONFIRMATIONS`` fresh connections in a row answer with ``version``."""
        started, streak, seen = time.perf_counter(), 0, "nothing"
        while time.perf_counter() - started < self.cfg.confirm_timeout_s:
            try:
                # A new connection each time: it goes to a worker with the new config.
                answer = httpx.get(
                    self.url + "/metadata", timeout=5, headers={"Connection": "close"}
                )
                seen = answer.headers.get(VERSION_HEADER, f"HTTP {answer.status_code}")
            except httpx.TransportError as exc:
                seen = f"{type(exc).__name__}"
            streak = streak + 1 if seen == version else 0
            if streak >= CONFIRMATIONS:
                return time.perf_counter() - started
            time.sleep(0.05)
        raise DeployError(
            f"the router did not switch to {version} within {self.cfg.confirm_timeout_s:g} s "
            f"(it answers {seen})"
        )

    def workers(self) -> set[int]:
        """The pids of this nginx's worker processes (Linux: /proc), old and new."""
        try:
            master = (self.prefix / "nginx.pid").read_text().strip()
        except FileNotFoundError:  # not running, or exiting right now
            return set()
        found = set()
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue  # the process ended while we looked
            if f"\nPPid:\t{master}\n" in text:
                found.add(int(status.parent.name))
        return found

    def wait_drained(self) -> None:
        """Until the workers of the config before the last reload have all exited.

        After a reload nginx's old workers finish the requests they hold, and may still send
        them to the colour being left: it must not stop before they are gone.
        """
        deadline = time.perf_counter() + self.cfg.stop_timeout_s
        while self._old_workers & self.workers() and time.perf_counter() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop nginx gracefully (``-s quit``: requests in flight finish)."""
        if self.running():
            self._nginx("-s", "quit")
            deadline = time.perf_counter() + self.cfg.stop_timeout_s
            while self.running() and time.perf_counter() < deadline:
                time.sleep(0.1)

    def access_log(self) -> Path:
        """The access log of this nginx: one JSON object a line."""
        return self.prefix / ACCESS_LOG
