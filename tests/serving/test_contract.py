"""The request models: strict types, hourly naive timestamps, every violation named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from traffic_forecast.serving.contract import (
    EXAMPLE_INPUT,
    EXAMPLE_SALE,
    EXAMPLE_WHAT_IF,
    CapacityRequest,
    ForecastRequest,
    ObservationsRequest,
    PlannedSale,
    invalid,
)

SALE = {"start": "2025-07-02T18:00:00", "end": "2025-07-02T22:00:00", "kind": "flash_sale"}


def _sale(**changes: Any) -> dict[str, Any]:
    return {"events": [{**SALE, **changes}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"horizon": 0}', "horizon"),
        ('{"horizon": 169}', "horizon"),
        ('{"horizon": -24}', "horizon"),
        ('{"horizon": "24"}', "horizon"),
        ('{"horizon": 24.5}', "horizon"),
        ('{"horizon": true}', "horizon"),
        ('{"horizon": NaN}', "horizon"),
        ('{"coverage": 0}', "coverage"),
        ('{"coverage": 1}', "coverage"),
        ('{"coverage": 1.5}', "coverage"),
        ('{"coverage": NaN}', "coverage"),
        ('{"coverage": Infinity}', "coverage"),
        ('{"coverage": "0.9"}', "coverage"),
        ('{"hours": 24}', "hours"),
        (json.dumps(_sale(end="2025-07-02T17:00:00")), "events.0"),
        (json.dumps(_sale(end=SALE["start"])), "events.0"),
        (json.dumps(_sale(start="2025-07-02T18:30:00")), "events.0"),
        (json.dumps(_sale(start="2025-07-02T18:00:00+02:00")), "events.0"),
        (json.dumps(_sale(start=1751479200)), "events.0.start"),
        (json.dumps(_sale(kind="")), "events.0.kind"),
        (json.dumps(_sale(discount_pct=101)), "events.0.discount_pct"),
        (
            '{"events": [{"start": "2025-07-02T18:00:00", "end": "2025-07-02T22:00:00", '
            '"kind": "flash_sale", "discount_pct": NaN}]}',
            "events.0.discount_pct",
        ),
        (json.dumps({"events": [SALE] * 101}), "events"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_each_violation_is_refused_naming_its_field(body: str, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ForecastRequest.model_validate_json(body)
    locations = {".".join(str(part) for part in error["loc"]) for error in raised.value.errors()}
    assert any(location.startswith(field) for location in locations), locations


def test_the_defaults_are_left_to_the_service() -> None:
    request = ForecastRequest.model_validate_json("{}")
    assert (request.horizon, request.coverage, request.events) == (None, None, [])
    assert (
        ForecastRequest.model_validate_json('{"horizon": null, "coverage": null}').horizon is None
    )


def test_the_examples_are_valid_requests() -> None:
    assert ForecastRequest.model_validate(EXAMPLE_INPUT).horizon == 24
    what_if = ForecastRequest.model_validate_json(json.dumps(EXAMPLE_WHAT_IF))
    assert what_if.events[0].kind == "flash_sale"
    assert what_if.events[0].end.hour == 22


@pytest.mark.parametrize("target", ["0", "1.2", "NaN", "-0.5", '"0.6"'], ids=str)
def test_the_capacity_target_lies_in_zero_one(target: str) -> None:
    with pytest.raises(ValidationError):
        CapacityRequest.model_validate_json(f'{{"target_utilisation": {target}}}')
    assert CapacityRequest.model_validate_json('{"target_utilisation": 1}').target_utilisation == 1


def test_a_check_needing_the_service_reads_like_any_other_validation_error() -> None:
    error = invalid("ForecastRequest", "events.0.kind", "mega", "unknown sale kind 'mega'")
    assert error.errors()[0]["loc"] == ("events", "0", "kind")
    assert error.errors()[0]["msg"] == "unknown sale kind 'mega'"
    assert error.title == "ForecastRequest"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "2025-07-02T18:30:00"}, "start 2025-07-02T18:30:00 is not on the hour"),
        ({"end": "2025-07-02T22:00:00Z"}, "end has a time zone"),
        ({"end": "2025-07-02T17:00:00"}, "is not after start"),
    ],
    ids=["minutes", "time-zone", "backwards"],
)
def test_a_bad_sale_says_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ForecastRequest.model_validate_json(json.dumps(_sale(**changes)))


def test_the_example_sale_is_a_valid_sale() -> None:
    sale = PlannedSale.model_validate_json(json.dumps(EXAMPLE_SALE))
    assert sale.end > sale.start


def test_a_whole_number_is_an_integer_as_json_schema_says() -> None:
    assert ForecastRequest.model_validate_json('{"horizon": 24.0}').horizon == 24
    batch = (
        '{"observations": [{"timestamp": "2024-02-12T00:00:00", "sessions": 1, "instances": 3.0}]}'
    )
    assert ObservationsRequest.model_validate_json(batch).observations[0].instances == 3
