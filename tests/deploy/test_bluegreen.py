"""Blue/green for real: HAProxy and two ``bentoml serve`` slots, with a load running through it.

One deployment for the module: blue goes live first; every failing green is tried against it
(and must leave it serving); the last tests switch for real and roll back.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.deploy.bentos import BuiltBentos, custom_bento
from tests.deploy.load import Loads
from tests.packaged import Packaged
from tests.serving.server import on_free_ports
from traffic_forecast.core.config import Config
from traffic_forecast.deploy import cli as deploy_cli
from traffic_forecast.deploy import rollout, slots
from traffic_forecast.deploy.router import Route, Router
from traffic_forecast.deploy.state import DeployError, RouterAddress, load
from traffic_forecast.serving import bento, predictions
from traffic_forecast.serving.guard import VERSION_HEADER

pytestmark = [pytest.mark.slow, pytest.mark.serial]
RUNNER_MARK = "RUNNER_TRACKING_ID"


@dataclass(frozen=True)
class Bentos:
    """The Bentos the tests deploy, and their models."""

    v1: str
    v2: str
    worse: str  # seasonal naive where the model should be
    broken: str  # its forecaster file is damaged: never ready
    no_capacity: str  # packaged without capacity data: /capacity answers 503

    def model(self, tag: str) -> str:
        """The model a Bento holds."""
        return bento.model_of(tag)


@pytest.fixture(scope="module")
def bentos(
    packaged: Packaged, built: BuiltBentos, tmp_path_factory: pytest.TempPathFactory
) -> Bentos:
    root = tmp_path_factory.mktemp("bentos")
    _, v2 = bento.build(packaged.cfg)
    return Bentos(
        built.plain,
        v2,
        worse=built.naive,
        broken=custom_bento(
            packaged, root / "broken", lambda f: (f / "forecaster.zip").write_bytes(b"x")
        ),
        no_capacity=built.no_capacity,
    )


@pytest.fixture(scope="module")
def cfg(base_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    root = tmp_path_factory.mktemp("deploy")
    deploy = on_free_ports(
        base_config.deploy,
        state_dir=str(root / "state"),
        ready_timeout_s=90,
        rollback_window_s=900,  # the tests retire colours themselves
        stop_timeout_s=20,
        validation=dataclasses.replace(
            base_config.deploy.validation, actuals_file=str(root / "fresh.csv")
        ),
    )
    config = dataclasses.replace(base_config, deploy=deploy)
    # As in a job on a GitHub self-hosted runner, which kills what carries this when it ends.
    os.environ[RUNNER_MARK] = "github_blue-green-test"
    try:
        yield config
    finally:
        del os.environ[RUNNER_MARK]
        rollout.stop_all(config)


def _router(cfg: Config) -> str:
    return f"http://{cfg.deploy.host}:{cfg.deploy.router_port}"


def _served_version(cfg: Config) -> str | None:
    response = httpx.post(
        _router(cfg) + "/forecast", json={"horizon": 1}, headers={"Connection": "close"}
    )
    return response.headers.get(VERSION_HEADER)


@pytest.fixture(scope="module")
def blue_live(cfg: Config, bentos: Bentos) -> Config:
    outcome = rollout.deploy(bentos.v1, cfg)
    assert outcome.colour == "blue"
    assert _served_version(cfg) == bentos.model(bentos.v1)
    return cfg


def _still_blue(cfg: Config, bentos: Bentos) -> None:
    state = load(Path(cfg.deploy.state_dir))
    assert state.live == "blue"
    assert set(state.slots) == {"blue"}
    assert slots.port_free(cfg.deploy.host, cfg.deploy.green_port)  # green was stopped
    assert _served_version(cfg) == bentos.model(bentos.v1)


def test_gate_check_runs_the_gates_against_urls(
    blue_live: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Argo Rollouts' analysis Jobs run (deploy/kubernetes/), here against blue itself."""
    blue = f"http://{blue_live.deploy.host}:{blue_live.deploy.blue_port}"
    assert deploy_cli.gate_check_main(["--new", blue, "--live", blue]) == 0
    out = capsys.readouterr().out
    assert "smoke: " in out
    assert "validation: no fresh actuals" in out
    assert deploy_cli.gate_check_main(["--new", f"http://{blue_live.deploy.host}:1"]) == 1


def test_the_state_records_where_the_router_listens(blue_live: Config, bentos: Bentos) -> None:
    # Another config (ports changed since the deploy, or a make target without ARGS) still
    # talks to what runs: the address recorded in state.json.
    elsewhere = on_free_ports(blue_live.deploy)
    moved = dataclasses.replace(blue_live, deploy=elsewhere)
    state = load(Path(blue_live.deploy.state_dir))
    assert state.router == RouterAddress(blue_live.deploy.host, blue_live.deploy.router_port)

    report = rollout.status(moved)
    assert report["router"] == {"url": _router(blue_live), "running": True}
    assert report["colours"]["blue"]["ready"]
    assert "answers from blue" in rollout.verify(moved)
    with pytest.raises(DeployError, match="undeploy"):
        rollout.deploy(bentos.v2, moved)  # refused before anything starts
    _still_blue(blue_live, bentos)


# --- a failing green leaves blue serving ------------------------------------------------------


def _requests_counted(base: str) -> float:
    """The forecast API requests a colour's ``/metrics`` counts (every endpoint and outcome)."""
    text = httpx.get(base + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("traffic_forecast_requests_total{")
    )


def _failing(
    cfg: Config, bentos: Bentos, tag: str, expected: str, *, green_served: bool = False
) -> None:
    blue = slots.url(cfg.deploy, cfg.deploy.blue_port)
    counted = _requests_counted(blue)
    with Loads(_router(cfg) + "/forecast") as load_run:
        with pytest.raises(DeployError, match=expected) as raised:
            rollout.deploy(tag, cfg)
        failed = time.perf_counter()
    assert "blue still serves" in str(raised.value)
    assert load_run.failures == [], load_run.summary()
    # Green takes traffic only in a canary step; once the deploy failed, blue takes it all.
    since = failed if green_served else 0.0
    assert set(load_run.versions_sent_after(since)) == {bentos.model(bentos.v1)}
    _still_blue(cfg, bentos)
    # Starting green left blue's series alone (Prometheus scrapes each colour): BentoML empties
    # a server's metrics directory when it starts, and the colours once shared one.
    answered_by_blue = load_run.versions_sent_after(0.0)[bentos.model(bentos.v1)]
    assert _requests_counted(blue) >= counted + answered_by_blue


def test_a_green_that_never_becomes_ready(blue_live: Config, bentos: Bentos) -> None:
    # Its model fails the self-check, so /readyz never answers 200: the timeout path.
    quick = dataclasses.replace(blue_live.deploy, ready_timeout_s=12)
    _failing(
        dataclasses.replace(blue_live, deploy=quick),
        bentos,
        bentos.broken,
        "was not ready after 12 s",
    )


def test_a_green_that_fails_the_smoke_test(blue_live: Config, bentos: Bentos) -> None:
    _failing(blue_live, bentos, bentos.no_capacity, "smoke test failed: capacity answered 503")


def test_a_green_worse_on_fresh_actuals_fails_the_validation_gate(
    blue_live: Config, bentos: Bentos
) -> None:
    # Fresh actuals that the live model forecast exactly: any other model is worse on them.
    week = httpx.post(_router(blue_live) + "/forecast", json={"horizon": 168}).json()["forecast"]
    data = blue_live.data
    actuals = pd.DataFrame(
        {
            data.timestamp_column: [h["timestamp"] for h in week],
            data.target_column: [h["value"] for h in week],
        }
    )
    actuals.to_csv(blue_live.deploy.validation.actuals_file, index=False)
    try:
        _failing(blue_live, bentos, bentos.worse, "validation gate failed: MAE on 168 fresh hours")
    finally:
        Path(blue_live.deploy.validation.actuals_file).unlink()


def test_a_router_config_haproxy_refuses(blue_live: Config, bentos: Bentos) -> None:
    bad = dataclasses.replace(blue_live.deploy, router_directives=["no_such_directive on"])
    _failing(dataclasses.replace(blue_live, deploy=bad), bentos, bentos.v2, "haproxy -c refused")


def test_a_canary_over_its_latency_limit_gives_the_traffic_back(
    blue_live: Config, bentos: Bentos
) -> None:
    canary = dataclasses.replace(
        blue_live.deploy.canary, enabled=True, steps=[50, 100], step_seconds=2, max_p99_ms=0.001
    )
    strict = dataclasses.replace(blue_live.deploy, canary=canary)
    _failing(
        dataclasses.replace(blue_live, deploy=strict),
        bentos,
        bentos.v2,
        "canary at 50 %",
        green_served=True,
    )


# --- a real switch, and back ------------------------------------------------------------------


def test_a_deploy_then_a_rollback_drop_no_request(blue_live: Config, bentos: Bentos) -> None:
    v1, v2 = bentos.model(bentos.v1), bentos.model(bentos.v2)
    with Loads(_router(blue_live) + "/forecast") as during_deploy:
        outcome = rollout.deploy(bentos.v2, blue_live)
        switched = time.perf_counter()
    assert outcome.colour == "green"
    assert during_deploy.failures == [], during_deploy.summary()
    assert set(during_deploy.versions_sent_after(switched)) == {v2}
    print(f"\ndeploy: {outcome.summary()}\n  load: {during_deploy.summary()}")

    with Loads(_router(blue_live) + "/forecast") as during_rollback:
        back = rollout.rollback(blue_live)
        rolled = time.perf_counter()
    assert (back.colour, back.model) == ("blue", v1)
    assert during_rollback.failures == [], during_rollback.summary()
    assert set(during_rollback.versions_sent_after(rolled)) == {v1}
    assert load(Path(blue_live.deploy.state_dir)).live == "blue"
    print(f"rollback: {back.summary()}\n  load: {during_rollback.summary()}")
    # Both colours logged what they served where the monitor looks (one file per worker).
    logs = slots.prediction_log_path(Path(blue_live.deploy.state_dir), "blue").parent
    for colour, model in (("green", v2), ("blue", v1)):
        files = predictions.log_files(str(logs / f"predictions-{colour}*.jsonl*"))
        assert files, sorted(p.name for p in logs.iterdir())
        served = [e for e in predictions.read(files) if e["model_version"] == model]
        assert len(served) > 10, len(served)  # the load's answers (earlier tests' models too)


def _environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def test_nothing_the_deploy_leaves_running_carries_the_runner_job_mark(blue_live: Config) -> None:
    state_dir = Path(blue_live.deploy.state_dir)
    state = load(state_dir)
    router = Router(state.deployed(blue_live.deploy), state_dir)
    master = router._master()
    assert master is not None
    left = [master, *slots.descendants(master)]
    for slot in state.slots.values():  # both colours: one live, one in its rollback window
        left += [slot.pid, *slots.descendants(slot.pid)]
    left += [int(p.read_text()) for p in state_dir.glob("retire-*.pid")]
    assert len(state.slots) == 2
    assert len(left) > 6, left  # the router and its worker, servers, their workers, a retire
    control = subprocess.run(["env"], capture_output=True, check=True).stdout.splitlines()
    assert f"{RUNNER_MARK}=github_blue-green-test".encode() in control  # a plain start has it
    marked = [
        pid for pid in left if any(v.startswith(f"{RUNNER_MARK}=".encode()) for v in _environ(pid))
    ]
    assert marked == [], [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in marked]


def test_the_load_check_fails_when_the_live_colour_dies_under_it(
    blue_live: Config, bentos: Bentos
) -> None:
    """Negative control: both client modes of the harness see a colour killed under them."""
    state = load(Path(blue_live.deploy.state_dir))
    assert state.live == "blue"
    green = state.slots["green"]  # still running, in its rollback window
    assert slots.healthy(green, blue_live.deploy)
    router = Router(blue_live.deploy, Path(blue_live.deploy.state_dir))
    with Loads(_router(blue_live) + "/forecast") as unsafe:
        slots.kill(state.slots["blue"])  # no drain, no switch first: what a deploy never does
        time.sleep(1)
        router.apply(Route({"green": 100}))
        switched = time.perf_counter()
        # Requests sent to the dead colour wait out HAProxy's retries (a second apart) first.
        time.sleep(4)
    for mode, run in unsafe.by_mode.items():
        assert run.failures, f"{mode}: the harness saw no failure: {unsafe.summary()}"
        # and the same clients were answered by green once the router sent them there
        assert run.versions_sent_after(switched)[green.model] > 0, (mode, unsafe.summary())

    # Put the deployment back in a known state for the tests that follow.
    rollout.stop_all(blue_live)
    rollout.deploy(bentos.v1, blue_live)


def test_shadow_and_canary_promote_a_healthy_green(blue_live: Config, bentos: Bentos) -> None:
    deploy = dataclasses.replace(
        blue_live.deploy,
        shadow=dataclasses.replace(blue_live.deploy.shadow, enabled=True, seconds=2),
        canary=dataclasses.replace(
            # The latency limit has a test of its own (a canary over it); here it is lifted,
            # so that a loaded machine does not decide whether a healthy green is promoted.
            blue_live.deploy.canary,
            enabled=True,
            steps=[25, 100],
            step_seconds=2,
            max_p99_ms=10_000,
        ),
    )
    with Loads(_router(blue_live) + "/forecast") as load_run:
        outcome = rollout.deploy(bentos.v2, dataclasses.replace(blue_live, deploy=deploy))
    assert load_run.failures == [], load_run.summary()
    assert outcome.colour == "green"
    assert any(note.startswith("shadow: 2 s mirrored") for note in outcome.notes), outcome.notes
    canary = next(note for note in outcome.notes if note.startswith("canary 25 %"))
    assert int(canary.split(": ")[1].split(" ")[0]) > 0, canary  # green answered real traffic


def test_a_rollback_after_the_window_redeploys_the_previous_bento(
    blue_live: Config, bentos: Bentos
) -> None:
    state_dir = Path(blue_live.deploy.state_dir)
    state = load(state_dir)
    assert (state.live, state.slots["green"].bento) == ("green", bentos.v2)
    assert rollout.retire("blue", state.slots["blue"].bento, state_dir, blue_live.deploy)
    back = rollout.rollback(blue_live)
    assert (back.action, back.colour, back.bento) == ("rollback", "blue", bentos.v1)
    assert "ready" in back.seconds  # through the same steps: started, ready, checked, switched
    assert _served_version(blue_live) == bentos.model(bentos.v1)


def test_undeploy_also_ends_the_retirement_waiting_for_its_window(
    blue_live: Config, bentos: Bentos
) -> None:
    state_dir = Path(blue_live.deploy.state_dir)
    live = load(state_dir).live
    rollout.deploy(bentos.v2 if live == "blue" else bentos.v1, blue_live)
    pid_file = state_dir / f"retire-{live}.pid"
    retiring = int(pid_file.read_text(encoding="utf-8"))
    assert slots.alive(retiring)  # asleep for the 900 s window
    rollout.stop_all(blue_live)
    assert not slots.alive(retiring)
    assert not pid_file.exists()
