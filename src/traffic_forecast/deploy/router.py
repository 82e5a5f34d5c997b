"""The router: the tooling's own HAProxy (config, pid file, admin socket, logs), not the system's.

A switch reloads nothing. It sets the colours' weights through HAProxy's runtime API (the admin
socket): every request after it goes by the new weights, requests in flight finish where they
are, and no client connection is closed, keep-alive ones included (an nginx reload closed about
one request per reused connection at each switch). The switch counts only once the router
answers with the new model's version.

The config file is rewritten with the weights at each switch, so that a restart of the router
comes back routing as it was. When it changes in substance (ports, extra directives), it is
checked with ``haproxy -c`` and loaded by a reload of the running router; a config that fails
the check is left beside the live one and changes nothing.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from traffic_forecast.core.config import DeployConfig
from traffic_forecast.core.io import write_text_atomic
from traffic_forecast.deploy import detached, probe
from traffic_forecast.deploy.state import COLOURS, DeployError, port_of
from traffic_forecast.serving.guard import VERSION_HEADER

log = logging.getLogger(__name__)

ACCESS_LOG = "logs/access.log"
ROUTER_LOG = "logs/haproxy.log"
ADMIN_SOCKET = "admin.sock"
ROUTER_LUA = Path(__file__).with_name("router.lua")  # the shadow copies and experiment arms
ROUTING_FILE = "routing.state"  # what router.lua last set, read back when HAProxy (re)loads it
BASIS_POINTS = 10_000
BACKEND = "live"
CONFIRMATIONS = 5  # consecutive fresh connections answering with the new version
MAX_BODY_BYTES = 1 << 20
ADMIN_TIMEOUT_S = 5.0
WEIGHT = re.compile(r"^(\s*server (\w+) \S+) weight (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Arms:
    """An A/B experiment on the router: which colour is which arm, and who the challenger answers.

    ``share`` (split mode): the clients whose ``client_header`` hashes into that share of the
    buckets. Shadow mode: no client; the route's mirror sends it a copy of every request.
    """

    experiment: str
    champion: str
    challenger: str
    mode: str
    share: float
    client_header: str

    def command(self) -> str:
        """The router.lua setting that puts it live."""
        basis = round(self.share * BASIS_POINTS) if self.mode == "split" else 0
        return (
            f"experiment {self.experiment} {self.champion} {self.challenger} {self.mode} "
            f"{basis} {self.client_header}"
        )


@dataclass(frozen=True)
class Route:
    """Where the router sends traffic: a weight (percent) per colour, a shadow, an experiment."""

    weights: dict[str, int] = field(default_factory=dict)
    mirror: str | None = None  # the colour that gets a copy of every request (its answer dropped)
    arms: Arms | None = None  # an experiment's arms: they override the weights per request

    def weight(self, colour: str) -> int:
        """The share of requests ``colour`` gets (0: none)."""
        return self.weights.get(colour, 0)


def render(route: Route, cfg: DeployConfig, prefix: Path) -> str:
    """The whole haproxy.cfg for ``route`` (pure: a test reads it)."""
    servers = "\n".join(
        f"    server {colour} {cfg.host}:{port_of(colour, cfg)} weight {route.weight(colour)}"
        for colour in COLOURS
    )
    extra = "".join(f"    {directive}\n" for directive in cfg.router_directives)
    # An experiment's arm (router.lua) names the colour; a pinned server answers even at weight
    # 0, and one that is down is passed over for the weighted ones.
    pinned = "\n".join(
        f"    use-server {colour} if {{ var(txn.colour) -m str {colour} }}" for colour in COLOURS
    )
    # JSON lines: what the canary step reads (checks.canary_verdict). The version is the
    # response header captured first (`capture response header`).
    log_format = (
        '{"time":%Ts.%ms,"status":%ST,"upstream":"%si:%sp","request_ms":%Ta,'
        '"version":"%[capture.res.hdr(0)]","uri":"%HP"}'
    )
    return f"""# Written by traffic-forecast deploy: do not edit (weights change at every switch).
global
    master-worker
    pidfile {prefix}/haproxy.pid
    stats socket {prefix}/{ADMIN_SOCKET} mode 600 level admin expose-fd listeners
    log stdout format raw local0
    setenv TRAFFIC_FORECAST_ROUTING {prefix}/{ROUTING_FILE}
    lua-load {prefix}/router.lua
    maxconn 4096

defaults
    mode http
    log global
    # A colour that refuses a connection (it died): the retry goes to another weighted one.
    option redispatch
    timeout connect 2s
    timeout http-request 30s
    timeout client 75s
    timeout http-keep-alive 75s
    timeout server 60s

frontend traffic_forecast
    bind {cfg.host}:{cfg.router_port}
    option http-buffer-request
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {MAX_BODY_BYTES} }}
    http-request lua.experiment
    http-request lua.shadow
    capture response header {VERSION_HEADER} len 128
    http-response set-header X-Colour %[srv_name]
    http-response lua.experiment_answer
    log-format '{log_format}'
{extra}    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
{pinned}
{servers}
"""


def routing(route: Route, cfg: DeployConfig) -> list[str]:
    """The router.lua settings of ``route`` (the admin socket's commands, and its file)."""
    mirror = "off" if route.mirror is None else f"{cfg.host}:{port_of(route.mirror, cfg)}"
    arms = "experiment off" if route.arms is None else route.arms.command()
    return [arms, f"shadow {mirror}"]


def commands(route: Route, cfg: DeployConfig) -> list[str]:
    """The runtime-API commands that put ``route`` live (no reload)."""
    # The colour gaining weight first: between two commands, some colour always takes requests.
    gaining = sorted(COLOURS, key=route.weight, reverse=True)
    weights = [f"set server {BACKEND}/{c} weight {route.weight(c)}" for c in gaining]
    return [*weights, *routing(route, cfg)]


def _without_weights(config: str) -> str:
    return WEIGHT.sub(r"\1 weight _", config)


class Router:
    """The HAProxy in ``<state_dir>/router``."""

    def __init__(self, cfg: DeployConfig, state_dir: Path) -> None:
        self.cfg = cfg
        self.prefix = (state_dir / "router").resolve()
        self.conf = self.prefix / "haproxy.cfg"
        self.url = f"http://{cfg.host}:{cfg.router_port}"
        self._before: Route | None = None  # the route live before this object first changed it

    # -- the process ---------------------------------------------------------------------------

    def _master(self) -> int | None:
        """The pid of this router's HAProxy master while it runs."""
        try:
            pid = int((self.prefix / "haproxy.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if pid in detached.CHILDREN:  # started by this process: reaped here once it exits
            return pid if detached.CHILDREN[pid].poll() is None else None
        try:  # a pid the kernel has given to another process since is not ours
            return pid if b"haproxy" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
        except OSError:
            return None

    def running(self) -> bool:
        """True when this router's HAProxy master runs."""
        return self._master() is not None

    def _check(self, text: str) -> None:
        """``haproxy -c`` on ``text``, then put it in place (with the Lua file it loads)."""
        (self.prefix / "router.lua").write_bytes(ROUTER_LUA.read_bytes())
        candidate = self.prefix / "haproxy.cfg.candidate"
        candidate.write_text(text, encoding="utf-8")
        try:
            checked = subprocess.run(
                [self.cfg.haproxy, "-c", "-q", "-f", str(candidate)],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise DeployError(
                f"{self.cfg.haproxy} not found: install HAProxy (Debian package haproxy; "
                "`make system-deps` does on a development machine)"
            ) from None
        if checked.returncode != 0:
            candidate.replace(self.prefix / "haproxy.cfg.rejected")
            output = (checked.stderr or checked.stdout).strip()
            raise DeployError(f"haproxy -c refused the new router config:\n{output}")
        candidate.replace(self.conf)

    def _start(self) -> None:
        process = detached.start(
            [self.cfg.haproxy, "-f", str(self.conf)],
            self.prefix / ACCESS_LOG,
            stderr_log=self.prefix / ROUTER_LOG,
        )
        deadline = time.perf_counter() + self.cfg.confirm_timeout_s
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise DeployError(f"haproxy exited at start:\n{self._tail()}")
            with contextlib.suppress(DeployError):
                self.admin("show info")
                return
            time.sleep(0.05)
        raise DeployError(f"haproxy's admin socket did not answer:\n{self._tail()}")

    def _reload(self) -> None:
        """Load the config file into the running router (HAProxy's seamless reload)."""
        before = self.admin("show info")
        master = self._master()
        if master is None:
            raise DeployError("the router stopped while its config changed")
        os.kill(master, signal.SIGUSR2)
        deadline = time.perf_counter() + self.cfg.confirm_timeout_s
        while time.perf_counter() < deadline:  # the new worker answers with a new pid
            with contextlib.suppress(DeployError):
                if info_field(self.admin("show info"), "Pid") != info_field(before, "Pid"):
                    return
            time.sleep(0.05)
        raise DeployError(f"haproxy did not reload:\n{self._tail()}")

    def _tail(self, lines: int = 10) -> str:
        path = self.prefix / ROUTER_LOG
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- the runtime API -----------------------------------------------------------------------

    def admin(self, *lines: str) -> str:
        """Send commands to the admin socket (one line, ``;``-separated); what it answered."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(ADMIN_TIMEOUT_S)
            try:
                sock.connect(str(self.prefix / ADMIN_SOCKET))
                sock.sendall(("; ".join(lines) + "\n").encode())
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except OSError as exc:
                raise DeployError(f"the router's admin socket: {exc}") from None
        return b"".join(chunks).decode()

    def current(self) -> Route:
        """The weights the running router routes by."""
        said = self.admin(*(f"get weight {BACKEND}/{c}" for c in COLOURS))
        answers = [line for line in said.splitlines() if line.strip()]  # "100 (initial 0)"
        weights = {c: int(a.split()[0]) for c, a in zip(COLOURS, answers, strict=True)}
        return Route({c: w for c, w in weights.items() if w > 0})

    def sessions(self, colour: str) -> int:
        """Requests the router has in flight with ``colour``."""
        rows = csv.reader(self.admin("show stat").lstrip("# ").splitlines())
        header = next(rows)
        for row in rows:
            entry = dict(zip(header, row, strict=False))
            if (entry.get("pxname"), entry.get("svname")) == (BACKEND, colour):
                return int(entry["scur"] or 0)
        return 0

    # -- what the rollout calls ----------------------------------------------------------------

    def apply(self, route: Route) -> None:
        """Route by ``route``: at run time when the router runs, else start it with it.

        A config that fails ``haproxy -c`` is left beside the live one
        (``haproxy.cfg.rejected``), and the live config and traffic stay as they were.
        """
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        text = render(route, self.cfg, self.prefix)
        # First: a router that (re)loads from here on reads it (router.lua), as it is told below.
        write_text_atomic(self.prefix / ROUTING_FILE, "\n".join(routing(route, self.cfg)) + "\n")
        if not self.running():
            self._check(text)
            self._start()
        else:
            if self._before is None:
                self._before = self.current()
            live = self.conf.read_text(encoding="utf-8") if self.conf.is_file() else ""
            if _without_weights(live) != _without_weights(text):
                self._check(text)
                self._reload()
            else:  # the weights alone: kept for a restart, switched at run time below
                write_text_atomic(self.conf, text)
        answer = self.admin(*commands(route, self.cfg))
        if "No such" in answer or "Unknown command" in answer or "error" in answer.lower():
            raise DeployError(f"the router refused the switch: {answer.strip()}")

    def restore(self) -> bool:
        """Put back the route that was live before this router changed it; False if none did."""
        if self._before is None:
            return False
        self.apply(self._before)
        return True

    def confirm(self, version: str) -> float:
        """Seconds until ``CONFIRMATIONS`` fresh connections in a row answer with ``version``."""
        started, streak, seen = time.perf_counter(), 0, "nothing"
        while time.perf_counter() - started < self.cfg.confirm_timeout_s:
            try:
                answer = probe.get(self.url + "/livez")  # the cheapest answer, stamped too
                seen = answer.headers.get(VERSION_HEADER, f"HTTP {answer.status_code}")
            except httpx.TransportError as exc:
                seen = f"{type(exc).__name__}"
            streak = streak + 1 if seen == version else 0
            if streak >= CONFIRMATIONS:
                return time.perf_counter() - started
            time.sleep(0.01)
        raise DeployError(
            f"the router did not switch to {version} within {self.cfg.confirm_timeout_s:g} s "
            f"(it answers {seen})"
        )

    def wait_drained(self, colour: str) -> None:
        """Until the router has no request in flight with ``colour`` (or the stop timeout).

        A colour the router no longer sends to may still be answering requests sent before
        the switch: it must not stop before they are done.
        """
        deadline = time.perf_counter() + self.cfg.stop_timeout_s
        while self.running() and time.perf_counter() < deadline:
            if self.sessions(colour) == 0:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop HAProxy gracefully (soft stop: requests in flight finish), then hard."""
        master = self._master()
        if master is None:
            return
        os.kill(master, signal.SIGUSR1)
        deadline = time.perf_counter() + self.cfg.stop_timeout_s
        while self.running() and time.perf_counter() < deadline:
            time.sleep(0.05)
        if self.running():
            log.warning("haproxy still running after %g s: SIGTERM", self.cfg.stop_timeout_s)
            os.kill(master, signal.SIGTERM)

    def access_log(self) -> Path:
        """The access log of this router: one JSON object a line (and the shadow's copies)."""
        return self.prefix / ACCESS_LOG


def info_field(info: str, name: str) -> str:
    """A field of ``show info``'s answer."""
    for line in info.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return value
    return ""
