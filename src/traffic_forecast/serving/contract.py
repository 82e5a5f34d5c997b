"""The HTTP contract: request and response models of the service (pydantic), with examples.

Strict types on purpose: ``"24"``, ``24.5`` and ``true`` are not a horizon, ``NaN`` is not a
coverage. ``24.0`` is 24: JSON has one number type, and JSON Schema's integer is a number
without a fraction. Every violation becomes a 400 with a JSON body naming the field
(`ErrorResponse`). What the schema calls valid, the service takes (schemathesis checks it).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from traffic_forecast.core.config import WEEK_HOURS
from traffic_forecast.serving.hours import HOUR_DESCRIPTION, HOUR_PATTERN, LocalHour

Probability = Annotated[float, Field(gt=0.0, lt=1.0, strict=True, allow_inf_nan=False)]


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# The data rules read numbers as floats, which hold whole numbers exactly up to 2**53: a larger
# count of instances would be stored as another number (past 2**63, it broke the rules: a 500).
MAX_EXACT_INTEGER = 2**53
FLOAT_MAX = sys.float_info.max  # a JSON number beyond it reads as infinity: the rules refuse it
# 24.0 is the integer 24 to JSON Schema (and to the spec): strict pydantic would refuse it.
# Bounds go before the validator, or pydantic writes them into the schema as "ge" and "le".
Horizon = Annotated[int, Field(ge=1, le=WEEK_HOURS), BeforeValidator(_whole)]
InstanceCount = Annotated[int, Field(le=MAX_EXACT_INTEGER), BeforeValidator(_whole)]
MAX_EVENTS = 100  # structural cap; the packaged serving.max_events is the operative limit
MAX_OBSERVATIONS = 100_000  # hours in one POST /observations (serving.max_ingest_bytes first)
MIN_TARGET_UTILISATION = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_IN_SALE_YEARS = "in the forecast window's year or one either side (the spec's pattern)"
EXAMPLE_SALE: dict[str, Any] = {
    "start": "2025-07-01T18:00:00",
    "end": "2025-07-01T22:00:00",
    "kind": "flash_sale",
    "discount_pct": 30.0,
}


class PlannedSale(_Strict):
    """A sale to plan in a what-if forecast: from ``start`` (inclusive) to ``end`` (exclusive).

    ``end`` must be after ``start``: a rule JSON Schema cannot state, so the description does.
    """

    start: LocalHour = Field(
        description=f"First hour of the sale; {_IN_SALE_YEARS}", examples=[EXAMPLE_SALE["start"]]
    )
    end: LocalHour = Field(
        description=f"Hour the sale ends (exclusive), after start; {_IN_SALE_YEARS}",
        examples=[EXAMPLE_SALE["end"]],
    )
    kind: str = Field(
        min_length=1,
        max_length=64,
        description="A sale kind the model knows",
        examples=[EXAMPLE_SALE["kind"]],
    )
    discount_pct: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        allow_inf_nan=False,
        description="Discount in percent; default: the median of past sales of that kind",
        examples=[EXAMPLE_SALE["discount_pct"]],
    )

    @model_validator(mode="after")
    def _an_hourly_span(self) -> Self:
        for name, stamp in (("start", self.start), ("end", self.end)):
            if stamp.tzinfo is not None:
                raise ValueError(f"{name} has a time zone: give site-local time without one")
            if (stamp.minute, stamp.second, stamp.microsecond) != (0, 0, 0):
                raise ValueError(f"{name} {stamp.isoformat()} is not on the hour")
        if self.end <= self.start:
            raise ValueError(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )
        return self


class ForecastRequest(_Strict):
    """``POST /forecast``: how far ahead, the interval wanted, and planned sales (what-if)."""

    horizon: Horizon | None = Field(
        default=None,
        description="Hours ahead, 1 to 168; default: serving.default_horizon (24)",
        examples=[24],
    )
    coverage: Probability | None = Field(
        default=None,
        description="Prediction-interval coverage in (0, 1); default: the model's calibrated one",
        examples=[0.9],
    )
    events: list[PlannedSale] = Field(
        default_factory=list,
        max_length=MAX_EVENTS,
        description="Planned sales for a what-if forecast; none: the packaged sale calendar",
    )


class CapacityRequest(ForecastRequest):
    """``POST /capacity``: the forecast's request, and the CPU level to size the fleet for."""

    # At least 1 % CPU, as the schema says: below it a fleet is no plan, and the service refused
    # such a target (1e-18 sized more instances than int64 holds) though the schema took it.
    # At 1 %, a forecast this model cannot make could still need more than a million instances
    # an hour: that is refused saying so (the one refusal here the schema cannot foretell).
    target_utilisation: float | None = Field(
        default=None,
        ge=MIN_TARGET_UTILISATION,
        le=1.0,
        allow_inf_nan=False,
        description="Size the fleet so that CPU stays at this level (0.01 to 1); "
        "default: the packaged one",
        examples=[0.6],
    )


class ForecastHour(BaseModel):
    """One forecast hour: point forecast and prediction interval, in sessions per hour."""

    timestamp: LocalHour
    value: float
    lower: float
    upper: float


class _Answer(BaseModel):
    model_version: str = Field(description="The BentoML model tag that answered")
    origin: LocalHour = Field(description="The first forecast hour (after the last observed one)")
    last_observed: LocalHour = Field(description="The newest observed hour the model has seen")
    stale: bool = Field(
        default=False, description="True when the actuals are overdue or a gap holds the model back"
    )
    stale_reason: str | None = Field(default=None, description="Why the answer is stale")
    coverage: float = Field(description="Coverage of the prediction interval")
    what_if: bool = Field(description="True when planned sales changed the sale calendar")
    fallback: bool = Field(description="True when the seasonal-naive fallback answered")
    fallback_reason: str | None = Field(default=None, description="Why the fallback answered")


class ForecastResponse(_Answer):
    """Hourly forecasts from the origin."""

    forecast: list[ForecastHour]


class CapacityHour(BaseModel):
    """Instances to run in one hour, sized for the upper forecast."""

    timestamp: LocalHour
    upper: float = Field(description="Upper forecast, sessions per hour")
    instances: int = Field(description="Instances to keep CPU at the target utilisation")


class CapacityResponse(_Answer):
    """Instances per hour, the peak, and the capacity it is based on."""

    target_utilisation: float
    sessions_per_instance: float = Field(description="Learnt from the infrastructure data")
    peak_instances: int
    peak_hour: LocalHour
    hours: list[CapacityHour]


class ObservedHour(_Strict):
    """One observed hour: its traffic, and optionally how the infrastructure performed."""

    # Loose here, and not strict about NaN: the pipeline's own data rules refuse a bad hour or
    # value naming its row and check. The schema states what those rules take (a client reads
    # the spec), with two more the spec's words say: each hour once per batch, none after now
    # (give or take serving.max_future_hours).
    timestamp: str = Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$",
        description=f"{HOUR_DESCRIPTION}; not in the future, each hour once in a batch",
        examples=["2025-07-01T18:00:00"],
        json_schema_extra={"pattern": HOUR_PATTERN},
    )
    sessions: float = Field(
        description="Sessions in that hour (>= 0)",
        examples=[1250000.0],
        json_schema_extra={"minimum": 0, "maximum": FLOAT_MAX},
    )
    instances: InstanceCount | None = Field(
        default=None,
        description="Instances deployed (>= 1)",
        json_schema_extra={"minimum": 1},
    )
    cpu_utilization: float | None = Field(
        default=None, description="Mean CPU, 0 to 1", json_schema_extra={"minimum": 0, "maximum": 1}
    )
    p95_latency_ms: float | None = Field(
        default=None,
        description="95th percentile latency (> 0)",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": FLOAT_MAX},
    )
    error_rate: float | None = Field(
        default=None,
        description="Share of failed requests, 0 to 1",
        json_schema_extra={"minimum": 0, "maximum": 1},
    )


class ObservationsRequest(_Strict):
    """``POST /observations``: a batch of observed hours, stored all or nothing."""

    observations: list[ObservedHour] = Field(min_length=1, max_length=MAX_OBSERVATIONS)


class ObservationsResponse(BaseModel):
    """What a batch did, and where the served forecast now starts."""

    new: int = Field(description="Hours new to the store")
    corrected: int = Field(description="Hours whose stored value changed (the old one is kept)")
    unchanged: int = Field(description="Hours re-sent with the value already stored")
    origin: LocalHour = Field(description="The first forecast hour after this batch")
    last_observed: LocalHour = Field(description="The newest hour the model has seen")
    stale: bool
    stale_reason: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer: what is wrong, and per field where it applies."""

    error: str
    detail: list[dict[str, Any]] | None = None


def invalid(title: str, field: str, value: Any, message: str) -> ValidationError:
    """A pydantic error for a check that needs the service's state (the model's horizon).

    BentoML answers it with 400 and the same body as any other validation error.
    """
    detail = InitErrorDetails(
        type=PydanticCustomError("value_error", message),
        loc=tuple(field.split(".")),
        input=value,
    )
    return ValidationError.from_exception_data(title, [detail])


EXAMPLE_INPUT: dict[str, Any] = {"horizon": 24, "coverage": 0.9}
EXAMPLE_OBSERVATIONS: dict[str, Any] = {
    "observations": [{"timestamp": "2025-07-01T00:00:00", "sessions": 1250000.0}]
}
EXAMPLE_WHAT_IF: dict[str, Any] = {
    "horizon": 48,
    "events": [
        {"start": "2025-07-02T18:00:00", "end": "2025-07-02T22:00:00", "kind": "flash_sale"}
    ],
}
