"""A deploy cancelled midway (a cancelled workflow run) cleans up like a failed step."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from traffic_forecast.core.config import Config
from traffic_forecast.deploy import cli, rollout, slots
from traffic_forecast.deploy.state import DeployError, Slot, load


def test_a_cancelled_deploy_stops_the_new_colour_and_records_why(
    base_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[Slot] = []
    started = Slot("tf:new", "tf-model:new", 3001, 12345, 0.0, "/usr/bin/python3")

    def cancelled_while_waiting(*_: object) -> float:
        os.kill(os.getpid(), signal.SIGTERM)  # what GitHub sends a cancelled job (after SIGINT)
        raise AssertionError("the signal did not interrupt the wait")

    monkeypatch.setattr(slots, "start", lambda *_, **__: started)
    monkeypatch.setattr(slots, "wait_ready", cancelled_while_waiting)
    monkeypatch.setattr(slots, "stop", lambda slot, _: stopped.append(slot))
    previous = {name: signal.getsignal(name) for name in (signal.SIGINT, signal.SIGTERM)}
    cfg = dataclasses.replace(
        base_config, deploy=dataclasses.replace(base_config.deploy, state_dir=str(tmp_path))
    )
    try:
        cli._cancellable()
        with pytest.raises(
            DeployError, match=r"failed \(nothing was live\): cancelled \(SIGTERM\)"
        ):
            rollout.deploy("tf:new", cfg)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # the clean-up is not cut short
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)
    assert stopped == [started]
    state = load(tmp_path)
    assert state.slots == {}
    assert state.history[-1] | {"at": 0} == {
        "at": 0,
        "action": "deploy",
        "ok": False,
        "bento": "tf:new",
        "colour": "blue",
        "reason": "cancelled (SIGTERM)",
    }
