"""The deploy state file and its lock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from traffic_forecast.core.config import DeployConfig
from traffic_forecast.deploy.state import (
    ROUTER_TARGETS,
    SCRAPE_DIR,
    SLOT_TARGETS,
    DeployError,
    RouterAddress,
    Slot,
    State,
    load,
    locked,
    other,
    save,
)


def test_the_state_survives_a_round_trip(tmp_path: Path) -> None:
    state = State(
        "green",
        {"green": Slot("tf:b2", "tf:m2", 3002, 42, 1.5)},
        router=RouterAddress("127.0.0.1", 8080),
    )
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
    earlier = state.last_live(before="tf:b2")
    assert earlier is not None
    assert earlier["bento"] == "tf:b1"
    assert State().last_live(before="tf:b1") is None


def test_a_deploy_fails_at_once_behind_a_deploy_naming_it(tmp_path: Path) -> None:
    with (
        locked(tmp_path, "deploy"),
        pytest.raises(DeployError, match=r"^deploy \(pid \d+, since .*: let it finish, then run"),
        locked(tmp_path, "rollback", behind=("retire",)),
    ):
        pass
    with locked(tmp_path, "rollback", behind=("retire",)):  # released: free again
        assert (tmp_path / "deploy.lock").read_text().startswith("rollback (pid ")


def test_a_rollback_waits_for_a_retire_to_stop_the_old_colour(tmp_path: Path) -> None:
    retiring = threading.Event()
    done = threading.Event()

    def retire() -> None:
        with locked(tmp_path, "retire"):
            retiring.set()
            time.sleep(0.5)  # draining and stopping
        done.set()

    thread = threading.Thread(target=retire)
    thread.start()
    retiring.wait(5)
    with locked(tmp_path, "rollback", behind=("retire",), wait_s=10):
        assert done.is_set()  # it got the lock only once the retire let go
    thread.join()
    with (  # and gives up after its wait
        locked(tmp_path, "retire"),
        pytest.raises(DeployError, match=r"still holds .* after 0\.2 s"),
        locked(tmp_path, "rollback", behind=("retire",), wait_s=0.2),
    ):
        pass


def test_the_recorded_router_address_wins_over_the_config() -> None:
    state = State(router=RouterAddress("127.0.0.1", 8080))
    configured = DeployConfig(router_port=9090)

    assert state.deployed(configured).router_port == 8080
    with pytest.raises(DeployError, match=r"listens on 127\.0\.0\.1:8080.*undeploy"):
        state.deployed(configured, for_deploy=True)
    assert state.deployed(DeployConfig(router_port=8080), for_deploy=True).router_port == 8080
    assert State().deployed(configured, for_deploy=True) is configured  # nothing recorded yet


def test_every_state_writes_the_targets_prometheus_scrapes(tmp_path: Path) -> None:
    """Each slot labelled by colour and model version, and by arm while an experiment runs."""
    state = State(
        "blue",
        {
            "blue": Slot("tf:b1", "tf:m1", 3001, 41, 1.0),
            "green": Slot("tf:b2", "tf:m2", 3002, 42, 2.0),
        },
        router=RouterAddress("127.0.0.1", 8080),
    )
    save(tmp_path, state)
    scrape = tmp_path / SCRAPE_DIR
    assert json.loads((scrape / SLOT_TARGETS).read_text()) == [
        {"targets": ["127.0.0.1:3001"], "labels": {"colour": "blue", "model_version": "tf:m1"}},
        {"targets": ["127.0.0.1:3002"], "labels": {"colour": "green", "model_version": "tf:m2"}},
    ]
    assert json.loads((scrape / ROUTER_TARGETS).read_text()) == [
        {"targets": ["127.0.0.1:8080"], "labels": {}}
    ]
    state.experiment = {
        "id": "exp-1",
        "status": "running",
        "champion": {"colour": "blue"},
        "challenger": {"colour": "green"},
    }
    save(tmp_path, state)
    arms = [t["labels"].get("arm") for t in json.loads((scrape / SLOT_TARGETS).read_text())]
    assert arms == ["champion", "challenger"]
    state.experiment["status"] = "ended"  # kept for its analysis, no arm any more
    state.slots.pop("green")
    state.router = None  # undeployed: nothing left to scrape
    state.slots.clear()
    save(tmp_path, state)
    assert json.loads((scrape / SLOT_TARGETS).read_text()) == []
    assert json.loads((scrape / ROUTER_TARGETS).read_text()) == []
