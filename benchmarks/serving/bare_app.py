"""The ceiling of the HTTP stack here: Starlette on uvicorn answering precomputed JSON.

Parses the request body like any JSON API (so it does the same HTTP work as the service) and
answers the bytes the BentoML service answered for a sample of the same kind of request
(``BARE_RESPONSE_FILE``), on the service's paths: one bare app per kind of request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = Path(os.environ["BARE_RESPONSE_FILE"]).read_bytes()


async def answer(request: Request) -> Response:
    json.loads(await request.body())
    return Response(BODY, media_type="application/json")


app = Starlette(
    routes=[Route(path, answer, methods=["POST"]) for path in ("/forecast", "/capacity")]
)
