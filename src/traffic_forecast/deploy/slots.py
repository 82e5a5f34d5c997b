"""The two slots: start a colour's ``bentoml serve``, wait until it is ready, stop it gracefully."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx

from traffic_forecast.core.config import DeployConfig
from traffic_forecast.deploy import detached, probe
from traffic_forecast.deploy.state import DeployError, Slot, port_of

log = logging.getLogger(__name__)

POLL_S = 0.25
SHARED_STORE = ("bentos", "models")  # what a colour's BentoML home links to in the real store


def url(cfg: DeployConfig, port: int) -> str:
    """The base URL of a local port."""
    return f"http://{cfg.host}:{port}"


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (a finished child of this process is reaped here)."""
    if pid in detached.CHILDREN:
        return detached.CHILDREN[pid].poll() is None
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):  # a child of ours that finished: reaped
            return False
    except ChildProcessError:
        pass  # not our child (an earlier deploy started it): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_path(state_dir: Path, colour: str) -> Path:
    """Where a colour's server writes its log (the previous start's is kept as ``.log.1``)."""
    return state_dir / "logs" / f"{colour}.log"


def fresh_log(path: Path) -> Path:
    """Start ``path`` empty, keeping the last one beside it: an error quotes this start only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        path.replace(path.with_name(path.name + ".1"))
    return path


def prediction_log_path(state_dir: Path, colour: str) -> Path:
    """Where a colour's service logs the forecasts it serves (one file per worker beside it).

    Absolute: ``bentoml serve`` of a Bento runs in the Bento's own directory.
    """
    return (state_dir / "logs" / f"predictions-{colour}.jsonl").absolute()


def store_home() -> Path:
    """The BentoML home of this process, as BentoML reads it: ``$BENTOML_HOME``, else ~/bentoml."""
    home = os.environ.get("BENTOML_HOME", "~/bentoml")
    return Path(os.path.expandvars(home)).expanduser().absolute()


def slot_home(state_dir: Path, colour: str) -> Path:
    """The BentoML home ``colour`` serves with: its own metrics files, the real store's Bentos.

    BentoML 1.4 keeps the Prometheus files of a server's workers in
    ``$BENTOML_HOME/prometheus_multiproc_dir`` and empties that directory whenever a server
    starts (``bentoml.serving.ensure_prometheus_dir``); no setting or variable moves it apart
    from the home. With one home, starting the new colour wiped the live colour's metrics.
    So each colour runs with a home of its own in the state directory, whose ``bentos`` and
    ``models`` link to the real store: the colour serves the Bento and model the deploy found
    there. (Links, not copies: a Bento and its model are large, and the store stays the one
    place `make bento` and the release write to.)
    """
    home = (state_dir / "slots" / colour / "bentoml").absolute()
    home.mkdir(parents=True, exist_ok=True)
    store = store_home()
    for name in SHARED_STORE:
        link, target = home / name, store / name
        target.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            if link.readlink() == target:
                continue  # an earlier deploy's link, to this store
            link.unlink()  # to the store of an earlier BENTOML_HOME
        elif link.exists():
            raise DeployError(
                f"{link} is not a link to the BentoML store ({target}): remove it and deploy again"
            )
        link.symlink_to(target, target_is_directory=True)
    return home


def server_env(colour: str, model: str, state_dir: Path, store_url: str) -> dict[str, str]:
    """What ``colour``'s ``bentoml serve`` adds to the environment, serving ``model``."""
    from traffic_forecast.serving import predictions  # noqa: PLC0415 (see start)
    from traffic_forecast.serving.live import STORE_ENV  # noqa: PLC0415

    return {
        "BENTOML_DO_NOT_TRACK": "True",
        "BENTOML_HOME": str(slot_home(state_dir, colour)),
        "TRAFFIC_FORECAST_MODEL": model,
        # The monitor's default glob (monitor.prediction_logs) reads these.
        predictions.ENV: str(prediction_log_path(state_dir, colour)),
        STORE_ENV: store_url,
    }


def start(
    colour: str,
    bento: str,
    cfg: DeployConfig,
    state_dir: Path,
    store_url: str,
    *,
    python: str = sys.executable,
) -> Slot:
    """Start ``bentoml serve <bento>`` for ``colour``, detached, reading the store at ``store_url``.

    Both colours read the same store of observed hours, so a new colour starts current.
    ``python``: the environment it runs in (a production host's release environment).
    """
    # Imported here, not at the top: the serving side (BentoML, sktime) costs seconds to import,
    # and `rollback` and `status` use this module without starting anything.
    from traffic_forecast.serving.bento import model_of  # noqa: PLC0415

    port = port_of(colour, cfg)
    if not port_free(cfg.host, port):
        raise DeployError(f"port {port} for {colour} is taken by another process")
    model = model_of(bento)  # also fails early on a Bento that is not in the store
    process = detached.start(
        [python, "-m", "bentoml", "serve", bento, "--host", cfg.host, "--port", str(port)],
        fresh_log(log_path(state_dir, colour)),
        server_env(colour, model, state_dir, store_url),
    )
    log.info(
        "%s: started %s (model %s) on port %d, pid %d", colour, bento, model, port, process.pid
    )
    return Slot(bento, model, port, process.pid, time.time(), python)


def _tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def wait_ready(colour: str, slot: Slot, cfg: DeployConfig, state_dir: Path) -> float:
    """Seconds until the slot's ``/readyz`` answers 200; a `DeployError` after the timeout."""
    started = time.perf_counter()
    address = url(cfg, slot.port) + "/readyz"
    while time.perf_counter() - started < cfg.ready_timeout_s:
        if not alive(slot.pid):
            raise DeployError(
                f"{colour} ({slot.bento}) exited before it was ready:\n"
                + _tail(log_path(state_dir, colour))
            )
        try:
            if probe.get(address, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    raise DeployError(
        f"{colour} ({slot.bento}) was not ready after {cfg.ready_timeout_s:g} s "
        f"(/readyz never answered 200):\n" + _tail(log_path(state_dir, colour))
    )


def healthy(slot: Slot, cfg: DeployConfig) -> bool:
    """True when the slot's process runs and ``/readyz`` answers 200."""
    if not alive(slot.pid):
        return False
    try:
        return probe.get(url(cfg, slot.port) + "/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux: /proc).

    BentoML's workers run in sessions of their own: the server's process group misses them.
    """
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = next(
                int(line.split()[1])
                for line in status.read_text().splitlines()
                if line.startswith("PPid:")
            )
        except (OSError, StopIteration, ValueError):
            continue
        children.setdefault(parent, []).append(int(status.parent.name))
    found, pending = [], [pid]
    while pending:
        below = children.get(pending.pop(), [])
        found += below
        pending += below
    return found


def recorded(pid_file: Path, word: str) -> int | None:
    """The pid ``pid_file`` names, if that process still runs with ``word`` in its command.

    A pid the kernel has given to another process since is not ours: only a command line
    holding ``word`` as an argument (``retire``, ``guard``), or as its program's name
    (``prometheus``), is.
    """
    if not pid_file.is_file():
        return None
    pid = int(pid_file.read_text(encoding="utf-8"))
    if pid in detached.CHILDREN:  # started by this process: its command line may still be empty
        return pid if alive(pid) else None
    cmdline = Path(f"/proc/{pid}/cmdline")
    args = cmdline.read_bytes().split(b"\0") if alive(pid) and cmdline.is_file() else []
    ours = args and (word.encode() in args[1:] or Path(args[0].decode()).name == word)
    return pid if ours else None


def stop_recorded(pid_file: Path, word: str) -> None:
    """SIGTERM the process ``pid_file`` names if it is still ours (`recorded`); remove the file."""
    pid = recorded(pid_file, word)
    pid_file.unlink(missing_ok=True)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if pid in detached.CHILDREN:
            detached.CHILDREN.pop(pid).wait(timeout=10)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill(slot: Slot) -> None:
    """SIGKILL the slot's server and every process below it, at once (requests in flight fail)."""
    _kill_all([slot.pid, *descendants(slot.pid)])


def stop(slot: Slot, cfg: DeployConfig) -> None:
    """SIGTERM the slot's server (its workers finish their requests), SIGKILL after the timeout."""
    if not alive(slot.pid):
        return
    tree = descendants(slot.pid)
    try:
        os.kill(slot.pid, signal.SIGTERM)  # BentoML's arbiter stops its workers gracefully
    except ProcessLookupError:
        return
    deadline = time.perf_counter() + cfg.stop_timeout_s
    while time.perf_counter() < deadline:
        if not alive(slot.pid) and not any(alive(pid) for pid in tree):
            return
        time.sleep(POLL_S)
    log.warning("pid %d still running after %g s: SIGKILL", slot.pid, cfg.stop_timeout_s)
    _kill_all([slot.pid, *tree])
