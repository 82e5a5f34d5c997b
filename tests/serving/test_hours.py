"""Site-local hours: the spec's pattern, what the service reads, the years of a planned sale.

The pattern takes every real hour of its years and nothing else; the service reads exactly
what it takes.
"""

from __future__ import annotations

import calendar
import json
import re
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from traffic_forecast.serving.contract import EXAMPLE_SALE, PlannedSale
from traffic_forecast.serving.hours import HOUR_PATTERN, hour_pattern, sale_years


@pytest.mark.parametrize(
    ("first", "last"), [(1900, 2199), (2023, 2025), (2025, 2027), (2100, 2100)], ids=str
)
def test_the_hour_pattern_takes_every_real_hour_of_its_years_and_nothing_else(
    first: int, last: int
) -> None:
    pattern = re.compile(hour_pattern(first, last))
    hour = datetime(first, 1, 1)
    while hour.year <= last:  # every 7th hour: each hour of the day, every day of each month
        assert pattern.fullmatch(f"{hour:%Y-%m-%dT%H:00:00}"), hour
        hour += timedelta(hours=7)
    outside = [f"{first - 1}-12-31T23:00:00", f"{last + 1}-01-01T00:00:00"]
    feb29 = [f"{year}-02-29T00:00:00" for year in range(first, last + 1)]
    leap = [day for day in feb29 if calendar.isleap(int(day[:4]))]
    assert [day for day in feb29 if pattern.fullmatch(day)] == leap
    assert not any(pattern.fullmatch(stamp) for stamp in outside)


@pytest.mark.parametrize(
    "stamp",
    [
        "2025-00-10T00:00:00", "2025-13-10T00:00:00", "2025-01-00T00:00:00",
        "2025-01-32T00:00:00", "2025-04-31T00:00:00", "2025-02-29T00:00:00",
        "2100-02-29T00:00:00", "2025-01-01T24:00:00", "2025-01-01T18:30:00",
        "2025-01-01T18:00:00.000", "2025-01-01 18:00:00", "2025-01-01", "2025-01-01T18:00:00Z",
        "1899-12-31T23:00:00", "2200-01-01T00:00:00", "2025-01-01T18:00:00\n",
        "\u0662\u0660\u0662\u0665-01-01T18:00:00",
    ],
    ids=str,
)  # fmt: skip
def test_what_the_hour_pattern_refuses_a_sale_refuses_too(stamp: str) -> None:
    """The spec's pattern and the service agree: month 00 or 31 April is no date to either."""
    assert re.fullmatch(HOUR_PATTERN, stamp) is None
    with pytest.raises(ValidationError):
        PlannedSale.model_validate_json(json.dumps({**EXAMPLE_SALE, "start": stamp}))


@pytest.mark.parametrize(
    "stamp", ["2024-02-29T00:00:00", "2000-02-29T23:00", "2025-12-31T23:00:00"], ids=str
)
def test_what_the_hour_pattern_takes_a_sale_takes(stamp: str) -> None:
    assert re.fullmatch(HOUR_PATTERN, stamp)
    sale = {**EXAMPLE_SALE, "start": stamp, "end": "2199-12-31T23:00:00"}
    assert PlannedSale.model_validate_json(json.dumps(sale)).start == datetime.fromisoformat(stamp)


def test_a_sale_may_lie_in_the_forecast_windows_year_or_one_either_side() -> None:
    assert sale_years(datetime(2024, 2, 12), datetime(2024, 2, 18, 23)) == (2023, 2025)
    assert sale_years(datetime(2024, 12, 30), datetime(2025, 1, 5)) == (2023, 2026)
