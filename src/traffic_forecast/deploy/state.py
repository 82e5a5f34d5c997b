"""The deploy state: where the router listens, which colour is live, what each slot runs, history.

One JSON file in the state directory, written atomically; a lock file beside it keeps two
deploys (or a deploy and a rollback) from interleaving on the same machine. What was deployed
where is read from here, not from the config: ``status``, ``verify``, ``rollback`` and
``undeploy`` talk to the router and slots that really run, whatever ports the config now names.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traffic_forecast.core.config import Config, DeployConfig
from traffic_forecast.core.errors import TrafficForecastError
from traffic_forecast.core.io import write_json_atomic

COLOURS = ("blue", "green")
STATE_FILE = "state.json"
LOCK_FILE = "deploy.lock"
LOCK_POLL_S = 0.1
HISTORY_KEPT = 50
STATE_DIR_ENV = "TRAFFIC_FORECAST_DEPLOY_DIR"  # a deploy host keeps its state outside checkouts
# What Prometheus scrapes (file_sd_configs, re-read when they change): written with every state.
SCRAPE_DIR = "scrape"
SLOT_TARGETS = "slots.json"
ROUTER_TARGETS = "router.json"


class DeployError(TrafficForecastError):
    """A deploy step failed; the live colour still serves."""


def port_of(colour: str, cfg: DeployConfig) -> int:
    """The port a colour listens on."""
    return cfg.blue_port if colour == "blue" else cfg.green_port


def other(colour: str) -> str:
    """The colour that is not ``colour``."""
    return COLOURS[1 - COLOURS.index(colour)]


@dataclass
class Slot:
    """One colour's `bentoml serve`: the Bento it runs, its model, port and process."""

    bento: str
    model: str
    port: int
    pid: int
    started_at: float
    python: str = ""  # the interpreter it runs on: on a production host, its release's own


@dataclass
class RouterAddress:
    """Where the router listens."""

    host: str
    port: int


@dataclass
class State:
    """Everything the tooling knows between runs."""

    live: str | None = None
    slots: dict[str, Slot] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    router: RouterAddress | None = None  # recorded when the router starts, cleared at undeploy
    # The A/B experiment of the live colour and the idle one (`traffic_forecast.experiment`),
    # kept after it ends for its analysis; a new experiment replaces it.
    experiment: dict[str, Any] | None = None

    def experimenting(self) -> str | None:
        """The id of the experiment running on this deployment, or None."""
        running = self.experiment is not None and self.experiment.get("status") == "running"
        return str(self.experiment["id"]) if running and self.experiment else None

    def deployed(self, cfg: DeployConfig, *, for_deploy: bool = False) -> DeployConfig:
        """``cfg`` with the router address this deployment really uses.

        For a new deploy, a router recorded on another address is an error: clients call the
        one that runs, and moving it would drop them.
        """
        if self.router is None:
            return cfg
        if for_deploy and (cfg.host, cfg.router_port) != (self.router.host, self.router.port):
            raise DeployError(
                f"the router of this deployment listens on {self.router.host}:"
                f"{self.router.port} (state.json), not on deploy.host/router_port "
                f"{cfg.host}:{cfg.router_port}: `make undeploy` first to move it"
            )
        return dataclasses.replace(cfg, host=self.router.host, router_port=self.router.port)

    def record(self, **event: Any) -> None:
        """Append an event (deploy, rollback, retire …) to the history."""
        self.history = [*self.history, {"at": round(time.time(), 3), **event}][-HISTORY_KEPT:]

    def slot_targets(self, host: str) -> list[dict[str, Any]]:
        """Each slot as a Prometheus target, labelled by colour, model version and A/B arm."""
        arms: dict[str, str] = {}
        if self.experimenting() and self.experiment is not None:
            for arm in ("champion", "challenger"):
                arms[str(self.experiment[arm]["colour"])] = arm
        return [
            {
                "targets": [f"{host}:{slot.port}"],
                "labels": {"colour": colour, "model_version": slot.model}
                | ({"arm": arms[colour]} if colour in arms else {}),
            }
            for colour, slot in sorted(self.slots.items())
        ]

    def router_targets(self) -> list[dict[str, Any]]:
        """The router as a Prometheus target (what clients reach), when it runs."""
        if self.router is None:
            return []
        return [{"targets": [f"{self.router.host}:{self.router.port}"], "labels": {}}]

    def last_live(self, before: str) -> dict[str, Any] | None:
        """The deploy that was live before ``before`` took over (for rollback by redeploy)."""
        switches = [
            e for e in self.history if e.get("action") in {"deploy", "rollback"} and e.get("ok")
        ]
        for event in reversed(switches):
            if event.get("bento") != before and event.get("bento"):
                return dict(event)
        return None


def state_dir_of(configured: str) -> Path:
    """The state directory: ``$TRAFFIC_FORECAST_DEPLOY_DIR``, else ``deploy.state_dir``."""
    return Path(os.environ.get(STATE_DIR_ENV) or configured)


def observations_url(cfg: Config) -> str:
    """The store of observed hours every colour reads: ``observations.url``, else SQLite here."""
    from traffic_forecast.data.store import default_url  # noqa: PLC0415 (pandas: seconds)

    return cfg.observations.url or default_url(state_dir_of(cfg.deploy.state_dir))


def load(state_dir: Path) -> State:
    """The state in ``state_dir`` (a fresh one when there is none yet)."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return State()
    raw = json.loads(path.read_text(encoding="utf-8"))
    slots = {colour: Slot(**slot) for colour, slot in raw.get("slots", {}).items()}
    router = raw.get("router")
    return State(
        raw.get("live"),
        slots,
        list(raw.get("history", [])),
        None if router is None else RouterAddress(**router),
        raw.get("experiment"),
    )


def save(state_dir: Path, state: State) -> None:
    """Write the state atomically (a crash leaves the previous file whole), and its targets."""
    write_json_atomic(state_dir / STATE_FILE, asdict(state))
    # The slots' host: the router's (slots listen beside it), else loopback.
    host = state.router.host if state.router is not None else "127.0.0.1"
    (state_dir / SCRAPE_DIR).mkdir(exist_ok=True)
    write_json_atomic(state_dir / SCRAPE_DIR / SLOT_TARGETS, state.slot_targets(host))
    write_json_atomic(state_dir / SCRAPE_DIR / ROUTER_TARGETS, state.router_targets())


@contextmanager
def locked(
    state_dir: Path,
    action: str,
    *,
    wait_s: float = math.inf,
    behind: Collection[str] | None = None,
) -> Iterator[None]:
    """Hold the deploy lock of ``state_dir`` for ``action``, its holder written in the lock file.

    Waits up to ``wait_s`` for a holder. With ``behind``, waits only for holders doing one of
    those actions (a ``retire`` stopping the old colour: seconds) and fails at once, naming
    it, behind any other (a deploy: after it, "the previous colour" means another one).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    deadline = time.monotonic() + wait_s
    with path.open("a+") as handle:  # not "w": that would wipe the holder's line
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # Empty for the instant between a holder's lock and its line: ask again.
                holder = path.read_text(encoding="utf-8").strip()
                if holder and behind is not None and holder.split(" ", 1)[0] not in behind:
                    raise DeployError(
                        f"{holder} holds {path}: let it finish, then run {action} again"
                    ) from None
                if time.monotonic() >= deadline:
                    raise DeployError(
                        f"{holder or 'another deploy'} still holds {path} after {wait_s:g} s"
                    ) from None
                time.sleep(LOCK_POLL_S)
        handle.truncate(0)
        handle.write(f"{action} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})\n")
        handle.flush()
        try:
            yield
        finally:  # the line stays: it is read only while the lock is held, and rewritten
            fcntl.flock(handle, fcntl.LOCK_UN)
