"""The OpenAPI spec as the service really answers, and the GET routes beside the API.

BentoML documents 400, 404 and 500 for every API with its own error model. The service answers
400 (invalid request), 405 (another method), 413 (body too large), 415 (not JSON), 503 (not
ready, or no capacity data) and 504 (BentoML's request timeout), each with `ErrorResponse`, and
never 404 or 500 on purpose; the spec here says so, and documents ``GET /metadata`` and
``POST /observations``.

The spec also says what the served model and the clock take (`Served`): its sale kinds, its
horizon, the packaged limit of planned sales, the years a sale and an observed hour may name.
A request the spec calls valid is answered, not refused: schemathesis checks exactly that.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from traffic_forecast.core.config import WEEK_HOURS, ServingConfig
from traffic_forecast.serving.contract import (
    EXAMPLE_OBSERVATIONS,
    EXAMPLE_SALE,
    MAX_EVENTS,
    ErrorResponse,
    ObservationsRequest,
    ObservationsResponse,
)
from traffic_forecast.serving.hours import FIRST_YEAR, LAST_YEAR, hour_pattern, sale_years
from traffic_forecast.serving.ingest import IngestTarget, observations_view

if TYPE_CHECKING:
    from traffic_forecast.serving.engine import ForecastEngine

ERRORS = {
    "400": "Invalid request: the body is not valid JSON, or a field is wrong (see detail)",
    "413": "Request body larger than serving.max_body_bytes",
    "415": "Content-Type is not application/json",
    "503": "Not ready (model loading or failed its self-check), no capacity data, or too many "
    "what-ifs at once (with Retry-After)",
    "504": "The request took longer than the service's timeout",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
METADATA, OBSERVATIONS = "/metadata", "/observations"
# The methods of the routes mounted here: any other gets the guard's JSON 405.
ROUTE_METHODS = {METADATA: ("GET", "HEAD"), OBSERVATIONS: ("POST",)}
METHOD_NOT_ALLOWED = {
    "description": "A method this path does not take: the Allow header lists those it does",
    "headers": {
        "Allow": {
            "description": "The methods the path takes",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    "content": {"application/json": {"schema": ERROR_REF}},
}
# OpenAPI documents responses per operation only: each operation of a path refers to this one.
METHOD_NOT_ALLOWED_REF = {"$ref": "#/components/responses/MethodNotAllowed"}
METADATA_PATH = {
    "get": {
        "summary": "Lineage of the model being served",
        "description": "Model tag, git commit, data version, config and its hash, training "
        "window, backtest metrics, library versions.",
        "operationId": "traffic_forecast__metadata",
        "tags": ["Service APIs"],
        "responses": {
            "200": {
                "description": "The model card and its metrics",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "405": METHOD_NOT_ALLOWED_REF,
            "503": {
                "description": "The service is not built yet",
                "content": {"application/json": {"schema": ERROR_REF}},
            },
        },
    }
}


INGEST_ERRORS = {
    "400": "A malformed body, or a row failing the raw traffic's checks (rows and checks named)",
    "401": "No or a wrong bearer token",
    "413": "Request body larger than serving.max_ingest_bytes",
    "415": "Content-Type is not application/json",
    "503": "Ingest is off (no token set), or the store cannot be written; nothing was stored",
}

Contract = dict[str, tuple[type[BaseModel], type[BaseModel]]]  # path: (request, response)


def _observations_path(schema_of: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "Stored (or already stored); where the forecast now starts",
            "content": {"application/json": {"schema": schema_of(ObservationsResponse)}},
        }
    }
    for code, description in INGEST_ERRORS.items():
        responses[code] = {
            "description": description,
            "content": {"application/json": {"schema": ERROR_REF}},
        }
    responses["405"] = METHOD_NOT_ALLOWED_REF
    return {
        "post": {
            "summary": "Store observed hours (live actuals): the forecast moves on with them",
            "operationId": "traffic_forecast__observations",
            "tags": ["Service APIs"],
            "security": [{"IngestToken": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": schema_of(ObservationsRequest),
                        "example": EXAMPLE_OBSERVATIONS,
                    }
                },
            },
            "responses": responses,
        }
    }


@dataclass(frozen=True)
class Served:
    """What the served model and the clock take, beyond the contract's own bounds."""

    sale_kinds: tuple[str, ...] = ()
    max_horizon: int = WEEK_HOURS
    max_events: int = MAX_EVENTS
    sale_years: tuple[int, int] = (FIRST_YEAR, LAST_YEAR)
    last_observable_year: int = LAST_YEAR  # an hour after now is not observed yet


def served(engine: ForecastEngine | None, serving: ServingConfig, now: pd.Timestamp) -> Served:
    """What ``engine`` (None: not ready) and ``serving`` take at ``now`` (site-local)."""
    latest = now + pd.Timedelta(hours=serving.max_future_hours)
    observable = min(latest.year, LAST_YEAR)
    if engine is None:
        return Served(max_events=serving.max_events, last_observable_year=observable)
    return Served(
        sale_kinds=tuple(engine.artifacts.sale_kinds),
        max_horizon=engine.max_horizon,
        max_events=serving.max_events,
        sale_years=sale_years(engine.origin, engine.timestamps[-1]),
        last_observable_year=observable,
    )


def _example_sale(year: int, kind: str) -> dict[str, Any]:
    """The contract's example sale, moved to ``year`` (one the service takes)."""
    return {
        **EXAMPLE_SALE,
        "start": f"{year:04d}{EXAMPLE_SALE['start'][4:]}",
        "end": f"{year:04d}{EXAMPLE_SALE['end'][4:]}",
        "kind": kind,
    }


def _what_the_model_takes(
    schemas: dict[str, Any], requests: list[dict[str, Any]], takes: Served
) -> None:
    """Narrow the request schemas to what the served model and the clock take."""
    for request in requests:
        properties = request["properties"]
        properties["events"]["maxItems"] = takes.max_events
        properties["horizon"]["anyOf"][0]["maximum"] = takes.max_horizon
    sale = schemas.get("PlannedSale")
    if sale is not None:
        first, last = takes.sale_years
        kinds = list(takes.sale_kinds) or [EXAMPLE_SALE["kind"]]
        year = min(max(int(EXAMPLE_SALE["start"][:4]), first), last)
        example = _example_sale(year, kinds[0])
        for name in ("start", "end"):
            field = sale["properties"][name]
            field["pattern"] = hour_pattern(first, last)
            field["examples"] = [example[name]]
        if takes.sale_kinds:
            sale["properties"]["kind"]["enum"] = kinds
        sale["properties"]["kind"]["examples"] = [example["kind"]]
        # Here, not in the pydantic model: BentoML's own spec cannot hold a model's examples.
        sale["examples"] = [example]
    observed = schemas.get("ObservedHour")
    if observed is not None:
        stamp = observed["properties"]["timestamp"]
        stamp["pattern"] = hour_pattern(FIRST_YEAR, takes.last_observable_year)


def documented(spec: dict[str, Any], contract: Contract, takes: Served) -> dict[str, Any]:
    """BentoML's spec with the API's own schemas and real error responses, and ``/metadata``.

    The request and response schemas are the pydantic models' own: BentoML's copies drop
    ``null`` from optional fields, so its spec refuses the ``null`` the API accepts. What the
    served model ``takes`` is stated, so clients and fuzzers can see it (its sale kinds, too).
    """
    fixed = copy.deepcopy(spec)
    # BentoML labels the spec 3.0.2 but embeds pydantic's JSON Schema 2020-12 (numeric
    # exclusiveMaximum, type null), which is what OpenAPI 3.1 uses: say so, and validators agree.
    fixed["openapi"] = "3.1.0"
    components = fixed.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorResponse"] = ErrorResponse.model_json_schema()
    components.setdefault("responses", {})["MethodNotAllowed"] = METHOD_NOT_ALLOWED

    def schema_of(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        return schema

    requests = []
    for path, (request, response) in contract.items():
        operation = fixed["paths"][path]["post"]
        body = operation["requestBody"]
        body["required"] = True  # an empty body is refused (400): send {} for the defaults
        schema = body["content"]["application/json"]["schema"] = schema_of(request)
        requests.append(schema)
        ok_body = {"application/json": {"schema": schema_of(response)}}
        responses: dict[str, Any] = {
            "200": {"description": "Successful Response", "content": ok_body}
        }
        for code, description in ERRORS.items():
            responses[code] = {
                "description": description,
                "content": {"application/json": {"schema": ERROR_REF}},
            }
        responses["405"] = METHOD_NOT_ALLOWED_REF
        operation["responses"] = responses
    fixed["paths"][METADATA] = METADATA_PATH
    fixed["paths"][OBSERVATIONS] = _observations_path(schema_of)
    _what_the_model_takes(schemas, requests, takes)
    components.setdefault("securitySchemes", {})["IngestToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The service's TRAFFIC_FORECAST_INGEST_TOKEN",
    }
    return fixed


def routes_app(
    metadata: Callable[[], dict[str, Any] | None],
    spec: Callable[[], dict[str, Any]],
    ingest: Callable[[], IngestTarget | None],
) -> Starlette:
    """``GET /metadata``, ``GET /openapi.json`` (also at ``/docs.json``), ``POST /observations``."""

    async def observations(request: Request) -> JSONResponse:
        return await observations_view(request, ingest())

    async def metadata_view(_: Request) -> JSONResponse:
        card = metadata()
        if card is None:
            return JSONResponse({"error": "the service is not built yet"}, status_code=503)
        return JSONResponse(card)

    async def spec_view(_: Request) -> JSONResponse:
        return JSONResponse(spec())

    return Starlette(
        routes=[
            Route(METADATA, metadata_view, methods=["GET"]),
            Route("/openapi.json", spec_view, methods=["GET"]),
            Route(OBSERVATIONS, observations, methods=["POST"]),
            # Mounted apps match before BentoML's own /docs.json: its UI shows this spec too.
            Route("/docs.json", spec_view, methods=["GET"]),
        ]
    )
