"""The third level: a real ``bentoml serve`` subprocess, as users and the deploy tooling run it.

Readiness, a forecast, a metrics scrape, schemathesis against the live OpenAPI spec, graceful
shutdown with requests in flight, and a model that fails its self-check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bentoml
import httpx
import pandas as pd
import pytest

from tests.packaged import Packaged
from tests.serving.server import Server, phases_passed, running, schemathesis
from traffic_forecast.serving import artifacts, predictions
from traffic_forecast.serving.contract import EXAMPLE_INPUT
from traffic_forecast.serving.guard import ARM_HEADER, EXPERIMENT_HEADER, VERSION_HEADER

pytestmark = [pytest.mark.slow, pytest.mark.serial]
SCHEMATHESIS_EXAMPLES = 40
SCHEMATHESIS_SEED = 20241202


SERVICE = "traffic_forecast.serving.service:TrafficForecast"


@pytest.fixture(scope="module")
def prediction_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predictions") / "predictions-test.jsonl"


@pytest.fixture(scope="module")
def server(
    packaged: Packaged, prediction_log: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "bentoml.log"
    env = {predictions.ENV: str(prediction_log)}
    with running(SERVICE, packaged.tag, log, env) as started:
        started.wait("/readyz", 200)
        yield started


def _sale(origin: str, offset: int) -> dict[str, Any]:
    start = pd.Timestamp(origin) + pd.Timedelta(hours=offset)
    end = start + pd.Timedelta(hours=3)
    return {
        "start": f"{start:%Y-%m-%dT%H:00:00}",
        "end": f"{end:%Y-%m-%dT%H:00:00}",
        "kind": "flash_sale",
    }


def test_a_forecast_from_the_live_server(server: Server, packaged: Packaged) -> None:
    response = httpx.post(server.url + "/forecast", json=EXAMPLE_INPUT)
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER] == packaged.tag
    assert len(response.json()["forecast"]) == EXAMPLE_INPUT["horizon"]
    assert httpx.get(server.url + "/livez").status_code == 200


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not in /metrics")


def test_metrics_show_requests_inputs_outputs_and_the_model(
    server: Server, packaged: Packaged
) -> None:
    origin = httpx.post(server.url + "/forecast", json={"horizon": 1}).json()["origin"]
    before = httpx.get(server.url + "/metrics").text
    ok_before = _metric(
        before, "traffic_forecast_requests_total", endpoint="/forecast", outcome="ok"
    )
    for _ in range(3):
        assert httpx.post(server.url + "/forecast", json={"horizon": 48}).status_code == 200
    what_if = {"horizon": 24, "events": [_sale(origin, 5)]}
    assert httpx.post(server.url + "/forecast", json=what_if).status_code == 200
    assert httpx.post(server.url + "/forecast", json={"horizon": 0}).status_code == 400
    text = httpx.get(server.url + "/metrics").text
    ok = _metric(text, "traffic_forecast_requests_total", endpoint="/forecast", outcome="ok")
    assert ok - ok_before == 4
    assert (
        _metric(text, "traffic_forecast_requests_total", endpoint="/forecast", outcome="rejected")
        >= 1
    )
    assert _metric(text, "traffic_forecast_what_if_requests_total", endpoint="/forecast") >= 1
    assert (
        _metric(text, "traffic_forecast_horizon_hours_bucket", endpoint="/forecast", le="48.0") >= 3
    )
    assert _metric(text, "traffic_forecast_level_count", endpoint="/forecast") >= 4
    assert _metric(text, "traffic_forecast_model_info", model_version=packaged.tag) == 1
    assert _metric(text, "bentoml_service_request_total", endpoint="/forecast") >= 5
    # The latency the README's alert table is set on.
    duration = "bentoml_service_request_duration_seconds_count"
    assert _metric(text, duration, endpoint="/forecast") >= 5
    assert _metric(text, "traffic_forecast_defaulted_inputs_total", field="coverage") >= 4
    assert _metric(text, "traffic_forecast_level_out_of_range_total", endpoint="/forecast") == 0
    assert _metric(text, "traffic_forecast_prediction_log_dropped_total") == 0


def test_every_answer_is_in_the_prediction_log(
    server: Server, packaged: Packaged, prediction_log: Path
) -> None:
    body = {"horizon": 6, "coverage": 0.8}
    answer = httpx.post(server.url + "/forecast", json=body).json()
    deadline = time.monotonic() + 10  # written off the request path, a moment later
    while time.monotonic() < deadline:
        files = sorted(prediction_log.parent.glob("predictions-test*.jsonl*"))
        entries = predictions.read(files)
        if any(e["request"] == body | {"events": []} for e in entries):
            break
        time.sleep(0.1)
    logged = [e for e in entries if e["request"] == body | {"events": []}]
    assert len(logged) == 1, entries[-3:]
    entry = logged[0]
    assert entry["model_version"] == packaged.tag
    assert (entry["endpoint"], entry["what_if"], entry["fallback"]) == ("/forecast", False, False)
    assert entry["origin"] == answer["origin"]
    assert entry["value"] == pytest.approx([h["value"] for h in answer["forecast"]], abs=1e-3)
    assert entry["upper"] == pytest.approx([h["upper"] for h in answer["forecast"]], abs=1e-3)


def _logged(prediction_log: Path, body: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10  # written off the request path, a moment later
    while True:
        entries = predictions.read(sorted(prediction_log.parent.glob("predictions-test*.jsonl*")))
        logged = [e for e in entries if e["request"] == body | {"events": []}]
        if logged or time.monotonic() > deadline:
            return logged
        time.sleep(0.1)


def test_an_experiment_s_request_is_logged_with_its_experiment_and_arm(
    server: Server, prediction_log: Path
) -> None:
    tagged, plain = {"horizon": 5, "coverage": 0.7}, {"horizon": 5, "coverage": 0.75}
    headers = {EXPERIMENT_HEADER: "exp-1", ARM_HEADER: "challenger"}
    assert httpx.post(server.url + "/forecast", json=tagged, headers=headers).status_code == 200
    assert httpx.post(server.url + "/forecast", json=plain).status_code == 200
    [entry] = _logged(prediction_log, tagged)
    assert (entry["experiment"], entry["arm"]) == ("exp-1", "challenger")
    [entry] = _logged(prediction_log, plain)
    assert "experiment" not in entry
    assert "arm" not in entry


def test_schemathesis_finds_no_failing_check_against_the_live_spec(
    server: Server, tmp_path: Path
) -> None:
    """Every check: what the spec calls valid is answered, what it calls invalid refused."""
    # This server has no ingest token, so POST /observations answers its documented 503:
    # test_live_serve.py fuzzes it with one.
    before = httpx.get(server.url + "/metrics").text
    done = schemathesis(
        server.url, tmp_path, "--exclude-path", "/observations",
        "--seed", str(SCHEMATHESIS_SEED), "--max-examples", str(SCHEMATHESIS_EXAMPLES),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:]
    assert phases_passed(done.stdout) == {"Examples", "Coverage", "Fuzzing"}, done.stdout[-3000:]
    after = httpx.get(server.url + "/metrics").text
    # Valid what-ifs were sent and answered: the hooks keep sales, they only turn them round.
    for endpoint in ("/forecast", "/capacity"):
        what_ifs = _what_ifs(after, endpoint) - _what_ifs(before, endpoint)
        assert what_ifs >= 5, (endpoint, what_ifs)


def _what_ifs(metrics: str, endpoint: str) -> float:
    """What-ifs answered so far (the series appears with the first)."""
    name = "traffic_forecast_what_if_requests_total"
    if f'{name}{{endpoint="{endpoint}"' not in metrics:
        return 0.0
    return _metric(metrics, name, endpoint=endpoint)


def test_graceful_shutdown_answers_the_requests_in_flight(
    packaged: Packaged, tmp_path: Path
) -> None:
    with running(SERVICE, packaged.tag, tmp_path / "bentoml.log") as live:
        live.wait("/readyz", 200)
        origin = httpx.post(live.url + "/forecast", json={"horizon": 1}).json()["origin"]
        # What-ifs queue on one thread per worker: 12 of them keep the server busy for a while.
        bodies = [{"horizon": 48, "events": [_sale(origin, 2 + i)]} for i in range(12)]
        with ThreadPoolExecutor(len(bodies)) as pool, httpx.Client(timeout=60) as http:
            pending = [pool.submit(http.post, live.url + "/forecast", json=b) for b in bodies]
            time.sleep(0.15)  # all sent, most not yet answered
            code = live.stop()
            statuses = [future.result().status_code for future in pending]
    assert statuses == [200] * len(bodies)
    assert code == 0


@pytest.fixture(scope="module")
def broken_model(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model whose forecaster file is damaged: it loads, but cannot forecast."""
    folder = tmp_path_factory.mktemp("broken")
    artifacts.gather(packaged.cfg, folder)
    (folder / "forecaster.zip").write_bytes(b"not a zip file")
    with bentoml.models.create("traffic-forecast-broken") as model:
        for path in folder.iterdir():
            (Path(model.path) / path.name).write_bytes(path.read_bytes())
    return str(model.tag)


def test_a_model_failing_its_self_check_never_becomes_ready(
    broken_model: str, tmp_path: Path
) -> None:
    with running(SERVICE, broken_model, tmp_path / "bentoml.log") as live:
        live.wait("/livez", 200)
        time.sleep(2)  # it had the time to become ready, had it been able to
        assert httpx.get(live.url + "/readyz").status_code == 503
        response = httpx.post(live.url + "/forecast", json=EXAMPLE_INPUT)
        assert response.status_code == 503
        assert response.json()["error"].startswith("the model failed its self-check")
        assert json.loads(httpx.get(live.url + "/metadata").text)["ready"] is False
