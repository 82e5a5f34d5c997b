"""The service at two of BentoML's three testing levels: the class itself, and its ASGI app.

The third, a real ``bentoml serve``, is in test_serve.py. Every bad request here must get a 4xx
with a JSON reason; a 500 is a failure whatever its body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import subprocess
import time
from typing import Any

import bentoml
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from tests.conftest import REPO_ROOT
from tests.packaged import Packaged, quiet_evening
from traffic_forecast.serving import service as service_module
from traffic_forecast.serving.contract import EXAMPLE_INPUT, PlannedSale
from traffic_forecast.serving.guard import VERSION_HEADER
from traffic_forecast.serving.service import TrafficForecast


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def svc(packaged: Packaged) -> TrafficForecast:
    return TrafficForecast()


@pytest.fixture(scope="module")
def client(asgi_client: TestClient) -> TestClient:
    return asgi_client


def _sale_at(svc: TrafficForecast, offset_hours: int, hours: int = 4) -> dict[str, Any]:
    return _sale_from(svc._view().engine.origin + pd.Timedelta(hours=offset_hours), hours)


def _sale_from(start: pd.Timestamp, hours: int = 4) -> dict[str, Any]:
    return {
        "start": f"{start:%Y-%m-%dT%H:00:00}",
        "end": f"{start + pd.Timedelta(hours=hours):%Y-%m-%dT%H:00:00}",
        "kind": "flash_sale",
        "discount_pct": 40.0,
    }


# --- the class ------------------------------------------------------------------------------


def test_the_class_serves_the_packaged_model_from_the_origin(
    svc: TrafficForecast, packaged: Packaged
) -> None:
    answer = _run(svc.forecast(horizon=24))
    assert answer.model_version == packaged.tag
    assert len(answer.forecast) == 24
    assert answer.origin == svc._view().engine.origin.to_pydatetime()
    assert answer.forecast[0].timestamp == answer.origin
    assert (answer.fallback, answer.what_if, answer.coverage) == (False, False, 0.9)
    assert all(h.lower <= h.value <= h.upper for h in answer.forecast)
    assert svc.__is_ready__()


def test_the_default_horizon_and_coverage_come_from_the_packaged_config(
    svc: TrafficForecast,
) -> None:
    answer = _run(svc.forecast())
    assert len(answer.forecast) == svc.serving.default_horizon
    assert answer.coverage == svc.serving.default_coverage


def _planned(sale: dict[str, Any]) -> PlannedSale:
    return PlannedSale.model_validate_json(json.dumps(sale))  # as the API parses it


def test_a_what_if_within_budget_is_the_models_answer(svc: TrafficForecast) -> None:
    start = quiet_evening(svc._view().engine)
    offset = int((start - svc._view().engine.origin) / pd.Timedelta(hours=1))
    answer = _run(svc.forecast(horizon=offset + 24, events=[_planned(_sale_from(start))]))
    default = _run(svc.forecast(horizon=offset + 24))
    assert (answer.what_if, answer.fallback) == (True, False)
    pairs = list(zip(answer.forecast, default.forecast, strict=True))
    ratios = [ours.value / theirs.value for ours, theirs in pairs[offset : offset + 4]]
    assert min(ratios) > 1.0, ratios  # a 40 % flash sale brings visitors


def test_a_what_if_over_its_budget_is_answered_by_the_fallback(
    svc: TrafficForecast, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = svc._view().engine

    what_ifs = engine.what_ifs

    def slow(*args: Any) -> Any:
        time.sleep(0.3)  # a model far slower than its budget below
        return what_ifs(*args)

    monkeypatch.setattr(engine, "what_ifs", slow)
    monkeypatch.setattr(svc.what_ifs, "budget_s", 0.05)
    sale = _planned(_sale_at(svc, 10))
    answer = _run(svc.forecast(horizon=24, events=[sale]))
    assert (answer.what_if, answer.fallback) == (True, True)
    assert "over its 50 ms budget" in (answer.fallback_reason or "")
    fallback = engine.fallback(24, 0.9, "x")
    np.testing.assert_allclose([h.value for h in answer.forecast], fallback.value)


def test_a_failing_model_is_answered_by_the_fallback(
    svc: TrafficForecast, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("the model store is on fire")

    monkeypatch.setattr(svc._view().engine, "what_ifs", broken)
    sale = _planned(_sale_at(svc, 10))
    answer = _run(svc.forecast(horizon=24, events=[sale]))
    assert answer.fallback is True
    assert answer.fallback_reason == "the model failed on this scenario (see the service log)"
    assert "on fire" not in str(answer.fallback_reason)  # internal text stays in the log


def test_capacity_sizes_the_fleet_for_the_upper_forecast(svc: TrafficForecast) -> None:
    answer = _run(svc.capacity(horizon=24, target_utilisation=0.5))
    forecast = _run(svc.forecast(horizon=24))
    capacity = svc._view().engine.artifacts.capacity
    assert capacity is not None
    for hour, served in zip(answer.hours, forecast.forecast, strict=True):
        assert hour.upper == served.upper
        assert hour.instances == math.ceil(served.upper / (capacity.sessions_per_instance * 0.5))
    assert answer.peak_instances == max(h.instances for h in answer.hours)
    assert answer.sessions_per_instance == capacity.sessions_per_instance


def test_metadata_tells_where_the_model_came_from(svc: TrafficForecast, packaged: Packaged) -> None:
    meta = svc.metadata()
    card = json.loads((packaged.folder / "model_card.json").read_text(encoding="utf-8"))
    assert meta["model_tag"] == packaged.tag
    for key in ("data_version", "data", "config_hash", "training_window"):
        assert meta[key] == card[key]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    # The commit is where the model was packaged: a label, never part of the (DVC) card.
    assert meta["git_commit"] == meta["labels"]["git_commit"]
    assert meta["git_commit"] in {head, f"{head}-dirty"}
    assert meta["backtest_metrics"]["model"]["mase"] > 0
    # The packaged gradient boosting runs in its lean form (a model without one says why).
    assert meta["inference"] == {"path": "lean", "why_not_lean": None}
    assert meta["labels"]["data_version"] == card["data_version"]
    assert meta["ready"] is True


# --- the ASGI app ---------------------------------------------------------------------------


def test_the_app_answers_the_example_with_the_version_header(
    client: TestClient, packaged: Packaged
) -> None:
    response = client.post("/forecast", json=EXAMPLE_INPUT)
    assert response.status_code == 200
    assert response.headers[VERSION_HEADER] == packaged.tag
    body = response.json()
    assert len(body["forecast"]) == EXAMPLE_INPUT["horizon"]
    assert set(body["forecast"][0]) == {"timestamp", "value", "lower", "upper"}
    assert body["fallback"] is False


FAST_BODIES = [
    {},
    {"horizon": 1},
    {"horizon": 168},
    {"horizon": 24, "coverage": 0.8},
    {"horizon": 48, "events": []},
    {"coverage": 0.5},
    {"coverage": 0.123456},
]


def _what_if_bodies(svc: TrafficForecast) -> list[dict[str, Any]]:
    return [
        {"horizon": 48, "events": [_sale_at(svc, 20)]},
        {"horizon": 168, "coverage": 0.3, "events": [_sale_at(svc, 2, 30), _sale_at(svc, 90)]},
    ]


def _fast_and_api(
    client: TestClient, path: str, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    """The same request answered by the guard's fast path and by BentoML's API."""
    running = bentoml.get_current_service()
    fast = client.post(path, json=body)
    with monkeypatch.context() as patched:
        patched.setattr(running, "serving", dataclasses.replace(running.serving, fast_path=False))
        api = client.post(path, json=body)
    assert fast.headers["content-type"] == api.headers["content-type"]
    assert fast.headers[VERSION_HEADER] == api.headers[VERSION_HEADER]
    return fast, api


@pytest.mark.parametrize("path", ["/forecast", "/capacity"])
def test_the_fast_path_answers_what_the_api_answers(
    client: TestClient, svc: TrafficForecast, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for body in FAST_BODIES + _what_if_bodies(svc):
        fast, api = _fast_and_api(client, path, body, monkeypatch)
        assert (fast.status_code, api.status_code) == (200, 200), body
        assert fast.json() == api.json(), body


@pytest.mark.parametrize(
    "request_body",
    [{"horizon": 0}, {"horizon": "24"}, {"coverage": 1.0}, {"horizon": 24, "extra": 1},
     {"horizon": 500}],
    ids=json.dumps,
)  # fmt: skip
def test_the_fast_path_refuses_what_the_api_refuses_naming_the_request_model(
    client: TestClient, request_body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for path, model in (("/forecast", "ForecastRequest"), ("/capacity", "CapacityRequest")):
        fast, api = _fast_and_api(client, path, request_body, monkeypatch)
        assert (fast.status_code, api.status_code) == (400, 400)
        assert fast.json()["detail"] == api.json()["detail"]
        assert fast.json()["error"].endswith(f"validation error for {model}")


def test_a_full_what_if_queue_is_a_503_with_retry_after(
    client: TestClient, svc: TrafficForecast, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = bentoml.get_current_service()
    monkeypatch.setattr(running.what_ifs, "pending", running.what_ifs.capacity)
    busy = client.post("/forecast", json=_what_if_bodies(svc)[0])
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == str(service_module.RETRY_AFTER_S)
    assert "too many what-ifs" in busy.json()["error"]
    assert client.post("/forecast", json={"horizon": 24}).status_code == 200  # no what-if


def _bad_requests(svc: TrafficForecast) -> dict[str, tuple[dict[str, Any], int]]:
    json_headers = {"content-type": "application/json"}
    sale = _sale_at(svc, 10)
    years_away = _sale_at(svc, 3 * 366 * 24)  # past the year after the window's

    def body(value: Any) -> dict[str, Any]:
        return {"content": json.dumps(value), "headers": json_headers}

    def raw(text: str, content_type: str = "application/json") -> dict[str, Any]:
        return {"content": text, "headers": {"content-type": content_type}}

    return {
        "horizon-0": (body({"horizon": 0}), 400),
        "horizon-169": (body({"horizon": 169}), 400),
        "horizon-negative": (body({"horizon": -1}), 400),
        "horizon-string": (body({"horizon": "24"}), 400),
        "horizon-float": (body({"horizon": 24.5}), 400),
        "horizon-bool": (body({"horizon": True}), 400),
        "horizon-nan": (raw('{"horizon": NaN}'), 400),
        "coverage-0": (body({"coverage": 0}), 400),
        "coverage-1": (body({"coverage": 1.0}), 400),
        "coverage-nan": (raw('{"coverage": NaN}'), 400),
        "coverage-infinity": (raw('{"coverage": Infinity}'), 400),
        "discount-nan": (raw(json.dumps({"events": [sale]}).replace("40.0", "NaN")), 400),
        "utilisation-infinity": (raw('{"target_utilisation": Infinity}'), 400),
        # an int64 overflow of the instance count once answered 200 with a negative fleet
        "utilisation-tiny": (body({"target_utilisation": 1e-18}), 400),
        "sale-from-year-1-to-9999": (
            body(
                {"events": [{**sale, "start": "0001-01-01T00:00:00", "end": "9999-12-31T23:00:00"}]}
            ),
            400,
        ),
        "sale-ends-before-start": (body({"events": [{**sale, "end": sale["start"]}]}), 400),
        "sale-years-away": (body({"horizon": 24, "events": [years_away]}), 400),
        "sale-unknown-kind": (body({"events": [{**sale, "kind": "mega_sale"}]}), 400),
        "sale-off-the-hour": (
            body({"events": [{**sale, "start": sale["start"][:-5] + "30:00"}]}),
            400,
        ),
        "too-many-sales": (body({"horizon": 48, "events": [sale] * 21}), 400),
        "unknown-field": (body({"hours": 24}), 400),
        "not-an-object": (body([24]), 400),
        "malformed-json": (raw('{"horizon": 24'), 400),
        "empty-body": (raw(""), 400),
        "wrong-content-type": (raw('{"horizon": 24}', "text/plain"), 415),
        "no-content-type": ({"content": '{"horizon": 24}', "headers": {"content-type": ""}}, 415),
        "multipart-without-boundary": (raw("--x--", "multipart/form-data"), 415),
        "oversized": (raw(json.dumps({"horizon": 24, "pad": "x" * 70_000})), 413),
        "oversized-chunked": (
            {
                "content": iter([b'{"horizon": 24, "pad": "', b"x" * 70_000, b'"}']),
                "headers": json_headers,
            },
            413,
        ),
    }


BAD_CASES = [
    "horizon-0", "horizon-169", "horizon-negative", "horizon-string", "horizon-float",
    "horizon-bool", "horizon-nan", "coverage-0", "coverage-1", "coverage-nan",
    "coverage-infinity", "discount-nan", "utilisation-infinity", "utilisation-tiny",
    "sale-from-year-1-to-9999", "sale-ends-before-start",
    "sale-years-away", "sale-unknown-kind", "sale-off-the-hour", "too-many-sales",
    "unknown-field", "not-an-object", "malformed-json", "empty-body", "wrong-content-type",
    "no-content-type", "multipart-without-boundary", "oversized", "oversized-chunked",
]  # fmt: skip


@pytest.mark.parametrize("path", ["/forecast", "/capacity"])
@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_requests_get_a_4xx_with_a_json_reason(
    client: TestClient, svc: TrafficForecast, path: str, case: str
) -> None:
    request, status = _bad_requests(svc)[case]
    if case.startswith("utilisation") and path == "/forecast":
        status = 400  # an unknown field there: refused all the same
    response = client.post(path, **request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    reason = response.json()
    assert isinstance(reason, dict), reason
    assert isinstance(reason["error"], str), reason
    assert reason["error"], reason


def test_bad_requests_cover_the_issue_list() -> None:
    assert len(BAD_CASES) == len(set(BAD_CASES)) == 29


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_metadata_over_http(client: TestClient, packaged: Packaged) -> None:
    response = client.get("/metadata")
    assert response.status_code == 200
    assert response.json()["model_tag"] == packaged.tag
    assert response.headers[VERSION_HEADER] == packaged.tag


def test_the_spec_documents_the_errors_the_api_gives(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    for path in ("/forecast", "/capacity"):
        responses = spec["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "405", "413", "415", "503", "504"}
        assert responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    assert "get" in spec["paths"]["/metadata"]
    assert spec["components"]["schemas"]["PlannedSale"]["properties"]["kind"]["enum"]
    assert client.get("/docs.json").json() == spec


def test_a_model_failing_its_self_check_leaves_the_service_alive_and_never_ready(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Any) -> Any:
        raise ValueError("forecasts are NaN")

    monkeypatch.setattr(service_module, "ForecastEngine", broken)
    failed = TrafficForecast()
    assert failed.__is_ready__() is False
    reason = "the model failed its self-check: forecasts are NaN"
    assert failed.unavailable("/forecast") == reason
    assert failed.metadata()["not_ready_reason"] == reason


def test_not_ready_answers_503_with_the_reason_and_stays_alive(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = bentoml.get_current_service()  # the instance behind the app
    monkeypatch.setattr(running, "not_ready_reason", "the model failed its self-check: boom")
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 503
    response = client.post("/forecast", json=EXAMPLE_INPUT)
    assert response.status_code == 503
    assert response.json() == {"error": "the model failed its self-check: boom"}
