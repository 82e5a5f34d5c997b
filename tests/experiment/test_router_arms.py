"""The experiment's arms on a real router (HAProxy with router.lua) in front of stand-in colours.

Sticky assignment: the same client key is answered by the same arm across 10,000 requests and a
reload and a restart of the router; the challenger's share is the setting's within a point;
the router's hash is the Python mirror's. Every answer names its experiment and arm, a client
cannot choose its arm, and shadow copies reach the challenger tagged as its arm.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.colours import StandInColour, stand_ins
from tests.deploy.test_router import CFG, live_router
from tests.serving.server import on_free_ports
from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.deploy.router import Arms, Route, Router, commands, render
from traffic_forecast.experiment.assignment import arm_of
from traffic_forecast.serving.guard import ARM_HEADER, EXPERIMENT_HEADER

SPLIT = ExperimentConfig(mode="split", share=0.3)
ARMS = Arms("exp-test", "blue", "green", "split", SPLIT.share, SPLIT.client_header)


OPEN: list[http.client.HTTPConnection] = []


@dataclasses.dataclass
class Deployment:
    """A router in front of the two stand-in colours."""

    router: Router
    colours: dict[str, StandInColour]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    cfg = on_free_ports(CFG)
    router = Router(cfg, tmp_path)
    with stand_ins(cfg) as colours:
        try:
            yield Deployment(router, colours)
        finally:
            while OPEN:
                OPEN.pop().close()
            router.stop()


class Client:
    """One keep-alive connection to the router, sending as many clients as asked."""

    def __init__(self, router: Router) -> None:
        self.connection = http.client.HTTPConnection(
            router.cfg.host, router.cfg.router_port, timeout=10
        )
        OPEN.append(self.connection)

    def send(self, headers: dict[str, str]) -> http.client.HTTPResponse:
        """One request with ``headers``: its answer, read."""
        self.connection.request(
            "POST", "/forecast", body="{}", headers={"Content-Type": "application/json", **headers}
        )
        response = self.connection.getresponse()
        response.read()
        return response

    def arms(self, keys: list[str]) -> dict[str, str]:
        """The arm each key was answered by, checked against the colour that answered."""
        answered = {}
        for key in keys:
            response = self.send({SPLIT.client_header: key})
            arm, colour = response.getheader(ARM_HEADER), response.getheader("X-Colour")
            assert response.getheader(EXPERIMENT_HEADER) == ARMS.experiment
            assert (arm, colour) in {("champion", "blue"), ("challenger", "green")}, (arm, colour)
            answered[key] = str(arm)
        return answered


def test_an_experiment_is_a_router_setting_and_pins_colours(tmp_path: Path) -> None:
    route = Route({"blue": 100}, arms=ARMS)
    assert commands(route, CFG)[-2:] == [
        "experiment exp-test blue green split 3000 X-Client-Id",
        "shadow off",
    ]
    conf = render(route, CFG, tmp_path)
    assert "use-server green if { var(txn.colour) -m str green }" in conf
    assert commands(Route({"blue": 100}), CFG)[-2] == "experiment off"


@live_router
def test_split_assignment_is_sticky_exact_and_the_mirror_s(deployment: Deployment) -> None:
    router = deployment.router
    router.apply(Route({"blue": 100}, arms=ARMS))
    client = Client(router)
    keys = [f"client-{i}" for i in range(2_000)]
    first = client.arms(keys * 5)  # 10,000 requests, each key five times
    # Sticky: every key answered by one arm only (later answers would have overwritten others).
    again = Counter((k, a) for k, a in client.arms(keys).items())
    assert len(again) == len(keys)
    assert first == {k: arm_of(k, ARMS.experiment, SPLIT) for k in keys}  # the Python mirror
    many = [f"user-{i:05d}" for i in range(10_000)]
    share = Counter(client.arms(many).values())["challenger"] / len(many)
    assert abs(share - SPLIT.share) <= 0.01, share
    master = router._master()
    router._reload()  # a reload: a new worker, Lua loaded anew from routing.state
    assert Client(router).arms(keys) == first
    router.stop()
    router.apply(Route({"blue": 100}, arms=ARMS))  # a restart
    assert router._master() != master
    assert Client(router).arms(keys) == first
    print(f"\nsplit {SPLIT.share:.0%}: challenger share {share:.2%} of 10,000 keys; sticky")


@live_router
def test_a_client_cannot_choose_its_arm(deployment: Deployment) -> None:
    router = deployment.router
    router.apply(Route({"blue": 100}))  # no experiment: headers a client sends are removed
    client = Client(router)
    client.send({ARM_HEADER: "challenger", EXPERIMENT_HEADER: "mine"})
    assert deployment.colours["blue"].tags[-1] == (None, None)
    router.apply(Route({"blue": 100}, arms=ARMS))
    champion = next(
        k for k in (f"c{i}" for i in range(100)) if arm_of(k, "exp-test", SPLIT) == "champion"
    )
    response = client.send({SPLIT.client_header: champion, ARM_HEADER: "challenger"})
    assert response.getheader(ARM_HEADER) == "champion"
    assert deployment.colours["blue"].tags[-1] == ("exp-test", "champion")


@live_router
def test_a_challenger_that_is_down_is_passed_over_and_labelled_honestly(
    deployment: Deployment,
) -> None:
    router = deployment.router
    router.apply(Route({"blue": 100}, arms=ARMS))
    deployment.colours["green"].stop()
    challenger = next(
        k for k in (f"c{i}" for i in range(100)) if arm_of(k, "exp-test", SPLIT) == "challenger"
    )
    response = Client(router).send({SPLIT.client_header: challenger})
    assert response.status == 200
    assert (response.getheader("X-Colour"), response.getheader(ARM_HEADER)) == ("blue", "champion")


@live_router
def test_shadow_mode_copies_every_request_to_the_challenger_as_its_arm(
    deployment: Deployment,
) -> None:
    router = deployment.router
    shadow = dataclasses.replace(ARMS, mode="shadow")
    router.apply(Route({"blue": 100}, mirror="green", arms=shadow))
    client = Client(router)
    for i in range(20):
        response = client.send({SPLIT.client_header: f"c{i}"})
        assert response.getheader(ARM_HEADER) == "champion"
    deadline = time.perf_counter() + 5
    while len(deployment.colours["green"].tags) < 20 and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert deployment.colours["blue"].tags == [("exp-test", "champion")] * 20
    assert deployment.colours["green"].tags == [("exp-test", "challenger")] * 20
