"""The HTTP guard: refusals before BentoML parses a body, the version header, request counts."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from traffic_forecast.serving.guard import VERSION_HEADER, HttpGuard, Reply, check_headers

LIMIT = 100
JSON = [(b"content-type", b"application/json")]


def _scope(
    headers: list[tuple[bytes, bytes]], path: str = "/forecast", method: str = "POST"
) -> dict[str, Any]:
    return {"type": "http", "path": path, "method": method, "headers": headers}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"content-type", b"text/plain"), (b"content-length", b"2")], 415),
        ([(b"content-type", b"multipart/form-data"), (b"content-length", b"2")], 415),
        ([(b"content-length", b"2")], 415),
        ([*JSON, (b"content-length", b"0")], 400),
        ([*JSON], 400),
        ([*JSON, (b"content-length", b"12x")], 400),
        ([*JSON, (b"content-length", b"101")], 413),
    ],
    ids=["text", "multipart-no-boundary", "no-type", "empty", "no-body", "bad-length", "too-large"],
)
def test_headers_that_cannot_carry_a_valid_body_are_refused(
    headers: list[tuple[bytes, bytes]], status: int
) -> None:
    refusal = check_headers(_scope(headers), LIMIT)
    assert refusal is not None
    assert refusal.status == status


@pytest.mark.parametrize(
    "headers",
    [
        [*JSON, (b"content-length", b"100")],
        [(b"content-type", b"Application/JSON; charset=utf-8"), (b"content-length", b"2")],
        [*JSON, (b"transfer-encoding", b"chunked")],
    ],
    ids=["at-the-limit", "charset", "chunked"],
)
def test_json_bodies_within_the_limit_pass(headers: list[tuple[bytes, bytes]]) -> None:
    assert check_headers(_scope(headers), LIMIT) is None


@dataclass
class _State:
    version: str = "traffic-forecast:v1"
    max_body_bytes: int = LIMIT
    reason: str | None = None
    readiness: str | None = None  # why /readyz fails
    counted: list[tuple[str, int]] = field(default_factory=list)

    def unavailable(self, path: str) -> str | None:
        return self.reason

    def not_ready(self) -> str | None:
        return self.readiness

    fast: dict[bytes, Reply] = field(default_factory=dict)  # body → the service's own answer

    def count(self, endpoint: str, status: int) -> None:
        self.counted.append((endpoint, status))

    async def respond(self, path: str, body: bytes) -> Reply | None:
        return self.fast.get(body)


@dataclass
class _Echo:
    """The app behind the guard: answers 200 with the body it received."""

    calls: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def _call(
    scope: dict[str, Any],
    chunks: list[bytes],
    state: _State,
    routes: dict[str, tuple[str, ...]] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes, _Echo]:
    app = _Echo()
    guard = HttpGuard(app, frozenset({"/forecast"}), lambda: state, routes)
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body, app


def test_a_refusal_is_json_with_the_version_and_never_reaches_the_app() -> None:
    state = _State()
    status, headers, body, app = _call(
        _scope([(b"content-type", b"text/plain"), (b"content-length", b"2")]), [b"{}"], state
    )
    assert status == 415
    assert json.loads(body)["error"].startswith("Content-Type must be application/json")
    assert headers[VERSION_HEADER.encode()] == b"traffic-forecast:v1"
    assert app.calls == 0
    assert state.counted == [("/forecast", 415)]


def test_a_chunked_body_over_the_limit_is_refused_with_413() -> None:
    chunked = _scope([*JSON, (b"transfer-encoding", b"chunked")])
    status, _, body, app = _call(chunked, [b"{" * 60, b"}" * 60], _State())
    assert (status, app.calls) == (413, 0)
    assert "exceeds 100 bytes" in json.loads(body)["error"]


def test_a_chunked_body_within_the_limit_reaches_the_app_whole() -> None:
    chunked = _scope([*JSON, (b"transfer-encoding", b"chunked")])
    status, headers, body, app = _call(chunked, [b'{"horizon"', b": 24}"], _State())
    assert (status, body, app.calls) == (200, b'{"horizon": 24}', 1)
    assert headers[VERSION_HEADER.encode()] == b"traffic-forecast:v1"


def test_an_unavailable_service_answers_503_with_its_reason() -> None:
    state = _State(reason="the model failed its self-check: boom")
    status, _, body, app = _call(_scope([*JSON, (b"content-length", b"2")]), [b"{}"], state)
    assert (status, app.calls) == (503, 0)
    assert json.loads(body) == {"error": "the model failed its self-check: boom"}


def test_other_routes_pass_untouched_but_stamped_and_uncounted() -> None:
    state = _State(reason="not ready")  # /readyz must still answer, whatever the state
    status, headers, _, app = _call(_scope([], path="/readyz", method="GET"), [b""], state)
    assert (status, app.calls) == (200, 1)
    assert headers[VERSION_HEADER.encode()] == b"traffic-forecast:v1"
    assert state.counted == []


def test_readiness_says_why_it_fails() -> None:
    state = _State(readiness="ingest unavailable, forecasts answer from memory: the store is gone")
    status, headers, body, app = _call(_scope([], path="/readyz", method="GET"), [b""], state)
    assert (status, app.calls) == (503, 0)
    assert json.loads(body) == {"error": state.readiness}
    assert headers[VERSION_HEADER.encode()] == b"traffic-forecast:v1"


def test_the_services_answer_is_sent_counted_and_stamped() -> None:
    state = _State(fast={b'{"horizon": 2}': Reply(200, b'{"forecast": [1, 2]}')})
    scope = _scope([*JSON, (b"content-length", b"14")])
    status, headers, body, app = _call(scope, [b'{"horizon": 2}'], state)
    assert (status, body, app.calls) == (200, b'{"forecast": [1, 2]}', 0)
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == b"20"
    assert headers[VERSION_HEADER.encode()] == b"traffic-forecast:v1"
    assert state.counted == [("/forecast", 200)]


def test_a_refusal_of_the_service_keeps_its_status_and_headers() -> None:
    busy = Reply(503, b'{"error": "busy"}', ((b"retry-after", b"1"),))
    state = _State(fast={b'{"horizon": 2}': busy})
    scope = _scope([*JSON, (b"content-length", b"14")])
    status, headers, body, app = _call(scope, [b'{"horizon": 2}'], state)
    assert (status, body, app.calls) == (503, b'{"error": "busy"}', 0)
    assert headers[b"retry-after"] == b"1"
    assert state.counted == [("/forecast", 503)]


def test_a_body_without_a_fast_answer_reaches_the_app_whole() -> None:
    state = _State(fast={b'{"horizon": 2}': Reply(200, b"{}")})
    scope = _scope([*JSON, (b"content-length", b"15")])
    status, _, body, app = _call(scope, [b'{"horizon"', b": 24}"], state)  # two messages
    assert (status, body, app.calls) == (200, b'{"horizon": 24}', 1)


@pytest.mark.parametrize(
    ("method", "path", "allow", "counted"),
    [
        ("GET", "/forecast", b"POST", [("/forecast", 405)]),
        ("PUT", "/forecast", b"POST", [("/forecast", 405)]),
        ("HEAD", "/forecast", b"POST", [("/forecast", 405)]),
        ("GET", "/observations", b"POST", []),
        ("DELETE", "/metadata", b"GET, HEAD", []),
    ],
    ids=["get-api", "put-api", "head-api", "get-route", "delete-route"],
)
def test_a_method_the_path_does_not_take_is_a_json_405_with_allow(
    method: str, path: str, allow: bytes, counted: list[tuple[str, int]]
) -> None:
    state = _State()
    routes = {"/metadata": ("GET", "HEAD"), "/observations": ("POST",)}
    status, headers, body, app = _call(_scope(JSON, path, method), [b""], state, routes)
    assert (status, app.calls) == (405, 0)
    assert headers[b"allow"] == allow
    assert headers[b"content-type"] == b"application/json"
    assert headers[VERSION_HEADER.encode()] == b"traffic-forecast:v1"
    assert json.loads(body) == {"error": f"{method} {path}: this path takes {allow.decode()}"}
    assert state.counted == counted


@pytest.mark.parametrize(("method", "path"), [("GET", "/metadata"), ("HEAD", "/metadata"),
                                              ("GET", "/livez"), ("DELETE", "/livez")])  # fmt: skip
def test_a_method_the_path_takes_and_unnamed_routes_reach_the_app(method: str, path: str) -> None:
    routes = {"/metadata": ("GET", "HEAD")}
    status, _, _, app = _call(_scope([], path, method), [b""], _State(), routes)
    assert (status, app.calls) == (200, 1)
