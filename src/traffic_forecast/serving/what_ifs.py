"""What-if forecasts on threads beside the event loop, batched, with admission and a budget.

A what-if runs the model (about a millisecond in its lean form, tens through sktime), so it
never runs on the event loop, where it would hold up every other request. The threads take
what-ifs from one queue; a thread takes every what-if waiting (up to ``max_batch``) and hands
those of the same model state to one call: in the lean form their changed hours go through
the regressor in one ``predict``, whose fixed cost (a call per tree) is then paid once per
batch, not per request (as BentoML's adaptive batching does for its runners).

``waiting`` what-ifs may queue; past that the pool refuses at once (`PoolFullError`: the
service answers 503 with ``Retry-After``) instead of letting a queue grow that no budget can
meet. The budget counts from when a thread starts the work, not from submission: time spent
queued is the server's load, not the model's slowness. A what-if over its budget raises
`BudgetExceededError` (the service answers with the fallback, saying so).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
Batch = Callable[[list[Any]], list[Any]]  # items in, one result per item out, in order
_STOP = None


class PoolFullError(Exception):
    """Every thread is busy and the queue is full: try again shortly."""


class BudgetExceededError(Exception):
    """The work ran longer than its budget."""


@dataclass
class _Job(Generic[Item, Result]):
    compute: Batch  # the same for jobs that may share a call (one model state)
    item: Item
    loop: asyncio.AbstractEventLoop
    answered: asyncio.Future[Result]  # the client's answer: the result, or over budget
    started_at: float | None = None  # set by the thread (the loop's clock, time.monotonic)
    timer: asyncio.TimerHandle | None = None


class WhatIfPool:
    """``threads`` threads, ``waiting`` what-ifs queued at most, ``budget_s`` each.

    Per what-if the event loop does little: one future, one timer, and one wake-up from the
    thread per batch (each ``call_soon_threadsafe`` is a write to the loop's self-pipe).
    """

    def __init__(self, threads: int, waiting: int, budget_s: float, max_batch: int = 32) -> None:
        self.capacity = threads + waiting
        self.budget_s = budget_s
        self.max_batch = max_batch
        self.pending = 0  # submitted and not finished; touched on the event loop only
        self._queue: queue.SimpleQueue[_Job[Any, Any] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"what-if-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, compute: Callable[[list[Item]], list[Result]], item: Item) -> Result:
        """``compute([item, …])``'s result for ``item``; batched with other waiting items.

        ``compute`` must be a function of its items alone: items with the same ``compute``
        (one model state) may share a call. Raises `PoolFullError`, `BudgetExceededError`,
        or what ``compute`` raised for this item.
        """
        if self.pending >= self.capacity:
            raise PoolFullError(f"{self.pending} what-ifs in progress or queued")
        loop = asyncio.get_running_loop()
        job: _Job[Item, Result] = _Job(compute, item, loop, loop.create_future())
        self.pending += 1
        job.timer = loop.call_later(self.budget_s, self._check_budget, job)
        self._queue.put(job)
        return await job.answered

    def _check_budget(self, job: _Job[Any, Any]) -> None:
        """On the loop: past the budget since the work started, answer that it is over."""
        if job.answered.done():
            return
        started = job.started_at
        deadline = (started if started is not None else job.loop.time()) + self.budget_s
        if started is not None and job.loop.time() >= deadline:
            message = f"over its {self.budget_s * 1000:.0f} ms budget"
            job.answered.set_exception(BudgetExceededError(message))
            return
        job.timer = job.loop.call_at(deadline, self._check_budget, job)  # queued, or not yet

    def _settle(self, outcomes: list[tuple[_Job[Any, Any], Any, BaseException | None]]) -> None:
        """On the loop: the thread finished these jobs (the answer may have gone already)."""
        for job, result, error in outcomes:
            self.pending -= 1
            if job.timer is not None:
                job.timer.cancel()
            if job.answered.done():
                continue  # answered over budget: its result comes too late
            if error is None:
                job.answered.set_result(result)
            else:
                job.answered.set_exception(error)

    def _serve(self) -> None:
        while (first := self._queue.get()) is not _STOP:
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    self._queue.put(_STOP)  # for the next thread; this one ends after its batch
                    break
                batch.append(job)
            groups: dict[Hashable, list[_Job[Any, Any]]] = {}
            for job in batch:
                groups.setdefault(job.compute, []).append(job)
            outcomes = [outcome for jobs in groups.values() for outcome in _compute(jobs)]
            try:
                first.loop.call_soon_threadsafe(self._settle, outcomes)
            except RuntimeError:  # the loop has closed (shutdown): nobody waits for these
                log.debug("what-ifs finished after their event loop closed")

    def shutdown(self) -> None:
        """Finish the work queued, then stop the threads."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=10)


def _compute(jobs: list[_Job[Any, Any]]) -> list[tuple[_Job[Any, Any], Any, BaseException | None]]:
    """One call for ``jobs``; if it fails, each alone, so one bad item fails only itself."""
    now = time.monotonic()
    for job in jobs:
        job.started_at = now
    try:
        results = jobs[0].compute([job.item for job in jobs])
    except Exception as exc:
        if len(jobs) == 1:
            return [(jobs[0], None, exc)]
        return [outcome for job in jobs for outcome in _compute([job])]
    return [(job, result, None) for job, result in zip(jobs, results, strict=True)]
