"""``traffic-forecast prometheus start|stop|status`` (`make observe`): a local Prometheus.

Debian's ``prometheus`` binary, started by the project like the router: its config, data and log
in ``<state_dir>/prometheus``, listening on loopback only. It scrapes the targets the deploy state
names (``<state_dir>/scrape/*.json``, rewritten with every state change, so a deploy, a rollback
or an experiment is followed without a reload): each slot, labelled by colour, model version and
A/B arm, and the router. It evaluates ``deploy/prometheus/rules.yml``; its alerts are at
``/alerts`` and ``/api/v1/alerts`` (no Alertmanager: wire one with ``alerting:`` in production).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from traffic_forecast.core.config import Config, PrometheusConfig
from traffic_forecast.core.io import write_text_atomic
from traffic_forecast.core.proc import run_checked
from traffic_forecast.deploy import detached, slots
from traffic_forecast.deploy.state import (
    ROUTER_TARGETS,
    SCRAPE_DIR,
    SLOT_TARGETS,
    DeployError,
    load,
    locked,
    save,
    state_dir_of,
)

FOLDER = "prometheus"
PID_FILE = "prometheus.pid"
LOG_FILE = "prometheus.log"
SLOTS_JOB = "traffic-forecast"  # each slot: the job the rules and the dashboard read
ROUTER_JOB = "traffic-forecast-router"


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def render(cfg: PrometheusConfig, state_dir: Path, rules: Path) -> str:
    """The Prometheus config: the deployment's targets (file_sd) and the rules."""
    scrape = state_dir.absolute() / SCRAPE_DIR

    def job(name: str, targets: str) -> dict[str, object]:
        files = {"files": [str(scrape / targets)], "refresh_interval": "5s"}
        return {"job_name": name, "file_sd_configs": [files]}

    config = {
        "global": {
            "scrape_interval": _duration(cfg.scrape_interval_s),
            "scrape_timeout": _duration(min(cfg.scrape_interval_s, 10.0)),
            "evaluation_interval": _duration(cfg.evaluation_interval_s),
        },
        "rule_files": [str(rules.absolute())],
        "scrape_configs": [job(SLOTS_JOB, SLOT_TARGETS), job(ROUTER_JOB, ROUTER_TARGETS)],
    }
    header = "# Written by `traffic-forecast prometheus start` (conf/prometheus): do not edit.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def url(cfg: PrometheusConfig) -> str:
    """Where the local Prometheus answers."""
    return f"http://{cfg.host}:{cfg.port}"


def _pid(cfg: PrometheusConfig, folder: Path) -> int | None:
    return slots.recorded(folder / PID_FILE, Path(cfg.binary).name)


def start(cfg: Config) -> str:
    """Start the local Prometheus (or reload the running one); its URL once it is ready."""
    state_dir = state_dir_of(cfg.deploy.state_dir)
    folder = state_dir / FOLDER
    rules = Path(cfg.prometheus.rules)
    if not rules.is_file():
        raise DeployError(f"prometheus.rules={rules}: no such rules file")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    with locked(state_dir, "prometheus start"):
        save(state_dir, load(state_dir))  # the targets of the deployment as it is now
    written = [state_dir / SCRAPE_DIR / name for name in (SLOT_TARGETS, ROUTER_TARGETS)]
    expected = sum(len(json.loads(path.read_text(encoding="utf-8"))) for path in written)
    _write_checked(folder / "prometheus.yml", render(cfg.prometheus, state_dir, rules))
    pid = _pid(cfg.prometheus, folder)
    if pid is None:
        _launch(cfg.prometheus, folder)
    else:
        try:
            httpx.get(url(cfg.prometheus) + "/-/ready", timeout=2)
        except httpx.TransportError:
            raise DeployError(
                f"a local prometheus (pid {pid}) runs, but not on {url(cfg.prometheus)}: "
                "`make observe-stop` first to move it"
            ) from None
        os.kill(pid, signal.SIGHUP)  # Prometheus re-reads its config and rules
    _wait_ready(cfg.prometheus, folder, expected)
    return url(cfg.prometheus)


def _write_checked(path: Path, text: str) -> None:
    """Write the config where Prometheus reads it, once `promtool check config` (rules too) passed.

    A config or rule it refuses never replaces the one in use: a running Prometheus would log
    the refusal on reload and carry on with the old one, unnoticed.
    """
    candidate = path.with_name(path.name + ".new")
    write_text_atomic(candidate, text)
    run_checked("promtool", "check", "config", str(candidate), error=DeployError)
    candidate.replace(path)


def _launch(cfg: PrometheusConfig, folder: Path) -> None:
    if not slots.port_free(cfg.host, cfg.port):
        raise DeployError(f"{cfg.host}:{cfg.port} is taken: set prometheus.port to a free port")
    process = detached.start(
        [
            cfg.binary,
            f"--config.file={folder.absolute() / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder.absolute() / 'data'}",
            f"--storage.tsdb.retention.time={cfg.retention}",
            f"--web.listen-address={cfg.host}:{cfg.port}",
        ],
        folder / LOG_FILE,
    )
    (folder / PID_FILE).write_text(str(process.pid), encoding="utf-8")


def _wait_ready(cfg: PrometheusConfig, folder: Path, targets: int) -> None:
    """Until Prometheus answers ready and has discovered the deployment's ``targets``."""
    deadline = time.monotonic() + cfg.ready_timeout_s
    while time.monotonic() < deadline:
        if _pid(cfg, folder) is None:
            break
        try:
            ready = httpx.get(url(cfg) + "/-/ready", timeout=2).status_code == httpx.codes.OK
            if ready and len(_targets(cfg)) == targets:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    log = (folder / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
    raise DeployError("prometheus did not become ready:\n" + "\n".join(log))


def _targets(cfg: PrometheusConfig) -> list[dict[str, Any]]:
    answer = httpx.get(url(cfg) + "/api/v1/targets", params={"state": "active"}, timeout=5)
    found: list[dict[str, Any]] = answer.json()["data"]["activeTargets"]
    return found


def stop(cfg: Config) -> bool:
    """Stop the local Prometheus; False when none ran."""
    folder = state_dir_of(cfg.deploy.state_dir) / FOLDER
    if _pid(cfg.prometheus, folder) is None:
        return False
    slots.stop_recorded(folder / PID_FILE, Path(cfg.prometheus.binary).name)
    return True


def status(cfg: Config) -> dict[str, object]:
    """What the local Prometheus scrapes and which alerts are pending or firing."""
    base = url(cfg.prometheus)
    if _pid(cfg.prometheus, state_dir_of(cfg.deploy.state_dir) / FOLDER) is None:
        raise DeployError("the local prometheus is not running: `make observe` starts it")
    targets = _targets(cfg.prometheus)
    alerts = httpx.get(base + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {
        "url": base,
        "targets": [
            {"job": t["labels"]["job"], "url": t["scrapeUrl"], "health": t["health"]}
            | {k: v for k, v in t["labels"].items() if k in {"colour", "model_version", "arm"}}
            for t in targets
        ],
        "alerts": [{"name": a["labels"]["alertname"], "state": a["state"]} for a in alerts],
    }
