"""What-if forecasts on threads beside the event loop, with admission and a time budget.

A what-if runs the model (about a millisecond in its lean form, tens through sktime), so it
never runs on the event loop, where it would hold up every other request. ``threads`` run at
once; ``waiting`` more may queue; past that the pool refuses at once (`PoolFullError`: the
service answers 503 with ``Retry-After``) instead of letting a queue grow that no budget can
meet. The budget counts from when a thread starts the work, not from submission: time spent
queued is the server's load, not the model's slowness. A what-if over its budget raises
`BudgetExceededError` (the service answers with the fallback, saying so); its thread finishes
the work and is then free again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class PoolFullError(Exception):
    """Every thread is busy and the queue is full: try again shortly."""


class BudgetExceededError(Exception):
    """The work ran longer than its budget."""


class WhatIfPool:
    """``threads`` threads for what-ifs, ``waiting`` queued at most, ``budget_s`` each."""

    def __init__(self, threads: int, waiting: int, budget_s: float) -> None:
        self.capacity = threads + waiting
        self.budget_s = budget_s
        self.pending = 0  # submitted and not finished; touched on the event loop only
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="what-if")

    async def run(self, work: Callable[[], T]) -> T:
        """``work()``'s result; `PoolFullError` or `BudgetExceededError` otherwise."""
        if self.pending >= self.capacity:
            raise PoolFullError(f"{self.pending} what-ifs in progress or queued")
        loop = asyncio.get_running_loop()
        started: asyncio.Future[float] = loop.create_future()

        def timed() -> T:
            loop.call_soon_threadsafe(_set_once, started, time.monotonic())
            return work()

        self.pending += 1
        job = loop.run_in_executor(self._executor, timed)
        job.add_done_callback(self._finished)
        first: list[asyncio.Future[Any]] = [job, started]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            return job.result()
        left = self.budget_s - (time.monotonic() - await started)
        try:
            return await asyncio.wait_for(asyncio.shield(job), max(left, 0.0))
        except TimeoutError:
            raise BudgetExceededError(f"over its {self.budget_s * 1000:.0f} ms budget") from None

    def _finished(self, job: asyncio.Future[T]) -> None:
        self.pending -= 1
        if not job.cancelled():
            job.exception()  # retrieved: one given up on over its budget may still fail

    def shutdown(self) -> None:
        """Finish the work in progress, then stop the threads."""
        self._executor.shutdown(wait=True)


def _set_once(future: asyncio.Future[float], value: float) -> None:
    if not future.done():
        future.set_result(value)
