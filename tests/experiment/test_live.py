"""An experiment for real: HAProxy, a champion and a challenger ``bentoml serve``, the guard.

Shadow: every request is answered by the champion and forecast by the challenger, both logged
under the experiment with their arm. Split: the challenger answers its clients; when it answers
them with errors (a challenger Bento without capacity data: ``/capacity`` is 503), the guard cuts
it off within a check interval and the champion's answers are all in its log.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.deploy.bentos import BuiltBentos
from tests.packaged import Packaged
from tests.serving.server import free_port, on_free_ports
from traffic_forecast.core.config import Config
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.deploy import checks, prometheus, rollout, slots
from traffic_forecast.deploy.state import DeployError, load
from traffic_forecast.experiment import demo, run
from traffic_forecast.experiment.record import CHALLENGER, CHAMPION, ENDED, STOPPED
from traffic_forecast.serving import predictions
from traffic_forecast.serving.guard import ARM_HEADER, EXPERIMENT_HEADER, VERSION_HEADER

pytestmark = [pytest.mark.slow, pytest.mark.serial]
CHECK_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Bentos:
    """The champion, and two challengers."""

    champion: str
    naive: str  # seasonal naive: forecasts well-formed, worse
    no_capacity: str  # /capacity answers 503: a challenger returning errors


@pytest.fixture(scope="module")
def bentos(built: BuiltBentos) -> Bentos:
    return Bentos(built.plain, built.naive, built.no_capacity)


@pytest.fixture(scope="module")
def deployed(
    base_config: Config, bentos: Bentos, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Config]:
    root = tmp_path_factory.mktemp("experiment")
    deploy = on_free_ports(
        base_config.deploy,
        state_dir=str(root / "state"),
        ready_timeout_s=90,
        stop_timeout_s=20,
    )
    guardrails = dataclasses.replace(
        base_config.experiment.guardrails, check_interval_s=CHECK_INTERVAL_S, min_requests=5
    )
    experiment = dataclasses.replace(base_config.experiment, guardrails=guardrails)
    cfg = dataclasses.replace(base_config, deploy=deploy, experiment=experiment)
    rollout.deploy(bentos.champion, cfg)
    try:
        yield cfg
    finally:
        rollout.stop_all(cfg)


@dataclass
class Answer:
    """What one client saw."""

    client: str
    path: str
    status: int
    model: str | None
    experiment: str | None
    arm: str | None
    sent: float
    at: float  # when the answer arrived


@dataclass
class Clients:
    """Clients with keys c0…c<n-1>, in turn, on one keep-alive connection, until stopped."""

    url: str
    paths: tuple[str, ...] = ("/forecast", "/capacity")
    n: int = 200
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Clients:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            turn = 0
            while not self._stop.is_set():
                key, path = f"c{turn % self.n}", self.paths[turn % len(self.paths)]
                sent = time.time()
                response = client.post(path, json={"horizon": 24}, headers={"X-Client-Id": key})
                headers = response.headers
                self.answers.append(
                    Answer(
                        key,
                        path,
                        response.status_code,
                        headers.get(VERSION_HEADER),
                        headers.get(EXPERIMENT_HEADER),
                        headers.get(ARM_HEADER),
                        sent,
                        time.time(),
                    )
                )
                turn += 1


def _router(cfg: Config) -> str:
    return f"http://{cfg.deploy.host}:{cfg.deploy.router_port}"


def _logged(cfg: Config, experiment_id: str, count: int) -> list[dict[str, object]]:
    pattern = str(Path(cfg.deploy.state_dir).absolute() / "logs" / "predictions-*.jsonl*")
    deadline = time.monotonic() + 15  # written off the request path, a moment later
    while True:
        entries = [
            e
            for e in predictions.read(predictions.log_files(pattern))
            if e.get("experiment") == experiment_id
        ]
        if len(entries) >= count or time.monotonic() > deadline:
            return entries


def test_a_challenger_failing_the_smoke_test_never_starts(deployed: Config, bentos: Bentos) -> None:
    with pytest.raises(run.ExperimentError, match="capacity answered 503"):
        run.start(bentos.no_capacity, deployed, experiment_id="exp-refused")
    state = load(Path(deployed.deploy.state_dir))
    assert set(state.slots) == {"blue"}
    assert state.experimenting() is None


def test_shadow_logs_both_arms_for_the_same_requests(deployed: Config, bentos: Bentos) -> None:
    cfg = dataclasses.replace(
        deployed, experiment=dataclasses.replace(deployed.experiment, mode="shadow")
    )
    experiment = run.start(bentos.naive, cfg, experiment_id="exp-shadow")
    assert (experiment.champion.colour, experiment.challenger.colour) == ("blue", "green")
    with pytest.raises(DeployError, match="experiment exp-shadow runs"):
        rollout.deploy(bentos.champion, cfg)  # the idle colour is the challenger's
    with Clients(_router(cfg), paths=("/forecast",)) as clients:
        time.sleep(3)
    answered = [a for a in clients.answers if a.status == 200]
    assert answered
    assert {(a.experiment, a.arm, a.model) for a in answered} == {
        ("exp-shadow", CHAMPION, experiment.champion.model)
    }
    entries = _logged(cfg, "exp-shadow", 2 * len(answered))
    by_arm = {
        arm: [
            e
            for e in entries
            if e["arm"] == arm and e["model_version"] == experiment.arm(arm).model
        ]
        for arm in (CHAMPION, CHALLENGER)
    }
    assert len(by_arm[CHAMPION]) == len(answered)
    assert len(by_arm[CHALLENGER]) == len(answered)  # a copy of each, forecast by the challenger
    assert {e["origin"] for e in by_arm[CHALLENGER]} == {e["origin"] for e in by_arm[CHAMPION]}

    ended = run.stop(cfg)
    assert ended.status == STOPPED
    state = load(Path(cfg.deploy.state_dir))
    assert set(state.slots) == {"blue"}  # the challenger stopped
    assert slots.port_free(cfg.deploy.host, cfg.deploy.green_port)
    response = httpx.post(_router(cfg) + "/forecast", json={"horizon": 1})
    assert EXPERIMENT_HEADER not in response.headers
    assert response.headers[VERSION_HEADER] == experiment.champion.model


def test_a_challenger_returning_errors_is_cut_off_and_nothing_is_lost(
    deployed: Config, bentos: Bentos, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(
        deployed, experiment=dataclasses.replace(deployed.experiment, mode="split", share=0.5)
    )
    # A fault the start's smoke test misses (it would refuse this one: it asks for capacity too),
    # which is what guardrails are for: the smoke test passes it here.
    monkeypatch.setattr(checks, "smoke", lambda *_: {})
    experiment = run.start(bentos.no_capacity, cfg, experiment_id="exp-split")
    state_dir = Path(cfg.deploy.state_dir)
    with Clients(_router(cfg)) as clients:
        deadline = time.monotonic() + 30
        while run.current(state_dir).status != ENDED and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.1)
        time.sleep(1)  # the champion alone, under the same clients
    ended = run.current(state_dir)
    assert ended is not None
    assert ended.status == ENDED, ended
    assert ended.breach is not None
    assert ended.breach["error_rate"] > cfg.experiment.guardrails.max_error_rate
    assert ended.end_reason is not None
    assert ended.end_reason.startswith("guardrail: breached: error rate")
    errors = [a for a in clients.answers if a.status >= 500]
    assert errors
    assert {a.arm for a in errors} == {CHALLENGER}
    # Found within one check interval of the first error (plus the check's own time) …
    first_error = min(a.at for a in errors)
    found = float(ended.breach["at"])
    assert found - first_error <= CHECK_INTERVAL_S + 1.0
    # … and from then on the champion answers everyone (a request sent before it may still be
    # answered by the challenger: it finishes where it was routed).
    assert ended.ended_at is not None
    after = [a for a in clients.answers if a.sent > ended.ended_at]
    assert after
    assert {(a.status, a.model) for a in after} == {(200, experiment.champion.model)}
    # Every answer the champion gave under the experiment is in its prediction log.
    champion = [a for a in clients.answers if a.experiment == "exp-split" and a.arm == CHAMPION]
    logged = [
        e
        for e in _logged(cfg, "exp-split", len(champion))
        if e["arm"] == CHAMPION and e["model_version"] == experiment.champion.model
    ]
    assert len(logged) == len(champion) > 0
    deadline = time.monotonic() + 60  # the challenger finishes its requests, then stops
    while set(load(state_dir).slots) != {"blue"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(load(state_dir).slots) == {"blue"}
    print(
        f"\nguardrail: {len(errors)} errors, breach found {found - first_error:.1f} s after the "
        f"first, champion alone {ended.ended_at - found:.1f} s later; {len(champion)} champion "
        "answers, all logged"
    )


def _api(base: str, path: str, **params: str) -> Any:
    answer = httpx.get(f"{base}/api/v1/{path}", params=params, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def _slot_targets(base: str) -> list[dict[str, str]]:
    targets = _api(base, "targets", state="active")["activeTargets"]
    return [t["labels"] | {"health": t["health"]} for t in targets]


def test_prometheus_scrapes_both_arms_and_an_alert_goes_pending(
    deployed: Config, bentos: Bentos, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make observe` for real: Debian's Prometheus on the deployment, an A/B with errors."""
    never = dataclasses.replace(deployed.experiment.guardrails, check_interval_s=3600)
    cfg = dataclasses.replace(
        deployed,
        experiment=dataclasses.replace(
            deployed.experiment, mode="split", share=0.5, guardrails=never
        ),
        prometheus=dataclasses.replace(
            deployed.prometheus, port=free_port(), scrape_interval_s=1, evaluation_interval_s=1
        ),
    )
    monkeypatch.setattr(checks, "smoke", lambda *_: {})  # its /capacity answers 503: the errors
    started = time.monotonic()
    base = prometheus.start(cfg)
    try:
        experiment = run.start(bentos.no_capacity, cfg, experiment_id="exp-observed")
        wanted = {"TrafficForecastErrorRate", "TrafficForecastChallengerErrorRate"}
        with Clients(_router(cfg)):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                alerts = {a["labels"]["alertname"]: a for a in _api(base, "alerts")["alerts"]}
                if wanted <= set(alerts):
                    break
                time.sleep(0.5)
        alerted = time.monotonic() - started
        assert wanted <= set(alerts), alerts
        assert {alerts[name]["state"] for name in wanted} <= {"pending", "firing"}
        assert alerts["TrafficForecastChallengerErrorRate"]["labels"]["model_version"] == (
            experiment.challenger.model
        )
        # Each slot labelled by colour, model version and arm; the router too; all scraped.
        targets = _slot_targets(base)
        assert {t["health"] for t in targets} == {"up"}
        assert {
            (t["job"], t.get("colour"), t.get("model_version"), t.get("arm")) for t in targets
        } == {
            ("traffic-forecast", "blue", experiment.champion.model, CHAMPION),
            ("traffic-forecast", "green", experiment.challenger.model, CHALLENGER),
            ("traffic-forecast-router", None, None, None),
        }
        # The series arrived: the challenger's errors, the champion's answers, by arm.
        counted = {
            (r["metric"]["arm"], r["metric"]["outcome"]): float(r["value"][1])
            for r in _api(
                base,
                "query",
                query="sum by (arm, outcome) (traffic_forecast_requests_total{arm!=''})",
            )["result"]
        }
        assert counted[(CHALLENGER, "error")] > 0
        assert counted[(CHAMPION, "ok")] > 0
        assert (CHAMPION, "error") not in counted
        # The experiment ends: Prometheus follows the deployment's targets without a reload.
        run.stop(cfg)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            slots_seen = [t for t in _slot_targets(base) if t["job"] == "traffic-forecast"]
            if [t.get("colour") for t in slots_seen] == ["blue"]:
                break
            time.sleep(0.5)
        assert [(t.get("colour"), t.get("arm")) for t in slots_seen] == [("blue", None)]
    finally:
        stopped = prometheus.stop(cfg)
    assert stopped
    assert slots.port_free(cfg.prometheus.host, cfg.prometheus.port)
    print(f"\nprometheus: both alerts pending {alerted:.1f} s after its start")


def test_the_demo_runs_to_a_decision_and_writes_the_report(
    deployed: Config, packaged: Packaged, tmp_path: Path
) -> None:
    # The champion's own history, a week repeated with noise: the live hours after its end.
    history = pd.read_parquet(Path(packaged.cfg.paths.validated_dir) / "traffic.parquet")
    last_week = history[TrafficRaw.target].to_numpy(dtype=float)[-168:]
    after = pd.Timestamp(history[TrafficRaw.timestamp].max())
    hours = pd.date_range(after + pd.Timedelta(hours=1), periods=168, freq="h")
    noise = np.random.default_rng(0).normal(1.0, 0.05, len(hours))
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    pd.DataFrame({"timestamp": hours, "sessions": np.round(last_week * noise)}).to_csv(
        incoming / Path(packaged.cfg.data.traffic_file).name, index=False
    )
    # A one-day design of 6-hour forecasts: 30 live hours, one look (the suite's time is short).
    short = dataclasses.replace(
        deployed.experiment, mode="split", min_days=1, max_days=1, horizon=6
    )
    cfg = dataclasses.replace(
        packaged.cfg,
        deploy=deployed.deploy,
        experiment=short,
        monitor=dataclasses.replace(packaged.cfg.monitor, actuals_dir=str(incoming)),
    )
    result = demo.demo(cfg)
    assert result.verdict.decision == "keep champion"  # at max_days, with no promotion
    assert result.scored_origins == 24
    report = (Path(cfg.paths.reports_dir) / "experiment.md").read_text(encoding="utf-8")
    assert report.startswith(f"# Experiment `{result.experiment}`")
    assert result.verdict.decision in report
    ended = run.current(Path(cfg.deploy.state_dir))
    assert ended is not None
    assert (ended.status, ended.mode) == (STOPPED, "split")
    # A Bento name of its own: `deploy latest` never picks the demo's challenger.
    assert ended.challenger.bento.startswith(f"{demo.CHALLENGER_BENTO}:")
    assert set(load(Path(cfg.deploy.state_dir)).slots) == {"blue"}
