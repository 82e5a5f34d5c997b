"""Read raw CSV files as text and parse them into typed columns, recording every failure.

Nothing here raises on bad data: each problem becomes a `Failure` naming the file, the column,
the check and the CSV line numbers, so the validation report can list them all at once.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pandera.pandas as pa

from traffic_forecast.data.schemas import TABLE_CHECK_COLUMNS

HEADER_LINES = 1  # CSV line of the first data row is its index + HEADER_LINES + 1
SAMPLES_KEPT = 100  # failing values kept as text per check (the JSON report shows 100)
_NAN_WORDS = frozenset({"nan", "na", "n/a", "null", "none"})
OFFSET_CHECK = "no_utc_offset"
# A time of day followed by a UTC offset as ISO 8601 writes it (Z, +02, +0200, +02:00).
_UTC_OFFSET = r"[T\s]\d{2}.*(?:Z|[+-]\d{2}(?::?\d{2})?)\s*$"


@dataclass(frozen=True)
class Failure:
    """One check that failed, with the CSV lines (header is line 1) where it failed."""

    file: str
    column: str
    check: str
    count: int
    lines: tuple[int, ...] = ()
    samples: tuple[str, ...] = ()


@dataclass
class ParsedTable:
    """A raw table after parsing: typed frame (``None`` if unreadable) and failures so far."""

    file: str
    frame: pd.DataFrame | None
    failures: list[Failure] = field(default_factory=list)
    file_names: dict[str, str] = field(default_factory=dict)  # pipeline name -> file's name

    def name_in_file(self, column: str) -> str:
        """The column's name as the user's file spells it."""
        return self.file_names.get(column, column)


def csv_line(index: int) -> int:
    """The line number in the CSV file of the data row at ``index``."""
    return index + HEADER_LINES + 1


def read_csv_text(path: Path) -> tuple[pd.DataFrame | None, list[Failure]]:
    """Read a CSV file with every cell as text; unreadable files become failures."""
    file = str(path)
    if not path.is_file():
        return None, [Failure(file, "-", "file_exists", 1)]
    raw = path.read_bytes()
    if not raw.strip():
        return None, [Failure(file, "-", "file_not_empty", 1)]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        sample = raw[exc.start : exc.start + 8].hex(" ")
        return None, [Failure(file, "-", "utf8_encoding", 1, (line,), (f"bytes {sample}",))]
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),  # decoded above only to check it; parsing bytes is faster
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return None, [Failure(file, "-", "csv_structure", 1, (), (str(exc).strip(),))]
    if frame.empty:
        return None, [Failure(file, "-", "has_rows", 1)]
    return frame, []


def rows_failure(
    file: str, column: str, check: str, index: npt.ArrayLike, values: npt.ArrayLike
) -> Failure:
    """A failure at the data rows ``index`` (positions) whose cells hold ``values``.

    Every line is kept (the count and de-duplication need them); only the first
    `SAMPLES_KEPT` values are turned into text, since a report shows a handful.
    """
    positions = np.asarray(index, dtype=np.int64)
    shown = np.asarray(values, dtype=object)[:SAMPLES_KEPT]
    lines = (positions + HEADER_LINES + 1).tolist()
    return Failure(file, column, check, len(lines), tuple(lines), tuple(map(str, shown)))


def _failure_at(
    file: str, column: str, check: str, text: pd.Series, bad: pd.Series
) -> list[Failure]:
    mask = bad.to_numpy(dtype=bool)
    if not mask.any():
        return []
    return [rows_failure(file, column, check, text.index.to_numpy()[mask], text.to_numpy()[mask])]


def parse_number(
    text: pd.Series, file: str, column: str, *, integer: bool
) -> tuple[pd.Series, list[Failure]]:
    """Parse text to numbers; unparsable or NaN-spelled cells are failures and become NA."""
    values = pd.to_numeric(text, errors="coerce")
    given = text.notna()
    spelled_nan = given & text.str.strip().str.lower().isin(_NAN_WORDS)
    unparsable = given & values.isna() & ~spelled_nan
    failures = _failure_at(file, column, "not_nan", text, spelled_nan)
    failures += _failure_at(file, column, "parsable_as_number", text, unparsable)
    if not integer:
        return values.astype("float64"), failures
    as_float = values.astype("float64")
    not_whole = values.notna() & ~(np.isfinite(as_float) & (as_float % 1 == 0))
    failures += _failure_at(file, column, "integer", text, not_whole)
    whole = as_float.where(~not_whole)
    return whole.astype("Int64"), failures


def parse_timestamp(text: pd.Series, file: str, column: str) -> tuple[pd.Series, list[Failure]]:
    """Parse ISO 8601 text to timestamps; unparsable cells are failures and become NaT.

    Hours are site-local without a UTC offset. pandas cannot parse a column mixing the two
    (it raises), so a cell with an offset is a failure of its own, blanked before parsing.
    """
    has_offset = text.astype("string").str.contains(_UTC_OFFSET, regex=True).fillna(False)
    failures = _failure_at(file, column, OFFSET_CHECK, text, has_offset)
    text = text.mask(has_offset)
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    # pandas parses years like 2999 at a coarser unit; nanoseconds cannot hold them.
    representable = (parsed >= pd.Timestamp.min) & (parsed <= pd.Timestamp.max)
    values = parsed.where(representable).astype("datetime64[ns]")
    bad = text.notna() & values.isna()
    return values, failures + _failure_at(file, column, "parsable_as_timestamp", text, bad)


def parse_for_schema(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, file: str, file_names: dict[str, str]
) -> tuple[pd.DataFrame, list[Failure]]:
    """Parse each text column into the dtype its schema column declares."""
    parsed = frame.copy()
    failures: list[Failure] = []
    for name in frame.columns:
        column_schema = _schema_column(schema, str(name))
        if column_schema is None:
            continue  # not in the schema: strictness reports it
        dtype = str(column_schema.dtype)
        shown = file_names.get(str(name), str(name))
        if dtype.startswith("datetime64"):
            parsed[name], found = parse_timestamp(frame[name], file, shown)
        elif dtype in {"int64", "Int64"}:
            parsed[name], found = parse_number(frame[name], file, shown, integer=True)
        elif dtype.startswith("float"):
            parsed[name], found = parse_number(frame[name], file, shown, integer=False)
        else:
            continue
        failures += found
    return parsed, failures


def _schema_column(schema: pa.DataFrameSchema, name: str) -> pa.Column | None:
    columns: dict[str, pa.Column] = schema.columns
    if name in columns:
        return columns[name]
    for column in columns.values():
        if column.regex and re.fullmatch(str(column.name), name):
            return column
    return None


def _merge_cross_column_cases(cases: pd.DataFrame) -> pd.DataFrame:
    # Pandera lists a failing row of a dataframe-wide check once per column; one line per row,
    # showing only the columns the check reads, is what a person wants to see.
    spans = cases["check"].isin(list(TABLE_CHECK_COLUMNS))
    if not spans.any():
        return cases
    rows = []
    for (check, index), group in cases[spans].groupby(["check", "index"], sort=True):
        wanted = TABLE_CHECK_COLUMNS[str(check)].split(", ")
        values = group.set_index("column")["failure_case"].reindex(wanted)
        shown = " / ".join(str(v) for v in values)
        rows.append({"column": wanted[0], "check": check, "index": index, "failure_case": shown})
    return pd.concat([cases[~spans], pd.DataFrame(rows)], ignore_index=True)


def schema_failures(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    table: ParsedTable,
    already_reported: list[Failure],
) -> tuple[pd.DataFrame | None, list[Failure]]:
    """Validate lazily; return the validated frame (or ``None``) and failures by check."""
    try:
        return schema.validate(frame, lazy=True), []
    except pa.errors.SchemaErrors as exc:
        cases = _merge_cross_column_cases(exc.failure_cases)
    reported_lines: dict[str, npt.NDArray[np.int64]] = {}
    for failure in already_reported:
        known = reported_lines.get(failure.column, np.empty(0, dtype=np.int64))
        reported_lines[failure.column] = np.union1d(
            known, np.asarray(failure.lines, dtype=np.int64)
        )
    failures: list[Failure] = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        check_name = str(check)
        if check_name.startswith("dtype("):
            continue  # a consequence of a parse failure, already reported with its rows
        is_table_level = check_name in {"column_in_schema", "column_in_dataframe"}
        if (
            not isinstance(column, str)
            or column == schema.name
            or check_name in TABLE_CHECK_COLUMNS
        ):
            shown = TABLE_CHECK_COLUMNS.get(check_name, "-")  # a check across columns
        else:
            shown = table.name_in_file(str(column))
        located = group[group["index"].notna()]
        positions = located["index"].to_numpy(dtype=np.int64)
        if check_name == "not_nullable":
            # A parse failure on the same cell already says why it is empty.
            seen = reported_lines.get(shown, np.empty(0, dtype=np.int64))
            keep = ~np.isin(positions + HEADER_LINES + 1, seen)
            located, positions = located[keep], positions[keep]
            if len(positions) == 0:
                continue
        if is_table_level:
            failures += [
                Failure(table.file, table.name_in_file(str(c)), check_name, 1)
                for c in group["failure_case"]
            ]
            continue
        if len(positions) == 0:
            failures.append(Failure(table.file, shown, check_name, 1))  # not row-specific
            continue
        failures.append(
            rows_failure(table.file, shown, check_name, positions, located["failure_case"])
        )
    return None, failures
