"""A batch of observed hours (live actuals), checked by the raw traffic's own rules before storing.

Both ways in, ``POST /observations`` and ``traffic-forecast observe FILE.csv``, hand their rows
here as text, so a bad cell is named by its row and check exactly as the validate stage names
it in ``data/raw``. A batch is all or nothing: any failure rejects every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from traffic_forecast.core.config import DataConfig
from traffic_forecast.core.errors import DataValidationError
from traffic_forecast.data.schemas import OBSERVED_INFRASTRUCTURE, TrafficRaw, observations_schema
from traffic_forecast.data.tables import (
    HEADER_LINES,
    Failure,
    ParsedTable,
    parse_for_schema,
    read_csv_text,
    rows_failure,
    schema_failures,
)

OBSERVATION_COLUMNS = (TrafficRaw.timestamp, TrafficRaw.target, *OBSERVED_INFRASTRUCTURE)
FUTURE_CHECK = "not_in_the_future"


class BatchRejectedError(DataValidationError):
    """A batch failed a check: nothing of it is stored."""

    def __init__(self, source: str, failures: list[Failure], rows_from: int) -> None:
        self.source, self.failures, self.rows_from = source, failures, rows_from
        super().__init__(f"{source}: nothing stored, " + "; ".join(self.reasons()))

    def rows(self, failure: Failure) -> list[int]:
        """The failing rows, numbered as the source numbers them (API: from 0; CSV: lines)."""
        return [line - HEADER_LINES - 1 + self.rows_from for line in failure.lines]

    def reasons(self) -> list[str]:
        """One sentence per failed check: column, check, rows and values."""
        reasons = []
        for failure in self.failures:
            rows = self.rows(failure)
            where = f"row{'s' if len(rows) > 1 else ''} {_shown(rows)}" if rows else "the batch"
            values = f" (values {_shown(list(failure.samples))})" if failure.samples else ""
            reasons.append(f"{where}: {failure.column} fails {failure.check}{values}")
        return reasons

    def detail(self) -> list[dict[str, object]]:
        """The failures for a JSON answer."""
        return [
            {
                "column": f.column,
                "check": f.check,
                "rows": self.rows(f),
                "values": list(f.samples),
            }
            for f in self.failures
        ]


def _shown(items: list[int] | list[str], limit: int = 5) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass(frozen=True)
class Batch:
    """Checked observed hours, in time order: `OBSERVATION_COLUMNS` (infrastructure may be NA)."""

    frame: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.frame)


def check_batch(
    text: pd.DataFrame,
    source: str,
    *,
    now: pd.Timestamp,
    max_future_hours: float,
    rows_from: int = 0,
    file_names: dict[str, str] | None = None,
) -> Batch:
    """Parse and check a batch given as text (pipeline column names); raise `BatchRejectedError`.

    ``now`` is the site-local time: an hour is observed once it has begun, so hours later than
    ``now + max_future_hours`` (clock skew) are refused. ``rows_from`` numbers the rows in
    messages (0 for a JSON array; 2 for a CSV file, whose line 1 is the header).
    """
    if text.empty:
        raise BatchRejectedError(source, [Failure(source, "-", "has_rows", 1)], rows_from)
    table = ParsedTable(source, text, file_names=file_names or {})
    schema = observations_schema()
    parsed, failures = parse_for_schema(text, schema, source, table.file_names)
    validated, schema_found = schema_failures(parsed, schema, table, failures)
    failures += schema_found
    stamps = parsed.get(TrafficRaw.timestamp)
    if stamps is not None and pd.api.types.is_datetime64_any_dtype(stamps):
        latest = now + pd.Timedelta(hours=max_future_hours)
        future = stamps > latest
        if future.any():
            positions = future.to_numpy().nonzero()[0]
            failures.append(
                rows_failure(
                    source,
                    table.name_in_file(TrafficRaw.timestamp),
                    FUTURE_CHECK,
                    positions,
                    stamps.iloc[positions].astype(str),
                )
            )
    if failures or validated is None:
        raise BatchRejectedError(source, failures, rows_from)
    frame = validated.reindex(columns=list(OBSERVATION_COLUMNS))
    frame = frame.sort_values(TrafficRaw.timestamp, kind="stable").reset_index(drop=True)
    return Batch(frame, source)


def read_csv_batch(
    path: Path, data: DataConfig, *, now: pd.Timestamp, max_future_hours: float
) -> Batch:
    """A CSV of observed hours, columns named as in ``data.traffic_file`` (plus infrastructure)."""
    text, failures = read_csv_text(path)
    if text is None:
        raise BatchRejectedError(str(path), failures, HEADER_LINES + 1)
    names = {TrafficRaw.timestamp: data.timestamp_column, TrafficRaw.target: data.target_column}
    renamed = text.rename(columns={v: k for k, v in names.items()})
    return check_batch(
        renamed,
        str(path),
        now=now,
        max_future_hours=max_future_hours,
        rows_from=HEADER_LINES + 1,
        file_names=names,
    )
