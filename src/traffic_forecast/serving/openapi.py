"""The OpenAPI spec as the service really answers, and the GET routes beside the API.

BentoML documents 400, 404 and 500 for every API with its own error model. The service answers
400 (invalid request), 413 (body too large), 415 (not JSON), 503 (not ready, or no capacity
data) and 504 (BentoML's request timeout), each with `ErrorResponse`, and never 404 or 500 on
purpose; the spec here says so, and documents ``GET /metadata`` and ``POST /observations``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from traffic_forecast.serving.contract import (
    EXAMPLE_OBSERVATIONS,
    ErrorResponse,
    ObservationsRequest,
    ObservationsResponse,
)
from traffic_forecast.serving.ingest import IngestTarget, observations_view

ERRORS = {
    "400": "Invalid request: the body is not valid JSON, or a field is wrong (see detail)",
    "413": "Request body larger than serving.max_body_bytes",
    "415": "Content-Type is not application/json",
    "503": "Not ready (model loading or failed its self-check), or no capacity data",
    "504": "The request took longer than the service's timeout",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
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


def documented(spec: dict[str, Any], contract: Contract, sale_kinds: list[str]) -> dict[str, Any]:
    """BentoML's spec with the API's own schemas and real error responses, and ``/metadata``.

    The request and response schemas are the pydantic models' own: BentoML's copies drop
    ``null`` from optional fields, so its spec refuses the ``null`` the API accepts. The sale
    kinds the served model knows are listed, so clients and fuzzers can see them.
    """
    fixed = copy.deepcopy(spec)
    # BentoML labels the spec 3.0.2 but embeds pydantic's JSON Schema 2020-12 (numeric
    # exclusiveMaximum, type null), which is what OpenAPI 3.1 uses: say so, and validators agree.
    fixed["openapi"] = "3.1.0"
    schemas = fixed.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorResponse"] = ErrorResponse.model_json_schema()

    def schema_of(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        return schema

    for path, (request, response) in contract.items():
        operation = fixed["paths"][path]["post"]
        operation["requestBody"]["content"]["application/json"]["schema"] = schema_of(request)
        ok_body = {"application/json": {"schema": schema_of(response)}}
        responses: dict[str, Any] = {
            "200": {"description": "Successful Response", "content": ok_body}
        }
        for code, description in ERRORS.items():
            responses[code] = {
                "description": description,
                "content": {"application/json": {"schema": ERROR_REF}},
            }
        operation["responses"] = responses
    if sale_kinds and "PlannedSale" in schemas:
        schemas["PlannedSale"]["properties"]["kind"]["enum"] = sale_kinds
    fixed["paths"]["/metadata"] = METADATA_PATH
    fixed["paths"]["/observations"] = _observations_path(schema_of)
    fixed["components"].setdefault("securitySchemes", {})["IngestToken"] = {
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
            Route("/metadata", metadata_view, methods=["GET"]),
            Route("/openapi.json", spec_view, methods=["GET"]),
            Route("/observations", observations, methods=["POST"]),
            # Mounted apps match before BentoML's own /docs.json: its UI shows this spec too.
            Route("/docs.json", spec_view, methods=["GET"]),
        ]
    )
