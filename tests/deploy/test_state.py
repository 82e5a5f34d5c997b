"""The deploy state file and its lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from traffic_forecast.deploy.state import DeployError, Slot, State, load, locked, other, save


def test_the_state_survives_a_round_trip(tmp_path: Path) -> None:
    state = State("green", {"green": Slot("tf:b2", "tf:m2", 3002, 42, 1.5)})
    state.record(action="deploy", ok=True, bento="tf:b2")
    save(tmp_path, state)
    again = load(tmp_path)
    assert again == state
    assert load(tmp_path / "nowhere") == State()


def test_colours_alternate() -> None:
    assert (other("blue"), other("green")) == ("green", "blue")


def test_the_previous_bento_is_the_last_other_one_that_went_live() -> None:
    state = State()
    for bento, ok in (("tf:b1", True), ("tf:b2", True), ("tf:b3", False), ("tf:b2", True)):
        state.record(action="deploy", ok=ok, bento=bento)
    assert state.last_live_bento(before="tf:b2") == "tf:b1"
    assert State().last_live_bento(before="tf:b1") is None


def test_a_second_deploy_fails_at_once_while_one_holds_the_lock(tmp_path: Path) -> None:
    with (
        locked(tmp_path),
        pytest.raises(DeployError, match="another deploy"),
        locked(tmp_path, wait=False),
    ):
        pass
    with locked(tmp_path, wait=False):  # released: free again
        pass
