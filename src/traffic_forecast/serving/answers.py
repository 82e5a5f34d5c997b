"""The JSON answers of ``/forecast`` and ``/capacity``, built from arrays in one pass.

One builder per answer, shared by both ways a request is answered: the HTTP guard sends the
bytes (`as_json`), BentoML's API validates the same dict into its response model. Building a
pydantic model per hour cost more than the forecast itself; these are plain dicts and lists,
with the hours' ISO labels made once per model state (`ForecastEngine.hour_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from traffic_forecast.forecasting.capacity import Capacity
from traffic_forecast.serving.engine import Forecast


@dataclass(frozen=True)
class Header:
    """What every answer says about itself: the model, its state and how it answered."""

    model_version: str
    origin: str
    last_observed: str
    stale: bool
    stale_reason: str | None

    def about(self, answer: Forecast, *, what_if: bool) -> dict[str, Any]:
        """The answer's common fields: the fallback and why come before any hour."""
        return {
            "model_version": self.model_version,
            "origin": self.origin,
            "last_observed": self.last_observed,
            "stale": self.stale,
            "stale_reason": self.stale_reason,
            "coverage": answer.coverage,
            "what_if": what_if,
            "fallback": answer.fallback,
            "fallback_reason": answer.reason,
        }


def forecast_answer(
    header: Header, answer: Forecast, labels: list[str], *, what_if: bool
) -> dict[str, Any]:
    """``ForecastResponse`` as a dict: hourly point forecasts and intervals."""
    rows = [
        {"timestamp": stamp, "value": value, "lower": lower, "upper": upper}
        for stamp, value, lower, upper in zip(
            labels,
            answer.value.tolist(),
            answer.lower.tolist(),
            answer.upper.tolist(),
            strict=False,  # labels cover the longest horizon; the answer may be shorter
        )
    ]
    return {**header.about(answer, what_if=what_if), "forecast": rows}


def capacity_answer(
    header: Header,
    answer: Forecast,
    labels: list[str],
    *,
    what_if: bool,
    capacity: Capacity,
    target_utilisation: float,
) -> dict[str, Any]:
    """``CapacityResponse`` as a dict: instances per hour to serve the upper forecast.

    Raises `ValueError` for a utilisation at which no fleet is sized (the client's mistake).
    """
    instances = capacity.instances_needed(answer.upper, target_utilisation)
    peak = int(np.argmax(instances))
    hours = [
        {"timestamp": stamp, "upper": upper, "instances": count}
        for stamp, upper, count in zip(
            labels, answer.upper.tolist(), instances.tolist(), strict=False
        )
    ]
    return {
        **header.about(answer, what_if=what_if),
        "target_utilisation": target_utilisation,
        "sessions_per_instance": capacity.sessions_per_instance,
        "peak_instances": int(instances[peak]),
        "peak_hour": labels[peak],
        "hours": hours,
    }


def invalid_request(exc: ValidationError) -> dict[str, Any]:
    """A 400's body, as BentoML words it for its own validation errors."""
    return {
        "error": f"{exc.error_count()} validation error for {exc.title}",
        "detail": exc.errors(include_context=False, include_input=False),
    }


def as_json(answer: dict[str, Any]) -> bytes:
    """The answer's bytes (orjson: a 168-hour answer in tens of microseconds)."""
    return orjson.dumps(answer)
