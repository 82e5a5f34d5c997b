"""The spec the service serves says what it takes and how it refuses, through its ASGI app.

Its examples are answered, its bodies are required, a method a path does not take is a JSON 405
it documents, and what the served model takes (horizon, sales, years) is stated. Schemathesis
checks the same against a live server (test_serve.py, test_live_serve.py).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

from traffic_forecast.serving import service as service_module
from traffic_forecast.serving.hours import FIRST_YEAR, hour_pattern, sale_years
from traffic_forecast.serving.live import site_now
from traffic_forecast.serving.openapi import ROUTE_METHODS

API = ["/forecast", "/capacity"]


@pytest.fixture(scope="module")
def spec(asgi_client: TestClient) -> dict[str, Any]:
    served: dict[str, Any] = asgi_client.get("/openapi.json").json()
    return served


def _resolved(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def _example_sales(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The sale examples a client (or schemathesis) reads: the schema's, and one per field."""
    sale = spec["components"]["schemas"]["PlannedSale"]
    fields = {name: schema["examples"][0] for name, schema in sale["properties"].items()}
    return [*sale["examples"], fields]


def test_every_request_body_is_required_and_an_empty_one_refused(
    spec: dict[str, Any], asgi_client: TestClient
) -> None:
    for path in [*API, "/observations"]:
        assert spec["paths"][path]["post"]["requestBody"]["required"] is True
    for path in API:
        empty = asgi_client.post(path, headers={"content-type": "application/json"})
        assert empty.status_code == 400
        assert empty.json()["error"].startswith("empty body")


def test_the_example_sales_end_after_they_start(spec: dict[str, Any]) -> None:
    for sale in _example_sales(spec):
        assert pd.Timestamp(sale["end"]) > pd.Timestamp(sale["start"]), sale


@pytest.mark.parametrize("path", API)
def test_the_spec_examples_are_answered(
    spec: dict[str, Any], asgi_client: TestClient, path: str
) -> None:
    request = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = {
        name: schema["examples"][0]
        for name, schema in request["properties"].items()
        if "examples" in schema
    }
    assert fields  # horizon, coverage (and target_utilisation)
    for sale in _example_sales(spec):
        answer = asgi_client.post(path, json={**fields, "events": [sale]})
        assert answer.status_code == 200, (sale, answer.text)
        assert answer.json()["what_if"] is True


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/forecast"), ("PUT", "/capacity"), ("GET", "/observations"),
     ("DELETE", "/metadata"), ("PATCH", "/forecast")],
    ids=str,
)  # fmt: skip
def test_a_method_the_path_does_not_take_is_the_json_405_the_spec_documents(
    spec: dict[str, Any], asgi_client: TestClient, method: str, path: str
) -> None:
    answer = asgi_client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": f"{method} {path}: this path takes {answer.headers['allow']}"}
    documented = {name.upper() for name in spec["paths"][path]}
    assert set(answer.headers["allow"].split(", ")) - {"HEAD"} == documented
    for operation in spec["paths"][path].values():
        response = _resolved(spec, operation["responses"]["405"])
        assert response["headers"]["Allow"]["required"] is True
        body = response["content"]["application/json"]["schema"]
        assert _resolved(spec, body) == spec["components"]["schemas"]["ErrorResponse"]


def test_the_routes_beside_the_api_answer_405_for_every_path_they_name(
    asgi_client: TestClient,
) -> None:
    for path, methods in ROUTE_METHODS.items():
        assert asgi_client.request("OPTIONS", path).headers["allow"] == ", ".join(methods)


def test_the_spec_says_what_the_served_model_and_the_clock_take(spec: dict[str, Any]) -> None:
    running = service_module._running()
    assert running is not None
    engine = running._view().engine
    schemas = spec["components"]["schemas"]
    for path in API:
        request = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        properties = request["schema"]["properties"]
        assert properties["horizon"]["anyOf"][0]["maximum"] == engine.max_horizon
        assert properties["events"]["maxItems"] == running.serving.max_events
    sale = schemas["PlannedSale"]["properties"]
    years = sale_years(engine.origin, engine.timestamps[-1])
    assert sale["start"]["pattern"] == sale["end"]["pattern"] == hour_pattern(*years)
    assert sale["kind"]["enum"] == engine.artifacts.sale_kinds
    stamp = schemas["ObservedHour"]["properties"]["timestamp"]["pattern"]
    assert stamp == hour_pattern(FIRST_YEAR, site_now().year)
    assert re.fullmatch(stamp, f"{site_now():%Y-%m-%dT%H}:00:00")


@pytest.mark.parametrize("path", API)
def test_a_sale_outside_the_window_is_a_what_if_that_changes_nothing(
    asgi_client: TestClient, path: str
) -> None:
    """Valid by the spec, so answered: the plain forecast, marked as the what-if it was."""
    default = asgi_client.post(path, json={"horizon": 24}).json()
    origin = pd.Timestamp(default["origin"])
    later = origin + pd.Timedelta(days=30)  # after the whole forecast window
    sale = {"start": f"{later:%Y-%m-%dT%H}:00:00", "end": f"{later:%Y-%m-%d}T23:00:00",
            "kind": "flash_sale"}  # fmt: skip
    answer = asgi_client.post(path, json={"horizon": 24, "events": [sale]})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["what_if"], answer.json()["fallback"]) == (True, False)
    rows = "forecast" if path == "/forecast" else "hours"
    assert [hour["upper"] for hour in answer.json()[rows]] == pytest.approx(
        [hour["upper"] for hour in default[rows]]
    )
