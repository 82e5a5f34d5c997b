"""Deploy, roll back, retire: the blue/green steps, in order, each able to stop the rollout.

``deploy``: start the idle colour with the new Bento → ``/readyz`` → smoke → validation gate →
shadow and canary (when enabled) → switch the router and confirm it through the router → keep
the old colour for the rollback window. A failing step stops the new colour, restores the
router if a step had touched it, and raises `DeployError`: the live colour never stops serving.

The gates (`checks`: pandas, numpy) are imported where a gate runs: ``rollback`` and ``status``
must answer in about a second, and imports were most of their time.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from traffic_forecast.core.config import Config, DeployConfig
from traffic_forecast.deploy import detached, slots
from traffic_forecast.deploy.router import Route, Router
from traffic_forecast.deploy.state import (
    COLOURS,
    DeployError,
    RouterAddress,
    Slot,
    State,
    load,
    locked,
    observations_url,
    other,
    save,
)

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a deploy or rollback did, and how long each part took."""

    action: str
    colour: str
    bento: str
    model: str
    previous: str | None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the terminal and the workflow log."""
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines = [f"{self.action}: {self.colour} serves {self.bento} ({self.model}); {timings}"]
        return "\n".join(lines + [f"  {note}" for note in self.notes])


def _live(state: State, cfg: DeployConfig) -> tuple[str, Slot] | None:
    if state.live is None or state.live not in state.slots:
        return None
    slot = state.slots[state.live]
    return (state.live, slot) if slots.healthy(slot, cfg) else None


def _base(cfg: DeployConfig, slot: Slot) -> str:
    return slots.url(cfg, slot.port)


def _new_errors(base: str) -> float:
    """5xx answers the service counted (its own series on /metrics)."""
    text = httpx.get(base + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("traffic_forecast_requests_total") and 'outcome="error"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _shadow(
    router: Router, cfg: DeployConfig, live: tuple[str, Slot], new: Slot, outcome: Outcome
) -> None:
    from traffic_forecast.deploy import checks  # noqa: PLC0415 (see the module docstring)

    colour, slot = live
    before = _new_errors(_base(cfg, new))
    router.apply(Route({colour: 100}, mirror=other(colour)))
    time.sleep(cfg.shadow.seconds)
    router.apply(Route({colour: 100}))
    errors = _new_errors(_base(cfg, new)) - before
    if errors > 0:
        raise DeployError(
            f"shadow: the new colour answered {errors:.0f} mirrored requests with 5xx"
        )
    difference = checks.shadow_compare(_base(cfg, new), _base(cfg, slot), cfg.shadow)
    outcome.notes.append(
        f"shadow: {cfg.shadow.seconds:g} s mirrored, forecasts differ {difference:.1f} %"
    )


def _canary(
    router: Router, cfg: DeployConfig, live: tuple[str, Slot], new: Slot, outcome: Outcome
) -> None:
    from traffic_forecast.deploy import checks  # noqa: PLC0415 (see the module docstring)

    colour = live[0]
    for step in cfg.canary.steps[:-1]:
        router.apply(Route({colour: 100 - step, other(colour): step}))
        since = time.time()
        time.sleep(cfg.canary.step_seconds)
        lines = router.access_log().read_text(encoding="utf-8").splitlines()
        verdict = checks.canary_verdict(lines, f"{cfg.host}:{new.port}", since, cfg.canary)
        if not verdict.passed:
            raise DeployError(f"canary at {step} %: {verdict.text}")
        outcome.notes.append(f"canary {step} %: {verdict.text}")


def _gates(
    cfg: Config, router: Router, live: tuple[str, Slot] | None, new: Slot, outcome: Outcome
) -> None:
    """Smoke, validation on fresh actuals, then shadow and canary where enabled."""
    from traffic_forecast.deploy import checks  # noqa: PLC0415 (see the module docstring)

    dcfg = cfg.deploy
    checks.smoke(_base(dcfg, new), new.model, dcfg.smoke_horizon)
    actuals = checks.read_actuals(dcfg.validation, cfg.data)
    live_base = None if live is None else _base(dcfg, live[1])
    try:
        verdict = checks.validate(_base(dcfg, new), live_base, actuals, dcfg.validation)
        outcome.notes.append(f"validation: {verdict.text}")
    except DeployError as exc:
        if outcome.action != "rollback":
            raise
        outcome.notes.append(f"{exc} (not blocking: a rollback)")
    if live is not None and dcfg.shadow.enabled:
        _shadow(router, dcfg, live, new, outcome)
    if live is not None and dcfg.canary.enabled:
        _canary(router, dcfg, live, new, outcome)


def _deploy(
    bento: str,
    cfg: Config,
    state: State,
    state_dir: Path,
    action: str = "deploy",
    *,
    python: str = sys.executable,
) -> Outcome:
    _no_experiment(state, action)
    dcfg = state.deployed(cfg.deploy, for_deploy=True)
    cfg = dataclasses.replace(cfg, deploy=dcfg)
    router = Router(dcfg, state_dir)
    live = _live(state, dcfg)
    target = "blue" if live is None else other(live[0])
    leftover = state.slots.pop(target, None)
    if leftover is not None:  # the previous colour, still in its rollback window
        slots.stop(leftover, dcfg)
    started = time.perf_counter()
    new = slots.start(target, bento, dcfg, state_dir, observations_url(cfg), python=python)
    state.slots[target] = new
    save(state_dir, state)
    outcome = Outcome(action, target, bento, new.model, None if live is None else live[0])
    try:
        outcome.seconds["ready"] = slots.wait_ready(target, new, dcfg, state_dir)
        ready_at = time.perf_counter()
        _gates(cfg, router, live, new, outcome)
        router.apply(Route({target: 100}))
        state.router = RouterAddress(dcfg.host, dcfg.router_port)
        confirmed = router.confirm(new.model)
        outcome.seconds["switch"] = time.perf_counter() - ready_at
        outcome.notes.append(f"switch confirmed through the router in {confirmed:.2f} s")
    except BaseException as exc:  # a failed step, or the run cancelled (SIGINT, SIGTERM)
        reason = (
            str(exc)
            if isinstance(exc, DeployError)
            else f"cancelled ({exc or 'interrupted'})"
            if isinstance(exc, KeyboardInterrupt)
            else f"{type(exc).__name__}: {exc}"
        )
        try:  # whatever a gate or the switch changed, the router goes back to the live colour
            if router.restore():
                router.wait_drained(target)  # requests sent to it before the restore finish
        except DeployError as restoring:
            reason += f"; and putting the router back failed: {restoring}"
        slots.stop(new, dcfg)
        state.slots.pop(target, None)
        state.record(action=action, ok=False, bento=bento, colour=target, reason=reason)
        save(state_dir, state)
        still = "nothing was live" if live is None else f"{live[0]} still serves {live[1].bento}"
        raise DeployError(f"{action} of {bento} failed ({still}): {reason}") from None
    outcome.seconds["total"] = time.perf_counter() - started
    state.live = target
    state.record(action=action, ok=True, bento=bento, model=new.model, colour=target,
                 previous=outcome.previous, seconds=outcome.seconds, python=python)  # fmt: skip
    save(state_dir, state)
    if live is not None:
        _schedule_retire(live[0], live[1].bento, dcfg, state_dir)
        outcome.notes.append(f"{live[0]} keeps running for {dcfg.rollback_window_s:g} s (rollback)")
    return outcome


def _no_experiment(state: State, action: str) -> None:
    """An experiment holds the idle colour and the router's arms: a switch would break it."""
    running = state.experimenting()
    if running is not None:
        raise DeployError(
            f"experiment {running} runs its challenger in the idle colour: "
            f"`traffic-forecast experiment stop` first, then {action}"
        )


def _behind_a_retire(cfg: DeployConfig) -> dict[str, Any]:
    """How a deploy or rollback waits for the lock: only behind a retire, as long as it can take.

    A retire holds the lock while the old colour drains and stops (each up to the stop
    timeout): a rollback then waits for it. Behind a deploy it fails at once.
    """
    return {"behind": ("retire",), "wait_s": 2 * cfg.stop_timeout_s + 10}


def deploy(bento: str, cfg: Config) -> Outcome:
    """Blue/green deploy of ``bento`` (see the module docstring)."""
    state_dir = Path(cfg.deploy.state_dir)
    with locked(state_dir, "deploy", **_behind_a_retire(cfg.deploy)):
        return _deploy(bento, cfg, load(state_dir), state_dir)


def rollback(cfg: Config) -> Outcome:
    """Back to the previous colour at once if it still runs; else redeploy its Bento."""
    state_dir = Path(cfg.deploy.state_dir)
    with locked(state_dir, "rollback", **_behind_a_retire(cfg.deploy)):
        state = load(state_dir)
        if state.live is None or state.live not in state.slots:
            raise DeployError("nothing is deployed: there is nothing to roll back")
        _no_experiment(state, "rollback")
        dcfg = state.deployed(cfg.deploy)
        current = state.slots[state.live]
        previous = other(state.live)
        slot = state.slots.get(previous)
        if slot is not None and slots.healthy(slot, dcfg):
            started = time.perf_counter()
            router = Router(dcfg, state_dir)
            router.apply(Route({previous: 100}))
            router.confirm(slot.model)
            outcome = Outcome("rollback", previous, slot.bento, slot.model, state.live)
            outcome.seconds["switch"] = time.perf_counter() - started
            state.record(action="rollback", ok=True, bento=slot.bento, model=slot.model,
                         colour=previous, previous=state.live, seconds=outcome.seconds)  # fmt: skip
            old_live, state.live = state.live, previous
            save(state_dir, state)
            _schedule_retire(old_live, current.bento, dcfg, state_dir)
            outcome.notes.append(f"instant: {previous} was still running; {old_live} retires later")
            return outcome
        earlier = state.last_live(before=current.bento)
        if earlier is None:
            raise DeployError(f"no earlier Bento than {current.bento} in the history")
        # With the environment it ran in (the release's own, on a production host) while that
        # is still there; else this one.
        python = str(earlier.get("python") or "")
        if not Path(python).is_file():
            python = sys.executable
        return _deploy(earlier["bento"], cfg, state, state_dir, "rollback", python=python)


def _retire_pid_file(state_dir: Path, colour: str) -> Path:
    return state_dir / f"retire-{colour}.pid"


def cancel_retire(state_dir: Path, colour: str) -> None:
    """Stop a pending ``retire`` of ``colour``, if one waits (its pid file says which)."""
    slots.stop_recorded(_retire_pid_file(state_dir, colour), "retire")


def _schedule_retire(colour: str, bento: str, cfg: DeployConfig, state_dir: Path) -> None:
    """Stop ``colour`` after the rollback window, in a process of its own (this one exits)."""
    cancel_retire(state_dir, colour)  # one pending retire per colour: the newest
    retiring = detached.start(
        [sys.executable, "-m", "traffic_forecast.deploy.cli", "retire", colour, bento,
         "--after", str(cfg.rollback_window_s), "--state-dir", str(state_dir),
         "--stop-timeout", str(cfg.stop_timeout_s)],
        state_dir / "logs" / "retire.log",
    )  # fmt: skip
    _retire_pid_file(state_dir, colour).write_text(str(retiring.pid), encoding="utf-8")


def retire(colour: str, bento: str, state_dir: Path, cfg: DeployConfig) -> bool:
    """Stop ``colour`` if it still runs ``bento`` and is not live; True when it was stopped."""
    with locked(state_dir, "retire"):
        state = load(state_dir)
        slot = state.slots.get(colour)
        if slot is None or slot.bento != bento or state.live == colour:
            return False
        Router(cfg, state_dir).wait_drained(colour)
        slots.stop(slot, cfg)
        del state.slots[colour]
        state.record(action="retire", ok=True, colour=colour, bento=bento)
        save(state_dir, state)
        return True


def router_url(cfg: Config) -> str:
    """The URL clients call: the recorded router's, else the configured one."""
    state = load(Path(cfg.deploy.state_dir))
    return Router(state.deployed(cfg.deploy), Path(cfg.deploy.state_dir)).url


def status(cfg: Config) -> dict[str, Any]:
    """Live colour, and per colour: Bento, model, port, process, readiness; the router."""
    state_dir = Path(cfg.deploy.state_dir)
    state = load(state_dir)
    dcfg = state.deployed(cfg.deploy)
    colours: dict[str, Any] = {}
    for colour in COLOURS:
        slot = state.slots.get(colour)
        colours[colour] = (
            None
            if slot is None
            else {
                "bento": slot.bento,
                "model": slot.model,
                "port": slot.port,
                "pid": slot.pid,
                "running": slots.alive(slot.pid),
                "ready": slots.healthy(slot, dcfg),
            }
        )
    router = Router(dcfg, state_dir)
    return {
        "live": state.live,
        "router": {"url": router.url, "running": router.running()},
        "colours": colours,
        "last": state.history[-1] if state.history else None,
    }


def verify(cfg: Config) -> str:
    """A forecast and a capacity answer through the router, from the live colour's model."""
    from traffic_forecast.deploy import checks  # noqa: PLC0415 (see the module docstring)

    state = load(Path(cfg.deploy.state_dir))
    if state.live is None or state.live not in state.slots:
        raise DeployError("nothing is deployed")
    dcfg = state.deployed(cfg.deploy)
    slot = state.slots[state.live]
    router = Router(dcfg, Path(dcfg.state_dir))
    answer = checks.smoke(router.url, slot.model, dcfg.smoke_horizon)
    stale = f"; stale: {answer['stale_reason']}" if answer.get("stale") else ""
    return (
        f"{router.url} answers from {state.live} ({slot.bento}, model {slot.model}): forecasts "
        f"from {answer['origin']}, the hour after the last observed ({answer['last_observed']})"
        f"{stale}"
    )


def stop_all(cfg: Config) -> None:
    """Stop the router and both colours (``make undeploy``)."""
    state_dir = Path(cfg.deploy.state_dir)
    with locked(state_dir, "undeploy"):
        state = load(state_dir)
        dcfg = state.deployed(cfg.deploy)
        if state.experimenting() is not None and state.experiment is not None:
            # Ended first: its guard sees it at its next check and exits, rather than find
            # the challenger gone and call that a breach.
            state.experiment |= {"status": "stopped", "ended_at": time.time(),
                                 "end_reason": "undeploy"}  # fmt: skip
            save(state_dir, state)
        Router(dcfg, state_dir).stop()
        for colour in COLOURS:
            cancel_retire(state_dir, colour)  # nothing left for it to stop
        for slot in state.slots.values():
            slots.stop(slot, dcfg)
        state.record(action="stop", ok=True, colour=state.live)
        state.live, state.slots, state.router = None, {}, None
        save(state_dir, state)
