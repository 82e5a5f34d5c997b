"""An ASGI middleware in front of the API routes: refusals in JSON, the fast path, the version.

BentoML parses any body as JSON whatever its Content-Type, treats an empty body as ``{}`` and
reads bodies of any size; this answers those cases first, each with a 4xx and a JSON reason.
It also puts the model version on every response (blue/green checks the switch by it), counts
requests by outcome, and answers a method a route does not take with a JSON 405 and its
``Allow`` header (Starlette's is text). Pure ASGI: it adds microseconds, not a framework, per
request.

The fast path: the service answers ``POST /forecast`` and ``/capacity`` itself (`Reply`), past
BentoML's routing, input and output handling, which cost more than the forecast (README,
Benchmarks). It validates the body with the API's own request model and words refusals as
BentoML does; with ``serving.fast_path`` off, requests go on to BentoML's API instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

VERSION_HEADER = "x-model-version"
# An A/B experiment: the router sets these on every request (a client's own are removed) and on
# its answer (from the colour that answered); the service writes them into its prediction log.
EXPERIMENT_HEADER = "x-experiment-id"
ARM_HEADER = "x-experiment-arm"
# The experiment and arm of the request being answered ({"experiment": id, "arm": arm}), for the
# prediction log: set here per request, read where the answer is logged.
EXPERIMENT_TAGS: ContextVar[dict[str, str] | None] = ContextVar("experiment_tags", default=None)
READINESS_PATH = "/readyz"
JSON_TYPES = frozenset({b"application/json"})


class ServiceState(Protocol):
    """What the guard asks of the running service (`traffic_forecast.serving.service`)."""

    version: str
    max_body_bytes: int

    def unavailable(self, path: str) -> str | None:
        """Why ``path`` cannot answer now (not ready, no capacity data), or None."""

    def count(self, endpoint: str, status: int) -> None:
        """Count one answered request."""

    async def respond(self, path: str, body: bytes) -> Reply | None:
        """The whole answer to a POST of ``body`` to an API path, or None: the API answers."""

    def not_ready(self) -> str | None:
        """Why ``/readyz`` fails, or None."""


@dataclass(frozen=True)
class Reply:
    """An answer the service made for the guard to send: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True)
class Refusal:
    """A request answered here, before BentoML parses it."""

    status: int
    error: str


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def experiment_tags(scope: Scope) -> dict[str, str] | None:
    """The experiment and arm the router tagged the request with (None: no experiment)."""
    experiment = _header(scope, EXPERIMENT_HEADER.encode())
    arm = _header(scope, ARM_HEADER.encode())
    if experiment is None or arm is None:
        return None
    return {"experiment": experiment.decode("latin-1"), "arm": arm.decode("latin-1")}


def check_headers(scope: Scope, max_body_bytes: int) -> Refusal | None:
    """Refuse a body that is not JSON, has no length where one is needed, or is too large."""
    content_type = _header(scope, b"content-type")
    media_type = (content_type or b"").split(b";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        shown = content_type.decode("latin-1") if content_type else "none"
        return Refusal(415, f"Content-Type must be application/json (got {shown})")
    length = _header(scope, b"content-length")
    if length is not None:
        if not length.isdigit():
            return Refusal(400, "Content-Length is not a number")
        if int(length) == 0:
            return EMPTY
        if int(length) > max_body_bytes:
            return Refusal(413, f"body of {int(length)} bytes exceeds {max_body_bytes} bytes")
    elif _header(scope, b"transfer-encoding") is None:
        return EMPTY
    return None


EMPTY = Refusal(400, "empty body: send a JSON object, e.g. {} for the defaults")


async def read_body(receive: Receive, max_body_bytes: int) -> tuple[bytes, Refusal | None]:
    """The body, read up to the limit (past it, a 413 refusal; chunked bodies have no length)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"", Refusal(400, "the client went away before the body was sent")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            return b"", Refusal(413, f"body exceeds {max_body_bytes} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    return body, None if body else EMPTY


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the whole ``body`` once, then the server's own messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # blocks until the client disconnects, as a server's does

    return replayed


async def send_json(send: Send, status: int, payload: dict[str, Any], version: str) -> None:
    """Send a whole JSON response."""
    await send_body(send, status, json.dumps(payload).encode(), version)


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    version: str,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Send ``body``, JSON already (with ``extra`` headers)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (VERSION_HEADER.encode(), version.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_method_not_allowed(
    send: Send, method: str, path: str, allowed: tuple[str, ...], version: str
) -> None:
    """405, in JSON like every other refusal, with the ``Allow`` header RFC 9110 asks for."""
    methods = ", ".join(allowed)
    body = json.dumps({"error": f"{method} {path}: this path takes {methods}"}).encode()
    await send_body(send, 405, body, version, ((b"allow", methods.encode()),))


class HttpGuard:
    """The middleware. ``api_paths`` are the POST routes guarded; every response is stamped.

    ``routes`` names the methods of other routes whose wrong methods get the JSON 405 too.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_paths: frozenset[str],
        state: Callable[[], ServiceState | None],
        routes: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.app, self.api_paths, self.state = app, api_paths, state
        self._state: ServiceState | None = None
        self.methods = dict.fromkeys(api_paths, ("POST",)) | dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer refusals here; pass the rest on, stamping and counting the response."""
        if scope["type"] == "http" and self._state is None:
            # Asked until the service exists; then kept (finding it costs microseconds a call).
            self._state = self.state()
        state = self._state if scope["type"] == "http" else None
        if state is None:  # lifespan, or the service not built yet
            await self.app(scope, receive, send)
            return
        path, version = scope["path"], state.version
        allowed = self.methods.get(path)
        if allowed is not None and scope["method"] not in allowed:
            if path in self.api_paths:
                state.count(path, 405)
            await send_method_not_allowed(send, scope["method"], path, allowed, version)
            return
        if path == READINESS_PATH:  # BentoML answers 503 with no reason: say why
            reason = state.not_ready()
            if reason is not None:
                await send_json(send, 503, {"error": reason}, version)
                return
        if path in self.api_paths and scope["method"] == "POST":
            EXPERIMENT_TAGS.set(experiment_tags(scope))  # this request's task only (ASGI)
            reason = state.unavailable(path)
            if reason is not None:
                await self._refuse(send, state, path, 503, reason)
                return
            max_body_bytes = state.max_body_bytes
            refusal = check_headers(scope, max_body_bytes)
            if refusal is None:
                body, refusal = await read_body(receive, max_body_bytes)
            if refusal is not None:
                await self._refuse(send, state, path, refusal.status, refusal.error)
                return
            reply = await state.respond(path, body)
            if reply is not None:
                state.count(path, reply.status)
                await send_body(send, reply.status, reply.body, version, reply.headers)
                return
            receive = replay(body, receive)
        stamp = (VERSION_HEADER.encode(), version.encode())
        counted = path in self.api_paths

        async def stamped_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), stamp]
                if counted:
                    state.count(path, message["status"])
            await send(message)

        await self.app(scope, receive, stamped_send)

    async def _refuse(
        self, send: Send, state: ServiceState, path: str, status: int, error: str
    ) -> None:
        state.count(path, status)
        await send_json(send, status, {"error": error}, state.version)
