"""Validation of the raw tables, as a pure function of their text: typed tables, or every failure.

Used by the validate stage and by the monitor (new actuals pass the pipeline's own checks).
Raw files are read as text and parsed first (`traffic_forecast.data.tables`), so a bad cell is
reported with its CSV line and every other check still runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa

from traffic_forecast.core.config import DataConfig
from traffic_forecast.data.gaps import fill_missing_hours
from traffic_forecast.data.schemas import (
    EVENT_PREFIX,
    InfrastructureRaw,
    SaleEventsRaw,
    TrafficRaw,
    sale_events_schema,
)
from traffic_forecast.data.tables import (
    Failure,
    ParsedTable,
    parse_for_schema,
    parse_number,
    parse_timestamp,
    read_csv_text,
    rows_failure,
    schema_failures,
)


@dataclass
class ValidationResult:
    """What validation found: the typed tables when everything passed, else the failures."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # file -> data rows read
    filled: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> `GapFill` record

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.failures


def validate_raw(
    data: DataConfig, texts: dict[str, pd.DataFrame | None], read_failures: list[Failure]
) -> ValidationResult:
    """Validate the raw tables given as text frames (keyed ``traffic``, ``sale_events``, …)."""
    result = ValidationResult(failures=list(read_failures))
    traffic = _traffic_table(data, texts.get("traffic"), result)
    if data.sale_events_file is not None:
        _check_table(
            ParsedTable(data.sale_events_file, texts.get("sale_events")),
            sale_events_schema(data.sale_kinds),
            "sale_events",
            result,
        )
    if data.infrastructure_file is not None:
        infra = _check_table(
            ParsedTable(data.infrastructure_file, texts.get("infrastructure")),
            InfrastructureRaw.to_schema(),
            "infrastructure",
            result,
        )
        if traffic is not None and infra is not None:
            # Checked on the parsed tables, so it reports even when other checks failed.
            result.failures += _infrastructure_covers_traffic(traffic, infra, data)
    if not result.passed:
        result.tables.clear()
    return result


def _check_table(
    table: ParsedTable, schema: pa.DataFrameSchema, key: str, result: ValidationResult
) -> pd.DataFrame | None:
    """Parse and validate one table; return it parsed (valid or not), or None if unreadable."""
    if table.frame is None:
        return None
    result.rows[table.file] = len(table.frame)
    parsed, failures = parse_for_schema(table.frame, schema, table.file, table.file_names)
    validated, found = schema_failures(parsed, schema, table, failures)
    result.failures += failures + found
    if validated is not None and not failures:
        result.tables[key] = validated
        return validated
    return parsed


def _traffic_table(
    data: DataConfig, text: pd.DataFrame | None, result: ValidationResult
) -> pd.DataFrame | None:
    if text is None:
        return None
    file = data.traffic_file
    names = {"timestamp": data.timestamp_column, "target": data.target_column}
    names |= {EVENT_PREFIX + c: c for c in data.event_columns}
    frame = text.rename(columns={v: k for k, v in names.items()})
    known = set(names) | ({data.hour_column} if data.hour_column else set())
    if not data.strict_columns:
        frame = frame[[c for c in frame.columns if c in known]]
    table = ParsedTable(file, frame, file_names=names)
    if data.hour_column is not None and "timestamp" in frame and data.hour_column in frame:
        frame["timestamp"], failures = _date_plus_hour(frame, data, file)
        result.failures += failures
        table.frame = frame.drop(columns=data.hour_column)
    schema = TrafficRaw.to_schema()
    if data.fill_gaps != "none":
        schema = _without_gap_check(schema)
    parsed = _check_table(table, schema, "traffic", result)
    if parsed is not None and "traffic" in result.tables and data.fill_gaps != "none":
        return _filled(parsed, data, result)
    return parsed


def _without_gap_check(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    # Gaps are filled (and counted) after the other checks pass; rows keep their file lines.
    stamp = schema.columns[TrafficRaw.timestamp]
    checks = [c for c in stamp.checks if c.name != "no_gap_before"]
    return schema.update_column(TrafficRaw.timestamp, checks=checks)


def _date_plus_hour(
    frame: pd.DataFrame, data: DataConfig, file: str
) -> tuple[pd.Series, list[Failure]]:
    assert data.hour_column is not None
    dates, failures = parse_timestamp(frame["timestamp"], file, data.timestamp_column)
    hours, hour_failures = parse_number(
        frame[data.hour_column], file, data.hour_column, integer=True
    )
    out_of_day = hours.notna() & ~hours.between(0, 23)
    if out_of_day.any():
        mask = out_of_day.to_numpy(dtype=bool)
        hour_failures.append(
            rows_failure(
                file,
                data.hour_column,
                "hour_in_0_23",
                frame.index.to_numpy()[mask],
                frame[data.hour_column].to_numpy()[mask],
            )
        )
    stamps = dates + pd.to_timedelta(hours.where(~out_of_day).astype("float64"), unit="h")
    # Back to ISO text: the schema parses every table the same way.
    return stamps.dt.strftime("%Y-%m-%d %H:%M:%S"), failures + hour_failures


def _filled(traffic: pd.DataFrame, data: DataConfig, result: ValidationResult) -> pd.DataFrame:
    """The traffic table with its gaps filled, noted in the report; unfillable hours fail."""
    filled = fill_missing_hours(traffic, data.fill_gaps)
    if len(filled.unfillable):
        del result.tables["traffic"]
        result.failures.append(_unfillable_failure(traffic, filled.unfillable, data))
        return traffic
    if filled.fill is not None:
        result.notes.append(filled.fill.note(data.traffic_file, data.target_column))
        result.filled[data.traffic_file] = filled.fill.to_json()
    table = TrafficRaw.validate(filled.frame)
    result.tables["traffic"] = table
    return table


def _unfillable_failure(
    traffic: pd.DataFrame, hours: pd.DatetimeIndex, data: DataConfig
) -> Failure:
    # A missing hour has no line of its own: name the line of the row after it (the row the
    # gap check names too), with the missing hour as the sample.
    stamps = pd.DatetimeIndex(traffic[TrafficRaw.timestamp])
    after = stamps.searchsorted(hours)
    return rows_failure(
        data.traffic_file,
        data.timestamp_column,
        "same_hour_observed_in_another_week",
        traffic.index.to_numpy()[after],
        [f"{hour:%Y-%m-%d %H:%M} missing" for hour in hours],
    )


def _infrastructure_covers_traffic(
    traffic: pd.DataFrame, infra: pd.DataFrame, data: DataConfig
) -> list[Failure]:
    stamp = TrafficRaw.timestamp
    if stamp not in traffic or InfrastructureRaw.timestamp not in infra:
        return []  # a missing column is reported by its table's own checks
    uncovered = traffic[stamp].notna() & ~traffic[stamp].isin(infra[InfrastructureRaw.timestamp])
    if not uncovered.any():
        return []
    mask = uncovered.to_numpy(dtype=bool)
    assert data.infrastructure_file is not None
    return [
        rows_failure(
            data.infrastructure_file,
            InfrastructureRaw.timestamp,
            "covers_every_traffic_hour",
            traffic.index.to_numpy()[mask],
            traffic[stamp].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()[mask],
        )
    ]


def raw_files(data: DataConfig) -> dict[str, str]:
    """The configured raw files, by table key (tables the config leaves out are absent)."""
    files = {
        "traffic": data.traffic_file,
        "sale_events": data.sale_events_file,
        "infrastructure": data.infrastructure_file,
    }
    return {key: file for key, file in files.items() if file is not None}


def read_raw(data: DataConfig) -> tuple[dict[str, pd.DataFrame | None], list[Failure]]:
    """Read the configured raw files as text; unreadable files become failures."""
    texts: dict[str, pd.DataFrame | None] = {}
    failures: list[Failure] = []
    for key, file in raw_files(data).items():
        texts[key], found = read_csv_text(Path(file))
        failures += found
    return texts, failures


def describe_files(data: DataConfig, result: ValidationResult) -> dict[str, dict[str, Any]]:
    """Per raw file: its MD5 (the hash DVC keeps of it), rows, and the hours a valid one covers.

    The PR report compares these with the base branch's to say what a data change changed.
    """
    described: dict[str, dict[str, Any]] = {}
    for key, file in raw_files(data).items():
        path = Path(file)
        if not path.is_file():
            continue  # reported as a failure by read_raw
        entry: dict[str, Any] = {
            "md5": hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest(),
            "rows": result.rows.get(file),
        }
        if file in result.filled:
            entry["filled"] = result.filled[file]
        table = result.tables.get(key)
        if table is not None and not table.empty:
            first, last = (
                (table[SaleEventsRaw.start].min(), table[SaleEventsRaw.end].max())
                if key == "sale_events"
                else (table[TrafficRaw.timestamp].min(), table[TrafficRaw.timestamp].max())
            )
            entry |= {"first": f"{first:%Y-%m-%d %H:%M}", "last": f"{last:%Y-%m-%d %H:%M}"}
        described[file] = entry
    return described
