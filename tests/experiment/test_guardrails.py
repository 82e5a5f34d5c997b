"""The guard's verdict from two readings of the challenger's ``/metrics``."""

from __future__ import annotations

import math

from traffic_forecast.core.config import GuardrailConfig
from traffic_forecast.experiment.guardrails import Counters, judge, read_counters

LIMITS = GuardrailConfig(
    max_error_rate=0.01, max_p99_ms=500, max_fallback_share=0.05, min_requests=20
)


def _metrics(ok: int, errors: int, rejected: int, fallbacks: int, *, fast: int, slow: int) -> str:
    """A /metrics answer as the service and BentoML write it (``fast`` ≤ 0.1 s, ``slow`` ≤ 1 s)."""
    bucket = 'bentoml_service_request_duration_seconds_bucket{endpoint="/forecast",le="%s"} %d'
    return "\n".join(
        [
            "# TYPE traffic_forecast_requests counter",
            f'traffic_forecast_requests_total{{endpoint="/forecast",outcome="ok"}} {ok}',
            f'traffic_forecast_requests_total{{endpoint="/capacity",outcome="error"}} {errors}',
            'traffic_forecast_requests_total{endpoint="/forecast",outcome="rejected"} '
            f"{rejected}",
            'traffic_forecast_requests_total{endpoint="/observations",outcome="error"} 7',
            "# TYPE traffic_forecast_fallbacks counter",
            f'traffic_forecast_fallbacks_total{{reason="budget"}} {fallbacks}',
            "# TYPE bentoml_service_request_duration_seconds histogram",
            bucket % ("0.1", fast),
            bucket % ("1.0", fast + slow),
            bucket % ("+Inf", fast + slow),
            "",
        ]
    )


def test_counters_are_the_forecast_endpoints_only() -> None:
    counters = read_counters(_metrics(ok=90, errors=4, rejected=6, fallbacks=2, fast=99, slow=1))
    assert (counters.requests, counters.errors, counters.fallbacks) == (100, 4, 2)
    assert counters.buckets == {0.1: 99, 1.0: 100, math.inf: 100}


def test_too_few_answers_are_not_judged() -> None:
    verdict = judge(Counters(), read_counters(_metrics(10, 9, 0, 0, fast=19, slow=0)), LIMITS)
    assert (verdict.judged, verdict.breached) == (False, False)


def test_within_every_limit_passes() -> None:
    before = read_counters(_metrics(100, 0, 0, 0, fast=100, slow=0))
    # 200 answers more: 0.5 % errors, 2.5 % fallbacks, all within 0.1 s
    after = read_counters(_metrics(299, 1, 0, 5, fast=300, slow=0))
    verdict = judge(before, after, LIMITS)
    assert (verdict.judged, verdict.breached) == (True, False)
    assert verdict.p99_ms == 100.0  # the bucket holding the 99th percentile: ≤ 0.1 s


def test_each_limit_breaches_on_its_own() -> None:
    before = read_counters(_metrics(0, 0, 0, 0, fast=0, slow=0))
    errors = judge(before, read_counters(_metrics(97, 3, 0, 0, fast=100, slow=0)), LIMITS)
    assert errors.breached
    assert errors.text.startswith("breached: error rate")
    fallbacks = judge(before, read_counters(_metrics(100, 0, 0, 6, fast=100, slow=0)), LIMITS)
    assert fallbacks.text.startswith("breached: fallback share")
    slow = judge(before, read_counters(_metrics(100, 0, 0, 0, fast=98, slow=2)), LIMITS)
    assert slow.text.startswith("breached: p99")
    assert slow.p99_ms == 1000.0


def test_p99_counts_the_histogram_s_own_requests() -> None:
    # A reading between an answer's start (the service counts it) and its end (the histogram
    # does): the histogram is one request behind, which is no slow answer.
    before = read_counters(_metrics(0, 0, 0, 0, fast=0, slow=0))
    verdict = judge(before, read_counters(_metrics(20, 0, 0, 0, fast=19, slow=0)), LIMITS)
    assert (verdict.breached, verdict.p99_ms) == (False, 100.0)
