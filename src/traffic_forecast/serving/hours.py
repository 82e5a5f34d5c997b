"""Site-local hours in the HTTP contract: the pattern of real hours, and reading them.

Hours carry no UTC offset, so they are not RFC 3339 ``date-time`` strings: the schema says
what they are instead, as a pattern that takes every real hour of its years and nothing else
(no month 00, no 30 February), and the service reads exactly what the pattern takes.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, WithJsonSchema

# The years an hour may name, well inside pandas' calendar (1677 to 2262); the served spec
# narrows them to what the model and the clock take (`traffic_forecast.serving.openapi`).
FIRST_YEAR, LAST_YEAR = 1900, 2199


def _digit_class(digits: set[int]) -> str:
    low, high = min(digits), max(digits)
    if low == high:
        return str(low)
    if len(digits) == high - low + 1:
        return f"[{low}-{high}]"
    return "[" + "".join(map(str, sorted(digits))) + "]"


def _numbers_pattern(numbers: Iterable[str]) -> str:
    """A regex matching exactly ``numbers``, strings of digits all of one length."""
    tails: dict[str, set[str]] = defaultdict(set)
    for number in numbers:
        tails[number[0]].add(number[1:])
    heads: dict[str, set[int]] = defaultdict(set)  # a pattern of the rest: the digits before it
    for head, rest in tails.items():
        heads["" if rest == {""} else _numbers_pattern(rest)].add(int(head))
    parts = sorted(_digit_class(digits) + rest for rest, digits in heads.items())
    return parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"


def hour_pattern(first_year: int = FIRST_YEAR, last_year: int = LAST_YEAR) -> str:
    r"""The regex of a real hour of ``first_year`` to ``last_year``: ``YYYY-MM-DDTHH:00:00``.

    Days a month has (29 February in leap years only), hours 00 to 23, seconds optional. ASCII
    digits, ``[0-9]``: ``\d`` would match any Unicode digit in Python and in pydantic's regex.
    """
    years = range(first_year, last_year + 1)
    days = (
        "(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"  # days every month has
        "|(?:0[13-9]|1[0-2])-(?:29|30)"  # every month but February
        "|(?:0[13578]|1[02])-31"
    )
    dates = [f"{_numbers_pattern(f'{year:04d}' for year in years)}-(?:{days})"]
    leap = [f"{year:04d}" for year in years if calendar.isleap(year)]
    if leap:
        dates.append(f"{_numbers_pattern(leap)}-02-29")
    return rf"^(?:{'|'.join(dates)})T(?:[01][0-9]|2[0-3]):00(?::00)?$"


HOUR_PATTERN = hour_pattern()
HOUR_DESCRIPTION = (
    f"An hour, site-local time without UTC offset: YYYY-MM-DDTHH:00:00, {FIRST_YEAR} to {LAST_YEAR}"
)
_HOUR = re.compile(HOUR_PATTERN)


def _why_not_an_hour(field: str, value: str) -> str:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return f"{field} {value!r} is not an hour YYYY-MM-DDTHH:00:00"
    if stamp.tzinfo is not None:
        return f"{field} has a time zone: give site-local time without one"
    if (stamp.minute, stamp.second, stamp.microsecond) != (0, 0, 0):
        return f"{field} {value} is not on the hour"
    if not FIRST_YEAR <= stamp.year <= LAST_YEAR:
        return f"{field} {value} is not in the years {FIRST_YEAR} to {LAST_YEAR}"
    return f"{field} {value!r} is not written YYYY-MM-DDTHH:00:00"


def _an_hour(value: Any, info: ValidationInfo) -> Any:
    """JSON text in the pattern's form, as a naive datetime; nothing else the pattern refuses.

    Pydantic alone would also take ``2025-07-01 18:00``, ``2025-07-01`` or fractions of a
    second, which the spec refuses: the service refuses them too.
    """
    if not isinstance(value, str):
        return value  # a datetime from Python: pydantic checks its type, the model the rest
    if _HOUR.fullmatch(value) is None:
        raise ValueError(_why_not_an_hour(info.field_name or "hour", value))
    return datetime.fromisoformat(value)


# A naive datetime in Python; in JSON, text the pattern takes.
LocalHour = Annotated[
    datetime,
    BeforeValidator(_an_hour),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": HOUR_PATTERN,
            "description": HOUR_DESCRIPTION,
            "examples": ["2025-07-01T18:00:00"],
        }
    ),
]


def sale_years(first_hour: datetime, last_hour: datetime) -> tuple[int, int]:
    """The first and last year a planned sale may name: the forecast window's, and one either side.

    A sale years away from the window is a client's mistake (and its hours-since-start feature
    far outside anything the model learnt); a year is a bound JSON Schema can state.
    """
    return max(first_hour.year - 1, FIRST_YEAR), min(last_hour.year + 1, LAST_YEAR)
