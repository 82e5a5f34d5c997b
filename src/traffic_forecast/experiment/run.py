"""Start, guard and stop an experiment on the blue/green deployment (README, Experiments).

``start``: the challenger's Bento in the idle colour → ``/readyz`` → smoke → the router tags every
request with the experiment and its arm (shadow: the challenger gets a copy of each; split: it
answers a sticky share of clients) → a guard process checks the challenger's service levels
every ``guardrails.check_interval_s``. ``stop`` (a person) or a breach (the guard): the champion
takes all traffic again, and the challenger stops once its requests in flight are answered.
The experiment stays in the deploy state, ended, for its analysis.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import httpx
from omegaconf import OmegaConf

from traffic_forecast.core.config import Config, DeployConfig, ExperimentConfig
from traffic_forecast.core.errors import TrafficForecastError
from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.deploy import detached, slots
from traffic_forecast.deploy.router import Arms, Route, Router
from traffic_forecast.deploy.state import (
    State,
    load,
    locked,
    observations_url,
    other,
    save,
)
from traffic_forecast.experiment import guardrails
from traffic_forecast.experiment.record import (
    ENDED,
    RUNNING,
    STOPPED,
    Arm,
    Experiment,
)

log = logging.getLogger(__name__)

GUARD_PID = "experiment-guard.pid"
GUARD_LOG = "logs/experiment-guard.log"
GUARD_DEPLOY = "experiment-guard.json"  # the deploy settings the guard routes and stops with
GUARD_READY = "experiment-guard.ready"  # written by the guard once it has its first reading
GUARD_START_S = 60.0


class ExperimentError(TrafficForecastError):
    """An experiment cannot start or stop; what serves is unchanged."""


def current(state_dir: Path) -> Experiment | None:
    """The deployment's experiment (running, or the last one, kept for its analysis), or None."""
    raw = load(state_dir).experiment
    return None if raw is None else Experiment.from_json(raw)


def route(experiment: Experiment) -> Route:
    """The router's route while ``experiment`` runs."""
    champion, challenger = experiment.champion.colour, experiment.challenger.colour
    arms = Arms(
        experiment.id,
        champion,
        challenger,
        experiment.mode,
        experiment.share,
        experiment.client_header,
    )
    mirror = challenger if experiment.mode == "shadow" else None
    return Route({champion: 100}, mirror=mirror, arms=arms)


def _git_commit(model: str) -> str:
    import bentoml  # noqa: PLC0415 (seconds to import: only a start needs it)

    return str(bentoml.models.get(model).info.labels.get("git_commit", ""))


def _champion(state: State, cfg: DeployConfig) -> Arm:
    if state.live is None or state.live not in state.slots:
        raise ExperimentError("nothing is deployed: deploy the champion first (make deploy)")
    slot = state.slots[state.live]
    if not slots.healthy(slot, cfg):
        raise ExperimentError(f"the live colour {state.live} is not ready: fix that first")
    return Arm(state.live, slot.bento, slot.model, _git_commit(slot.model))


def start(
    bento: str,
    cfg: Config,
    *,
    experiment_id: str | None = None,
    pull_request: int | None = None,
    issue: int | None = None,
) -> Experiment:
    """Run ``bento`` as the challenger beside the live colour (see the module docstring)."""
    from traffic_forecast.deploy import checks  # noqa: PLC0415 (pandas: only a start needs it)
    from traffic_forecast.deploy.rollout import cancel_retire  # noqa: PLC0415

    state_dir = Path(cfg.deploy.state_dir)
    with locked(state_dir, "experiment start"):
        state = load(state_dir)
        running = state.experimenting()
        if running is not None:
            raise ExperimentError(
                f"experiment {running} runs: `traffic-forecast experiment stop` first"
            )
        dcfg = state.deployed(cfg.deploy)
        champion = _champion(state, dcfg)
        colour = other(champion.colour)
        cancel_retire(state_dir, colour)
        leftover = state.slots.pop(colour, None)
        if leftover is not None:  # the previous colour in its rollback window: its time is up
            slots.stop(leftover, dcfg)
        new = slots.start(colour, bento, dcfg, state_dir, observations_url(cfg))
        state.slots[colour] = new
        save(state_dir, state)
        experiment = Experiment(
            id=experiment_id or time.strftime("exp-%Y%m%d-%H%M%S", time.gmtime()),
            mode=cfg.experiment.mode,
            share=cfg.experiment.share,
            client_header=cfg.experiment.client_header,
            champion=champion,
            challenger=Arm(colour, new.bento, new.model, _git_commit(new.model)),
            started_at=time.time(),
            pull_request=pull_request,
            issue=issue,
            settings=dataclasses.asdict(cfg.experiment),
        )
        previous, router = state.experiment, Router(dcfg, state_dir)
        try:
            slots.wait_ready(colour, new, dcfg, state_dir)
            checks.smoke(slots.url(dcfg, new.port), new.model, dcfg.smoke_horizon)
            state.experiment = experiment.as_json()  # what the guard reads
            save(state_dir, state)
            _start_guard(state_dir, experiment, dcfg)  # watching before the first request
            router.apply(route(experiment))
        except Exception as exc:  # any failure: the challenger goes, the champion serves alone
            _stop_guard(state_dir)
            router.restore()
            slots.stop(new, dcfg)
            state.slots.pop(colour, None)
            state.experiment = previous
            state.record(action="experiment", ok=False, bento=bento, reason=str(exc))
            save(state_dir, state)
            raise ExperimentError(
                f"the challenger {bento} did not start ({champion.colour} serves alone): {exc}"
            ) from None
        state.record(action="experiment", ok=True, id=experiment.id, bento=bento, colour=colour)
        save(state_dir, state)
    return experiment


def _end(
    state_dir: Path,
    cfg: DeployConfig | None,
    *,
    status: str,
    reason: str,
    breach: dict[str, object] | None = None,
    expected_id: str | None = None,
) -> Experiment:
    """The champion alone again: route, stop the challenger, record how it ended."""
    with locked(state_dir, f"experiment {status}"):
        state = load(state_dir)
        if state.experiment is None or state.experimenting() is None:
            raise ExperimentError("no experiment is running")
        experiment = Experiment.from_json(state.experiment)
        if expected_id is not None and experiment.id != expected_id:
            raise ExperimentError(f"experiment {expected_id} is no longer the running one")
        dcfg = state.deployed(cfg or DeployConfig())
        router = Router(dcfg, state_dir)
        router.apply(Route({experiment.champion.colour: 100}))
        # Ended when the champion takes every request; the challenger then finishes its own.
        experiment.status, experiment.ended_at = status, time.time()
        experiment.end_reason, experiment.breach = reason, breach
        state.experiment = experiment.as_json()
        state.record(action=f"experiment {status}", ok=True, id=experiment.id, reason=reason)
        save(state_dir, state)
        router.wait_drained(experiment.challenger.colour)
        slot = state.slots.pop(experiment.challenger.colour, None)
        if slot is not None:
            slots.stop(slot, dcfg)
        save(state_dir, state)
        return experiment


def stop(cfg: Config, reason: str = "stopped by a person") -> Experiment:
    """End the running experiment: the champion alone (``traffic-forecast experiment stop``)."""
    state_dir = Path(cfg.deploy.state_dir)
    experiment = _end(state_dir, cfg.deploy, status=STOPPED, reason=reason)
    _stop_guard(state_dir)
    return experiment


# -- the guard: a process of its own, checking the challenger every interval ---------------------


def _start_guard(state_dir: Path, experiment: Experiment, cfg: DeployConfig) -> None:
    """Start the guard and wait until it has read the challenger's counters once."""
    _stop_guard(state_dir)
    ready = state_dir / GUARD_READY
    ready.unlink(missing_ok=True)
    write_json_atomic(state_dir / GUARD_DEPLOY, dataclasses.asdict(cfg))
    process = detached.start(
        [sys.executable, "-m", "traffic_forecast.experiment.cli", "guard",
         "--state-dir", str(state_dir), "--id", experiment.id],
        state_dir / GUARD_LOG,
    )  # fmt: skip
    (state_dir / GUARD_PID).write_text(str(process.pid), encoding="utf-8")
    deadline = time.monotonic() + GUARD_START_S
    while not (ready.is_file() and ready.read_text(encoding="utf-8") == experiment.id):
        if process.poll() is not None or time.monotonic() > deadline:
            raise ExperimentError(f"the guard did not start: see {state_dir / GUARD_LOG}")
        time.sleep(0.05)


def _stop_guard(state_dir: Path) -> None:
    slots.stop_recorded(state_dir / GUARD_PID, "guard")


def _read(url: str) -> guardrails.Counters:
    return guardrails.read_counters(httpx.get(url + "/metrics", timeout=5).text)


def _checked(state_dir: Path, experiment_id: str, text: str) -> None:
    """Count a passed check in the experiment's record (the report says how many, and the last)."""
    with locked(state_dir, "experiment guard"):
        state = load(state_dir)
        if state.experimenting() != experiment_id or state.experiment is None:
            return
        # In the record, not the history: a check every few seconds would push the deploys a
        # rollback needs out of the history's last 50 events.
        checks = int(state.experiment.get("checks", 0)) + 1
        state.experiment |= {"checks": checks, "last_check": text}
        save(state_dir, state)


def guard(state_dir: Path, experiment_id: str) -> str:
    """Check the challenger every interval until the experiment ends; end it on a breach.

    Returns how the experiment ended (stopped by a person, or the breach).
    """
    started = current(state_dir)
    if started is None or started.id != experiment_id:
        return "no such experiment"
    limits = started.config(ExperimentConfig()).guardrails
    state = load(state_dir)
    raw = json.loads((state_dir / GUARD_DEPLOY).read_text(encoding="utf-8"))
    dcfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DeployConfig), raw))
    assert isinstance(dcfg, DeployConfig)
    url = slots.url(dcfg, state.slots[started.challenger.colour].port)
    before = _read(url)
    write_text_atomic(state_dir / GUARD_READY, experiment_id)
    while True:
        time.sleep(limits.check_interval_s)
        experiment = current(state_dir)
        if experiment is None or experiment.id != experiment_id or experiment.status != RUNNING:
            return "ended elsewhere"
        try:
            after = _read(url)
        except httpx.HTTPError as exc:
            verdict = guardrails.Verdict(True, True, f"breached: /metrics unreachable ({exc!r})")
        else:
            verdict = guardrails.judge(before, after, limits)
        log.info("%s: %s", experiment_id, verdict.text)
        if verdict.breached:
            breach = {**dataclasses.asdict(verdict), "at": time.time()}
            try:
                _end(
                    state_dir,
                    dcfg,
                    status=ENDED,
                    reason=f"guardrail: {verdict.text}",
                    breach=breach,
                    expected_id=experiment_id,
                )
            except ExperimentError:  # stopped or undeployed meanwhile: nothing left to end
                return "ended elsewhere"
            (state_dir / GUARD_PID).unlink(missing_ok=True)
            return verdict.text
        if verdict.judged:
            before = after
            _checked(state_dir, experiment_id, verdict.text)
