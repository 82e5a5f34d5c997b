"""``POST /observations``: actuals over HTTP, behind a bearer token, stored all or nothing.

The order of refusals is the order a client can fix them in: ingest switched off (503), no or
a wrong token (401), the store unavailable (503), not JSON (415), too large (413) or empty
(400) by the API's own checks (`guard`), a malformed body (400), then the data rules of the
pipeline's raw traffic (400, naming rows and checks).
Nothing is stored unless every row passes. Reading forecasts needs no token.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Protocol

import pandas as pd
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from traffic_forecast.core.config import ServingConfig
from traffic_forecast.data.observations import Batch, BatchRejectedError, check_batch
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.data.store import StoreUnavailableError
from traffic_forecast.serving.contract import ObservationsRequest, ObservedHour
from traffic_forecast.serving.guard import EMPTY, check_headers, read_body
from traffic_forecast.serving.live import site_now

TOKEN_ENV = "TRAFFIC_FORECAST_INGEST_TOKEN"
SOURCE = "POST /observations"
API_NAMES = {TrafficRaw.target: "sessions"}  # the pipeline's column: the API's field
API_COLUMNS = {api: pipeline for pipeline, api in API_NAMES.items()}


class IngestTarget(Protocol):
    """What the endpoint needs of the running service."""

    serving: ServingConfig

    def ingest_unavailable(self) -> str | None:
        """Why observations cannot be stored now, or None."""

    async def store_observations(self, batch: Batch) -> dict[str, Any]:
        """Store ``batch``, move the model, say what happened (or `StoreUnavailableError`)."""


def _refused(status: int, error: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, **extra}, status_code=status, headers=headers)


def authorized(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if header is None:
        return False
    scheme, _, given = header.partition(" ")
    matches = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and matches


def as_text(request: ObservationsRequest) -> pd.DataFrame:
    """The batch as text cells in the pipeline's column names, as a CSV file would give it."""
    hours = request.observations
    columns = {
        API_COLUMNS.get(name, name): [
            None if value is None else str(value)
            for value in (getattr(hour, name) for hour in hours)
        ]
        for name in ObservedHour.model_fields
    }
    return pd.DataFrame(columns, dtype=object)


def _gate(request: Request, target: IngestTarget | None) -> JSONResponse | None:
    """The refusal for a request that may not store anything now, else None."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return _refused(503, f"ingest is off: the service has no {TOKEN_ENV} in its environment")
    if not authorized(request.headers.get("authorization"), token):
        return _refused(401, "send the ingest token: Authorization: Bearer <token>")
    if target is None:
        return _refused(503, "the service is not built yet")
    reason = target.ingest_unavailable()
    if reason is not None:
        return _refused(503, reason)
    return None


async def _body(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, or its refusal: the API's own checks (`guard`), in this endpoint's words."""
    refusal = check_headers(request.scope, limit)
    body = b""
    if refusal is None:
        body, refusal = await read_body(request.receive, limit)
    if refusal is None:
        return body
    if refusal is EMPTY:
        return _refused(400, 'empty body: send {"observations": [...]}')
    if refusal.status == 413:
        return _refused(413, f"body exceeds serving.max_ingest_bytes ({limit} bytes)")
    return _refused(refusal.status, refusal.error)


async def observations_view(request: Request, target: IngestTarget | None) -> JSONResponse:
    """Store a batch of observed hours; the answer says where the forecast now starts."""
    refusal = _gate(request, target)
    if refusal is not None:
        return refusal
    assert target is not None  # _gate refuses without one
    body = await _body(request, target.serving.max_ingest_bytes)
    if isinstance(body, JSONResponse):
        return body
    try:
        parsed = ObservationsRequest.model_validate_json(body)
    except ValidationError as exc:
        detail = exc.errors(include_url=False, include_context=False, include_input=False)
        return _refused(400, f"invalid body: {exc.error_count()} error(s)", detail=detail)
    try:
        batch = check_batch(
            as_text(parsed),
            "observations",
            now=site_now(),
            max_future_hours=target.serving.max_future_hours,
            file_names=API_NAMES,
        )
    except BatchRejectedError as exc:
        return _refused(400, str(exc), detail=exc.detail())
    try:
        return JSONResponse(await target.store_observations(batch))
    except StoreUnavailableError as exc:
        return _refused(503, f"nothing stored: {exc}")
