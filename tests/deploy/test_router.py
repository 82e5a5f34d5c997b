"""The router: its HAProxy config, rendered and checked by ``haproxy -c``; then run for real.

A real HAProxy in front of two small HTTP servers, switched at run time under load.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.colours import StandInColour, stand_ins
from tests.deploy.load import Load, Loads
from tests.serving.server import on_free_ports
from traffic_forecast.core.config import DeployConfig
from traffic_forecast.deploy import detached, slots
from traffic_forecast.deploy.router import Route, Router, commands, info_field, render
from traffic_forecast.deploy.state import DeployError
from traffic_forecast.serving.guard import VERSION_HEADER

CFG = DeployConfig(router_port=18080, blue_port=13001, green_port=13002)
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="HAProxy is not installed (make system-deps)"
)


def live_router(test: Callable[..., None]) -> Callable[..., None]:
    """A test that starts HAProxy and servers: it runs in the serial stream, where installed."""
    marked: Callable[..., None] = needs_haproxy(pytest.mark.slow(pytest.mark.serial(test)))
    return marked


def _servers(conf: str) -> list[str]:
    return [line.strip() for line in conf.splitlines() if line.strip().startswith("server ")]


def test_all_traffic_to_one_colour(tmp_path: Path) -> None:
    conf = render(Route({"green": 100}), CFG, tmp_path)
    assert _servers(conf) == [
        "server blue 127.0.0.1:13001 weight 0",
        "server green 127.0.0.1:13002 weight 100",
    ]
    assert f"pidfile {tmp_path}/haproxy.pid" in conf  # its own pid file, never the system's
    assert f"stats socket {tmp_path}/admin.sock mode 600 level admin" in conf
    assert commands(Route({"green": 100}), CFG) == [
        "set server live/green weight 100",  # first: never a moment with no colour weighted
        "set server live/blue weight 0",
        "experiment off",
        "shadow off",
    ]


def test_a_canary_step_splits_by_weight(tmp_path: Path) -> None:
    conf = render(Route({"blue": 95, "green": 5}), CFG, tmp_path)
    assert _servers(conf) == [
        "server blue 127.0.0.1:13001 weight 95",
        "server green 127.0.0.1:13002 weight 5",
    ]


def test_a_shadow_copies_to_the_idle_colour() -> None:
    assert commands(Route({"blue": 100}, mirror="green"), CFG)[-1] == "shadow 127.0.0.1:13002"


@needs_haproxy
@pytest.mark.parametrize(
    "route",
    [Route({"blue": 100}), Route({"blue": 75, "green": 25}), Route({"blue": 100}, "green")],
    ids=["one", "canary", "shadow"],
)
def test_haproxy_accepts_every_rendered_route(route: Route, tmp_path: Path) -> None:
    router = Router(CFG, tmp_path)
    router.prefix.mkdir(parents=True)
    router._check(render(route, CFG, router.prefix))
    assert router.conf.is_file()


@needs_haproxy
def test_a_config_haproxy_refuses_never_replaces_the_live_one(tmp_path: Path) -> None:
    bad = Router(dataclasses.replace(CFG, router_directives=["no_such_directive on"]), tmp_path)
    with pytest.raises(DeployError, match="haproxy -c refused"):
        bad.apply(Route({"blue": 100}))
    assert not bad.conf.exists()  # nothing was put in place, nothing was started
    assert (bad.prefix / "haproxy.cfg.rejected").read_text().count("no_such_directive") == 1
    assert not bad.running()


# --- a real HAProxy, switched at run time ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Routed:
    """A router in front of the two stand-in colours."""

    router: Router
    colours: dict[str, StandInColour]


@pytest.fixture
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Routed]:
    # As on a self-hosted runner: what the router leaves running must not carry the job's id.
    monkeypatch.setenv("RUNNER_TRACKING_ID", "github_test-job")
    cfg = on_free_ports(CFG)
    router = Router(cfg, tmp_path)
    with stand_ins(cfg) as colours:
        try:
            yield Routed(router, colours)
        finally:
            router.stop()


def _post(url: str, body: str) -> str | None:
    """One request on a new connection: the version that answered."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(
            "POST", parts.path, body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        return response.getheader(VERSION_HEADER)
    finally:
        connection.close()


@live_router
def test_switches_at_run_time_drop_no_request_of_any_client(routed: Routed) -> None:
    router = routed.router
    router.apply(Route({"blue": 100}))
    router.confirm("blue")
    master = router._master()
    with Loads(router.url + "/forecast") as loads:
        for turn in range(20):  # deploys, rollbacks and canary steps, back to back
            router.apply(Route({"green": 100} if turn % 2 == 0 else {"blue": 100}))
            router.apply(Route({"blue": 75, "green": 25}))
            router.apply(Route({"blue": 100} if turn % 2 == 0 else {"green": 100}))
            time.sleep(0.05)
    assert loads.failures == [], loads.summary()
    assert router._master() == master  # never restarted
    for mode, load in loads.by_mode.items():
        assert set(load.versions_sent_after(0)) == {"blue", "green"}, mode
    assert loads.by_mode["keep-alive"].reused > 0.9 * len(loads.by_mode["keep-alive"].answers)
    print(f"\n60 run-time switches: {loads.summary()}")


@live_router
def test_the_keep_alive_harness_sees_a_router_that_drops_its_clients(routed: Routed) -> None:
    """Negative control: stopping the router under keep-alive clients breaks their requests."""
    router = routed.router
    router.apply(Route({"blue": 100}))
    with Load(router.url + "/forecast", mode="keep-alive") as load:
        time.sleep(0.3)
        router.stop()
        router.apply(Route({"blue": 100}))  # a restart: every open connection is gone
        time.sleep(0.3)
    assert load.failures, load.summary()
    assert load.answers[-1].status == 200  # and the clients came back


@live_router
def test_a_shadow_copies_each_request_and_its_body_to_the_other_colour(routed: Routed) -> None:
    router, green = routed.router, routed.colours["green"]
    router.apply(Route({"blue": 100}, mirror="green"))
    body = json.dumps({"horizon": 24, "events": [{"kind": "flash_sale"}]})
    for _ in range(5):
        assert _post(router.url + "/forecast", body) == "blue"
    deadline = time.perf_counter() + 5
    while len(green.bodies) < 5 and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert green.bodies == [body.encode()] * 5
    router.apply(Route({"blue": 100}))  # off: no more copies
    _post(router.url + "/forecast", body)
    time.sleep(0.3)
    assert len(green.bodies) == 5


@live_router
def test_the_router_runs_without_the_runner_job_mark(routed: Routed) -> None:
    router = routed.router
    router.apply(Route({"blue": 100}))
    master = router._master()
    assert master is not None
    assert master in detached.CHILDREN
    for pid in (master, *slots.descendants(master)):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith(b"RUNNER_TRACKING_ID=") for v in environ), pid


@live_router
def test_a_changed_config_is_checked_and_reloaded_into_the_running_router(routed: Routed) -> None:
    router = routed.router
    router.apply(Route({"blue": 100}))
    worker = router.admin("show info")
    changed = dataclasses.replace(
        router.cfg, router_directives=["http-response set-header X-Router-Test reloaded"]
    )
    moved = Router(changed, router.prefix.parent)
    moved.apply(Route({"green": 100}))
    assert moved._master() == router._master()  # the same master: a reload, not a restart
    assert info_field(moved.admin("show info"), "Pid") != info_field(worker, "Pid")  # a new worker
    connection = http.client.HTTPConnection("127.0.0.1", router.cfg.router_port, timeout=10)
    connection.request("POST", "/forecast", body="{}")
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.getheader("X-Router-Test") == "reloaded"
    assert response.getheader(VERSION_HEADER) == "green"  # and the weights it was given
