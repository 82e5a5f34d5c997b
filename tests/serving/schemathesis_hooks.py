"""Schemathesis hooks: the three rules of the spec that JSON Schema cannot state, taught to it.

A sale ends after it starts (two fields), a batch names each hour once (two items), and an
hour is observed once it has begun (the clock): the spec's descriptions say them, and the
service refuses a request breaking one with a 400 naming it (test_contract.py, test_ingest.py).
Positive cases are made to keep them: a reversed sale is turned round, a sale without hours,
a repeated hour and an hour not yet begun are left out (a batch left empty is not sent).
Nothing else is changed or filtered: any other schema-valid request must be accepted.

Loaded by `tests.serving.server.schemathesis` through ``SCHEMATHESIS_HOOKS``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis
from schemathesis import Case, GenerationMode, HookContext


def _positive_body(case: Case) -> dict[str, Any] | None:
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    return case.body if positive and isinstance(case.body, dict) else None


def _sales_forward(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for sale in events:
        start, end = datetime.fromisoformat(sale["start"]), datetime.fromisoformat(sale["end"])
        if start < end:
            kept.append(sale)
        elif start > end:
            kept.append({**sale, "start": sale["end"], "end": sale["start"]})
    return kept


def _hours_observed(hours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now, seen, kept = datetime.now(), set(), []
    for hour in hours:
        stamp = datetime.fromisoformat(hour["timestamp"])
        if stamp not in seen and stamp <= now:
            seen.add(stamp)
            kept.append(hour)
    return kept


@schemathesis.hook
def map_case(context: HookContext, case: Case) -> Case:
    """Positive cases keep the rules the spec states in words."""
    body = _positive_body(case)
    if body is not None and isinstance(body.get("events"), list):
        case.body = {**body, "events": _sales_forward(body["events"])}
    if body is not None and isinstance(body.get("observations"), list):
        case.body = {**body, "observations": _hours_observed(body["observations"])}
    return case


@schemathesis.hook
def filter_case(context: HookContext, case: Case) -> bool:
    """A positive batch must keep an hour (the schema asks for one); runs before `map_case`."""
    body = _positive_body(case)
    hours = None if body is None else body.get("observations")
    return not isinstance(hours, list) or bool(_hours_observed(hours))
