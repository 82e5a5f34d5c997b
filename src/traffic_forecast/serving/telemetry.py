"""The service's own Prometheus series, served on BentoML's ``/metrics`` beside its request metrics.

Created on first use, not at import: BentoML's workers set ``PROMETHEUS_MULTIPROC_DIR`` after
importing the service module, and prometheus_client must see it when a metric is made.
The alerts on them are deploy/prometheus/rules.yml (README, section "Alerts").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

HORIZON_BUCKETS = (1, 6, 12, 24, 48, 72, 96, 120, 144, 168)
# Forecast levels differ by data set (millions of sessions, hundreds of bike rentals).
LEVEL_BUCKETS = tuple(10.0**exponent for exponent in range(9))


@dataclass(frozen=True)
class Telemetry:
    """Inputs, outputs and outcomes of the forecast endpoints."""

    requests: Counter
    horizon: Histogram
    what_if: Counter
    fallbacks: Counter
    level: Histogram
    model_info: Gauge
    defaulted: Counter
    out_of_range: Counter
    log_dropped: Counter
    data_age: Gauge
    observed: Gauge
    forecast_next: Gauge
    observations: Counter

    def served(self, endpoint: str, horizon: int, what_if: bool, mean_level: float) -> None:
        """Record one answered forecast request."""
        labelled(self.horizon, endpoint).observe(horizon)
        if what_if:
            labelled(self.what_if, endpoint).inc()
        labelled(self.level, endpoint).observe(mean_level)


@cache
def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, kept: prometheus_client takes a lock and ~3 µs per call."""
    return metric.labels(*values)


@cache
def telemetry() -> Telemetry:
    """The process's series (one set, however many service instances a test makes)."""
    return Telemetry(
        requests=Counter(
            "traffic_forecast_requests",
            "Requests to the forecast API by endpoint and outcome (ok, rejected, error)",
            ["endpoint", "outcome"],
        ),
        horizon=Histogram(
            "traffic_forecast_horizon_hours",
            "Hours ahead asked for",
            ["endpoint"],
            buckets=HORIZON_BUCKETS,
        ),
        what_if=Counter(
            "traffic_forecast_what_if_requests",
            "Requests planning sales (what-if); their share is this over requests",
            ["endpoint"],
        ),
        fallbacks=Counter(
            "traffic_forecast_fallbacks",
            "Answers from the seasonal-naive fallback, by reason (budget, error)",
            ["reason"],
        ),
        level=Histogram(
            "traffic_forecast_level",
            "Mean forecast of each answer (sessions per hour): a sudden shift means trouble",
            ["endpoint"],
            buckets=LEVEL_BUCKETS,
        ),
        defaulted=Counter(
            "traffic_forecast_defaulted_inputs",
            "Requests that left a field out (its default was used), by field",
            ["field"],
        ),
        out_of_range=Counter(
            "traffic_forecast_level_out_of_range",
            "Answers with an hour below half the training's 1st percentile or above twice its 99th",
            ["endpoint"],
        ),
        log_dropped=Counter(
            "traffic_forecast_prediction_log_dropped",
            "Served forecasts the prediction log dropped (its queue was full)",
        ),
        data_age=Gauge(
            "traffic_forecast_data_age_hours",
            "Hours since the end of the newest actual the model has seen (alert above "
            "serving.max_data_age_hours)",
            multiprocess_mode="max",
        ),
        observed=Gauge(
            "traffic_forecast_observed_sessions",
            "The target in the newest observed hour the model has seen (sessions)",
            multiprocess_mode="max",
        ),
        forecast_next=Gauge(
            "traffic_forecast_forecast_sessions",
            "The default forecast of the hour after the newest observed one (sessions): an hour "
            "later, compare it with traffic_forecast_observed_sessions",
            multiprocess_mode="max",
        ),
        observations=Counter(
            "traffic_forecast_observations",
            "Observed hours received over HTTP: new, corrected (a revision kept), unchanged",
            ["outcome"],
        ),
        model_info=Gauge(
            "traffic_forecast_model_info",
            "The model being served (1), with its lineage as labels",
            ["model_version", "git_commit", "data_version"],
            multiprocess_mode="max",
        ),
    )
