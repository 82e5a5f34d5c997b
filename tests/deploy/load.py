"""A bounded load on the router for the length of a deploy: every answer recorded, none retried.

``concurrency`` threads each send one request after another, in one of two modes:

- ``fresh``: a new connection per request (``Connection: close``): what a test of the router
  and the slots alone needs;
- ``keep-alive``: each thread keeps one HTTP/1.1 connection open and sends every request on it,
  as pooled clients (planners, dashboards, SDKs) do. A connection the router closes under a
  client (a reload, a restart) breaks the request sent on it: a failure here.

The client is `http.client`, which neither checks a pooled connection before reusing it nor
retries: the strictest client there is, so a close the router makes is always seen. A request
that finds no server, a broken connection or a non-2xx answer is a failure the test sees.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from traffic_forecast.serving.guard import VERSION_HEADER

Mode = Literal["fresh", "keep-alive"]
MODES: tuple[Mode, ...] = ("fresh", "keep-alive")


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and answered, its status or error, the model version."""

    sent: float
    done: float
    status: int | None
    version: str | None
    error: str | None
    reused: bool  # sent on a connection an earlier request had used


@dataclass
class Load:
    """``with Load(url) as load: …``, then ``load.answers``."""

    url: str
    mode: Mode = "fresh"
    concurrency: int = 2  # per mode: `Loads` runs both, and the machine has 2 cores
    body: dict[str, Any] = field(default_factory=lambda: {"horizon": 24})
    answers: list[Answer] = field(default_factory=list)
    clients: int = 0  # > 0: each request names one of this many clients (X-Client-Id), in turn

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._path = parts.path or "/"
        self._payload = json.dumps(self.body).encode()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._threads = [
            threading.Thread(target=self._client, daemon=True) for _ in range(self.concurrency)
        ]

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=30)

    def _send(self, connection: http.client.HTTPConnection) -> tuple[int, str | None]:
        headers = {"Content-Type": "application/json"}
        if self.mode == "fresh":
            headers["Connection"] = "close"
        if self.clients:
            self._sent += 1  # a race between threads only repeats a client: harmless
            headers["X-Client-Id"] = f"client-{self._sent % self.clients}"
        connection.request("POST", self._path, body=self._payload, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader(VERSION_HEADER)

    def _client(self) -> None:
        connection, used = self._connect(), False
        while not self._stop.is_set():
            sent = time.perf_counter()
            try:
                status, version = self._send(connection)
                answer = Answer(sent, time.perf_counter(), status, version, None, used)
                used = True
            except (OSError, http.client.HTTPException) as exc:
                answer = Answer(sent, time.perf_counter(), None, None, type(exc).__name__, used)
                connection.close()
                connection, used = self._connect(), False
            if self.mode == "fresh" or connection.sock is None:  # closed by us, or by the server
                connection.close()
                connection, used = self._connect(), False
            with self._lock:
                self.answers.append(answer)
        connection.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)  # under way before the deploy starts
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.5)  # and still under way once it is over
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    @property
    def failures(self) -> list[Answer]:
        """Answers that were not 2xx, or never came."""
        return [a for a in self.answers if a.status is None or not 200 <= a.status < 300]

    @property
    def reused(self) -> int:
        """Requests sent on a connection that had carried one before (keep-alive at work)."""
        return sum(a.reused for a in self.answers)

    def versions_sent_after(self, moment: float) -> Counter[str | None]:
        """Model versions of the answers to requests sent after ``moment`` (perf_counter)."""
        return Counter(a.version for a in self.answers if a.sent > moment)

    def summary(self) -> str:
        """Counts for assertion messages and the closing note."""
        errors = Counter(a.error or a.status for a in self.failures)
        return (
            f"{self.mode}: {len(self.answers)} requests ({self.reused} on a reused connection), "
            f"{len(self.failures)} failed {dict(errors)}"
        )


class Loads:
    """One `Load` per mode at once: ``with Loads(url) as loads: …``."""

    def __init__(self, url: str, **options: Any) -> None:
        self.by_mode = {mode: Load(url, mode=mode, **options) for mode in MODES}

    def __enter__(self) -> Loads:
        for load in self.by_mode.values():
            load.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for load in self.by_mode.values():
            load.__exit__(*exc)

    @property
    def failures(self) -> list[Answer]:
        """Every mode's failures."""
        return [a for load in self.by_mode.values() for a in load.failures]

    def versions_sent_after(self, moment: float) -> Counter[str | None]:
        """Every mode's versions of the answers to requests sent after ``moment``."""
        total: Counter[str | None] = Counter()
        for load in self.by_mode.values():
            total += load.versions_sent_after(moment)
        return total

    def summary(self) -> str:
        """Each mode's counts."""
        return "; ".join(load.summary() for load in self.by_mode.values())
