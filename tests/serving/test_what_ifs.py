"""The what-if pool: batches what arrives together, budgets from the start of work, admits."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from traffic_forecast.serving.what_ifs import BudgetExceededError, PoolFullError, WhatIfPool


class _Model:
    """Doubles numbers; records the size of every call; the first call can be made slow."""

    def __init__(self, first_call_s: float = 0.0, fails_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.first_call_s, self.fails_on = first_call_s, fails_on
        self._lock = threading.Lock()

    def compute(self, items: list[int]) -> list[int]:
        with self._lock:
            self.calls.append(list(items))
            first = len(self.calls) == 1
        if first:
            time.sleep(self.first_call_s)
        if self.fails_on in items:
            raise ValueError(f"cannot take {self.fails_on}")
        return [2 * item for item in items]


async def _gather(pool: WhatIfPool, model: _Model, items: list[int]) -> list[Any]:
    first = asyncio.ensure_future(pool.run(model.compute, items[0]))
    await asyncio.sleep(0.05)  # the first call is running: the others queue behind it
    rest = [pool.run(model.compute, item) for item in items[1:]]
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_what_ifs_that_arrive_together_share_one_call() -> None:
    pool, model = WhatIfPool(threads=1, waiting=16, budget_s=5), _Model(first_call_s=0.2)
    answers = asyncio.run(_gather(pool, model, list(range(6))))
    pool.shutdown()
    assert answers == [0, 2, 4, 6, 8, 10]
    assert model.calls == [[0], [1, 2, 3, 4, 5]]


def test_the_budget_counts_from_the_start_of_work_not_from_arrival() -> None:
    # The second waits 0.3 s behind the first, more than its budget, and is answered all the
    # same: time queued is the server's load, not the model's slowness.
    pool, model = WhatIfPool(threads=1, waiting=16, budget_s=0.2), _Model(first_call_s=0.15)
    answers = asyncio.run(_gather(pool, model, [1, 2]))
    pool.shutdown()
    assert answers == [2, 4]


def test_work_over_its_budget_raises() -> None:
    pool, model = WhatIfPool(threads=1, waiting=16, budget_s=0.05), _Model(first_call_s=0.3)
    with pytest.raises(BudgetExceededError, match="over its 50 ms budget"):
        asyncio.run(pool.run(model.compute, 1))
    pool.shutdown()


def test_a_full_pool_refuses_at_once() -> None:
    pool, model = WhatIfPool(threads=1, waiting=1, budget_s=5), _Model(first_call_s=0.2)
    answers = asyncio.run(_gather(pool, model, [1, 2, 3]))
    pool.shutdown()
    assert answers[:2] == [2, 4]
    assert isinstance(answers[2], PoolFullError)


def test_an_item_that_fails_fails_only_itself() -> None:
    pool, model = WhatIfPool(threads=1, waiting=16, budget_s=5), _Model(0.2, fails_on=3)
    answers = asyncio.run(_gather(pool, model, [1, 2, 3, 4]))
    pool.shutdown()
    assert answers[:2] == [2, 4]
    assert isinstance(answers[2], ValueError)
    assert answers[3] == 8
