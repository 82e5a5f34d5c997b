"""The challenger's service levels during an experiment, read from its own ``/metrics``.

Pure: two readings of the challenger's counters in, a verdict out. Its 5xx share and fallback
share come from the service's series, its p99 from BentoML's request-duration histogram (which
counts the answers the fast path gives too); in shadow mode the mirrored copies count, which the
router's access log would miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from traffic_forecast.core.config import GuardrailConfig

API_PATHS = ("/forecast", "/capacity")
REQUESTS = "traffic_forecast_requests_total"
FALLBACKS = "traffic_forecast_fallbacks_total"
DURATION = "bentoml_service_request_duration_seconds_bucket"


@dataclass(frozen=True)
class Counters:
    """Cumulative counts since the challenger started."""

    requests: float = 0.0
    errors: float = 0.0
    fallbacks: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound (s) → requests ≤ it


def read_counters(text: str) -> Counters:
    """The counters in a ``/metrics`` answer (Prometheus text format)."""
    requests = errors = fallbacks = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == REQUESTS and labels.get("endpoint") in API_PATHS:
                requests += sample.value
                errors += sample.value if labels.get("outcome") == "error" else 0.0
            elif sample.name == FALLBACKS:
                fallbacks += sample.value
            elif sample.name == DURATION and labels.get("endpoint") in API_PATHS:
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Counters(requests, errors, fallbacks, buckets)


@dataclass(frozen=True)
class Verdict:
    """One guardrail check: judged or not (too few answers), breached or not, and why."""

    judged: bool
    breached: bool
    text: str
    requests: int = 0
    error_rate: float = 0.0
    fallback_share: float = 0.0
    p99_ms: float = 0.0


def _p99_ms(before: Counters, after: Counters) -> float:
    """The upper bound of the histogram bucket holding the 99th percentile (conservative).

    Of the histogram's own count: a request is counted by the service when its answer starts
    and by the histogram when it ends, so between two readings the two counts may differ.
    """
    timed = after.buckets.get(math.inf, 0.0) - before.buckets.get(math.inf, 0.0)
    if timed <= 0:
        return 0.0
    for bound in sorted(after.buckets):
        if after.buckets[bound] - before.buckets.get(bound, 0.0) >= 0.99 * timed:
            return bound * 1000
    return math.inf


def judge(before: Counters, after: Counters, cfg: GuardrailConfig) -> Verdict:
    """The challenger's answers between two readings against the SLOs.

    Fewer than ``cfg.min_requests`` answers are not judged: the next check counts them with
    its own (the caller keeps ``before``).
    """
    answered = after.requests - before.requests
    if answered < cfg.min_requests:
        text = f"{answered:.0f} answers since the last judged check (minimum {cfg.min_requests})"
        return Verdict(False, False, text, int(answered))
    error_rate = (after.errors - before.errors) / answered
    fallback_share = (after.fallbacks - before.fallbacks) / answered
    p99_ms = _p99_ms(before, after)
    over = [
        name
        for name, value, limit in (
            ("error rate", error_rate, cfg.max_error_rate),
            ("fallback share", fallback_share, cfg.max_fallback_share),
            ("p99", p99_ms, cfg.max_p99_ms),
        )
        if value > limit
    ]
    text = (
        f"{answered:.0f} answers: {error_rate:.1%} errors (limit {cfg.max_error_rate:.1%}), "
        f"{fallback_share:.1%} fallbacks (limit {cfg.max_fallback_share:.1%}), "
        f"p99 ≤ {p99_ms:g} ms (limit {cfg.max_p99_ms:g} ms)"
    )
    if over:
        text = f"breached: {', '.join(over)}; {text}"
    return Verdict(True, bool(over), text, int(answered), error_rate, fallback_share, p99_ms)
