"""A bounded load on the router for the length of a deploy: every answer recorded, none retried.

An asyncio client in a background thread keeps ``concurrency`` requests in flight, each on a
new connection: a request that finds no server, a reset connection or a non-2xx answer is a
failure the test sees. (Connections are not reused so that the test measures the router and the
slots, not HTTP/1.1 keep-alive races, which a client must retry on its own.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from traffic_forecast.serving.guard import VERSION_HEADER


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and answered, its status or error, the model version."""

    sent: float
    done: float
    status: int | None
    version: str | None
    error: str | None


@dataclass
class Load:
    """``with Load(url) as load: …``, then ``load.answers``."""

    url: str
    concurrency: int = 6
    body: dict[str, Any] = field(default_factory=lambda: {"horizon": 24})
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _one(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            sent = time.perf_counter()
            try:
                response = await client.post(self.url, json=self.body)
                answer = Answer(sent, time.perf_counter(), response.status_code,
                                response.headers.get(VERSION_HEADER), None)  # fmt: skip
            except httpx.HTTPError as exc:
                answer = Answer(sent, time.perf_counter(), None, None, type(exc).__name__)
            self.answers.append(answer)

    async def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        headers = {"Connection": "close"}
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as client:
            await asyncio.gather(*(self._one(client) for _ in range(self.concurrency)))

    def __enter__(self) -> Load:
        self._thread.start()
        time.sleep(0.5)  # under way before the deploy starts
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.5)  # and still under way once it is over
        self._stop.set()
        self._thread.join(timeout=60)

    @property
    def failures(self) -> list[Answer]:
        """Answers that were not 2xx, or never came."""
        return [a for a in self.answers if a.status is None or not 200 <= a.status < 300]

    def versions_sent_after(self, moment: float) -> Counter[str | None]:
        """Model versions of the answers to requests sent after ``moment`` (perf_counter)."""
        return Counter(a.version for a in self.answers if a.sent > moment)

    def summary(self) -> str:
        """Counts for assertion messages and the closing note."""
        errors = Counter(a.error or a.status for a in self.failures)
        return f"{len(self.answers)} requests, {len(self.failures)} failed {dict(errors)}"
