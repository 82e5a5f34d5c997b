"""A batch of observed hours: every bad cell named by row, column and check; nothing half-taken."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from traffic_forecast.core.config import DataConfig
from traffic_forecast.data.observations import (
    FUTURE_CHECK,
    OBSERVATION_COLUMNS,
    BatchRejectedError,
    check_batch,
    read_csv_batch,
)
from traffic_forecast.data.schemas import OBSERVED_INFRASTRUCTURE
from traffic_forecast.data.tables import OFFSET_CHECK

NOW = pd.Timestamp("2024-03-01 12:30")  # site-local
MAX_FUTURE_HOURS = 2.0  # so 14:00 is the latest hour taken


def _text(
    *rows: tuple[str | None, ...], columns: tuple[str, ...] = ("timestamp", "target")
) -> pd.DataFrame:
    """A batch as the API hands it over: text cells, None where a value is absent."""
    return pd.DataFrame(list(rows), columns=list(columns), dtype=object)


def _check(text: pd.DataFrame) -> pd.DataFrame:
    return check_batch(text, "observations", now=NOW, max_future_hours=MAX_FUTURE_HOURS).frame


def _rejected(text: pd.DataFrame) -> BatchRejectedError:
    with pytest.raises(BatchRejectedError) as caught:
        _check(text)
    return caught.value


def _named(error: BatchRejectedError) -> set[tuple[str, str, tuple[int, ...]]]:
    """Each failure as (column, check, rows)."""
    return {(f.column, f.check, tuple(error.rows(f))) for f in error.failures}


def test_a_valid_batch_is_returned_in_time_order_with_na_infrastructure() -> None:
    text = _text(
        ("2024-03-01T03:00:00", "30", "4", "0.5"),
        ("2024-03-01T01:00:00", "10", None, None),
        ("2024-03-01T14:00:00", "0", "2", None),  # the latest hour taken: NOW + 2 h, floored
        columns=("timestamp", "target", "instances", "cpu_utilization"),
    )
    batch = check_batch(text, "observations", now=NOW, max_future_hours=MAX_FUTURE_HOURS)

    frame = batch.frame
    assert len(batch) == 3
    assert batch.source == "observations"
    assert list(frame.columns) == list(OBSERVATION_COLUMNS)
    assert list(frame["timestamp"]) == [
        pd.Timestamp("2024-03-01 01:00"),
        pd.Timestamp("2024-03-01 03:00"),
        pd.Timestamp("2024-03-01 14:00"),
    ]
    assert frame["target"].tolist() == [10.0, 30.0, 0.0]
    assert frame["instances"].isna().tolist() == [True, False, False]
    assert frame["instances"].dropna().tolist() == [4, 2]
    assert frame["cpu_utilization"].isna().tolist() == [True, False, True]
    for absent in ("p95_latency_ms", "error_rate"):
        assert frame[absent].isna().all()


# (cells of the middle row of three, the column and check named, the value shown)
BAD_ROWS = {
    "nan": (("2024-03-01T02:00:00", "nan"), "target", "not_nan", "nan"),
    "negative": (
        ("2024-03-01T02:00:00", "-1"),
        "target",
        "greater_than_or_equal_to(0.0)",
        "-1.0",
    ),
    "inf": (("2024-03-01T02:00:00", "inf"), "target", "finite", "inf"),
    "not_a_number": (("2024-03-01T02:00:00", "12k"), "target", "parsable_as_number", "12k"),
    "missing_value": (("2024-03-01T02:00:00", None), "target", "not_nullable", "nan"),
    "not_on_the_hour": (
        ("2024-03-01T02:30:00", "5"),
        "timestamp",
        "on_the_hour",
        "2024-03-01 02:30:00",
    ),
    "utc_offset": (
        ("2024-03-01T02:00:00+02:00", "5"),
        "timestamp",
        OFFSET_CHECK,
        "2024-03-01T02:00:00+02:00",
    ),
    "utc_z": (("2024-03-01T02:00Z", "5"), "timestamp", OFFSET_CHECK, "2024-03-01T02:00Z"),
    "not_a_time": (("yesterday", "5"), "timestamp", "parsable_as_timestamp", "yesterday"),
    "in_the_future": (
        ("2024-03-01T15:00:00", "5"),
        "timestamp",
        FUTURE_CHECK,
        "2024-03-01 15:00:00",
    ),
}


@pytest.mark.parametrize(
    ("cells", "column", "check", "shown"), BAD_ROWS.values(), ids=BAD_ROWS.keys()
)
def test_a_bad_cell_rejects_the_batch_naming_row_column_and_check(
    cells: tuple[str | None, ...], column: str, check: str, shown: str
) -> None:
    error = _rejected(_text(("2024-03-01T00:00:00", "1"), cells, ("2024-03-01T04:00:00", "3")))

    assert error.detail() == [{"column": column, "check": check, "rows": [1], "values": [shown]}]
    assert error.reasons() == [f"row 1: {column} fails {check} (values {shown})"]
    assert str(error).startswith("observations: nothing stored, row 1:")


def test_duplicate_hours_in_a_batch_name_both_rows() -> None:
    error = _rejected(
        _text(
            ("2024-03-01T00:00:00", "1"),
            ("2024-03-01T01:00:00", "2"),
            ("2024-03-01T01:00:00", "2"),  # the same value twice is still ambiguous
        )
    )
    assert _named(error) == {("timestamp", "field_uniqueness", (1, 2))}


@pytest.mark.parametrize(
    ("cells", "column", "check"),
    [
        (("0", None, None, None), "instances", "greater_than_or_equal_to(1)"),
        (("2.5", None, None, None), "instances", "integer"),
        ((None, "1.5", None, None), "cpu_utilization", "less_than_or_equal_to(1.0)"),
        ((None, None, "0", None), "p95_latency_ms", "greater_than(0.0)"),
        ((None, None, None, "-0.1"), "error_rate", "greater_than_or_equal_to(0.0)"),
        ((None, None, "inf", None), "p95_latency_ms", "finite"),
    ],
    ids=[
        "instances_zero",
        "instances_fraction",
        "cpu_over_1",
        "latency_zero",
        "errors_negative",
        "latency_inf",
    ],
)
def test_infrastructure_columns_keep_their_rules(
    cells: tuple[str | None, ...], column: str, check: str
) -> None:
    columns = ("timestamp", "target", *OBSERVED_INFRASTRUCTURE)
    error = _rejected(_text(("2024-03-01T00:00:00", "1", *cells), columns=columns))
    assert _named(error) == {(column, check, (0,))}


def test_a_batch_mixing_good_and_bad_rows_names_every_failure_and_returns_nothing() -> None:
    error = _rejected(
        _text(
            ("2024-03-01T00:00:00", "10"),
            ("2024-03-01T01:00:00", "-4"),
            ("2024-03-01T02:00:00", "12"),
            ("2024-03-01T03:15:00", "13"),
            ("2024-03-01T04:00:00+01:00", "14"),
            ("2024-03-01T05:00:00", "nan"),
            ("2024-03-01T06:00:00", "16"),
            ("2024-03-01T06:00:00", "inf"),
            ("2024-03-02T00:00:00", "18"),
            ("2024-03-01T09:00:00", "-1"),
        )
    )

    assert _named(error) == {
        ("target", "greater_than_or_equal_to(0.0)", (1, 9)),
        ("timestamp", "on_the_hour", (3,)),
        ("timestamp", OFFSET_CHECK, (4,)),
        ("target", "not_nan", (5,)),
        ("timestamp", "field_uniqueness", (6, 7)),
        ("target", "finite", (7,)),
        ("timestamp", FUTURE_CHECK, (8,)),
    }
    assert len(error.reasons()) == 7
    assert "rows 1, 9: target fails greater_than_or_equal_to(0.0)" in str(error)


def test_the_future_limit_follows_max_future_hours() -> None:
    text = _text(("2024-03-01T16:00:00", "1"))
    with pytest.raises(BatchRejectedError, match=FUTURE_CHECK):
        check_batch(text, "observations", now=NOW, max_future_hours=MAX_FUTURE_HOURS)
    taken = check_batch(text, "observations", now=NOW, max_future_hours=4.0)
    assert taken.frame["timestamp"].tolist() == [pd.Timestamp("2024-03-01 16:00")]


def test_an_empty_batch_is_rejected() -> None:
    error = _rejected(_text())
    assert _named(error) == {("-", "has_rows", ())}
    assert error.reasons() == ["the batch: - fails has_rows"]


def test_columns_the_batch_must_not_or_must_have() -> None:
    unknown = _rejected(
        _text(("2024-03-01T00:00:00", "1", "eu"), columns=("timestamp", "target", "region"))
    )
    assert _named(unknown) == {("region", "column_in_schema", ())}
    missing = _rejected(_text(("2024-03-01T00:00:00",), columns=("timestamp",)))
    assert _named(missing) == {("target", "column_in_dataframe", ())}


BIKES = DataConfig(timestamp_column="hour_start", target_column="cnt")  # not the example's names


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "observed.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _read(path: Path, data: DataConfig = BIKES) -> pd.DataFrame:
    return read_csv_batch(path, data, now=NOW, max_future_hours=MAX_FUTURE_HOURS).frame


def test_a_csv_batch_numbers_rows_as_lines_and_names_the_files_columns(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "hour_start,cnt,instances\n"
        "2024-03-01T00:00:00,5,2\n"  # line 2
        "2024-03-01T01:00:00,-3,2\n"  # line 3
        "2024-03-01T02:30:00,4,2\n"  # line 4
        "2024-03-01T03:00:00,,0\n",  # line 5
    )
    with pytest.raises(BatchRejectedError) as caught:
        _read(path)

    assert _named(caught.value) == {
        ("cnt", "greater_than_or_equal_to(0.0)", (3,)),
        ("hour_start", "on_the_hour", (4,)),
        ("cnt", "not_nullable", (5,)),
        ("instances", "greater_than_or_equal_to(1)", (5,)),
    }
    assert str(caught.value).startswith(f"{path}: nothing stored")
    assert "row 3: cnt fails greater_than_or_equal_to(0.0) (values -3.0)" in str(caught.value)


def test_a_csv_batch_is_returned_under_the_pipelines_names(tmp_path: Path) -> None:
    path = _csv(tmp_path, "hour_start,cnt\n2024-03-01T01:00:00,7\n2024-03-01T00:00:00,6\n")
    frame = _read(path)
    assert list(frame.columns) == list(OBSERVATION_COLUMNS)
    assert frame["target"].tolist() == [6.0, 7.0]


def test_a_csv_batch_is_read_by_the_configs_column_names(tmp_path: Path) -> None:
    example = _csv(tmp_path, "timestamp,sessions\n2024-03-01T00:00:00,6\n")
    assert _read(example, DataConfig())["target"].tolist() == [6.0]
    other = _csv(tmp_path, "when,sessions\n2024-03-01T00:00:00,6\n")
    with pytest.raises(BatchRejectedError) as caught:
        _read(other)
    assert _named(caught.value) == {
        ("hour_start", "column_in_dataframe", ()),
        ("cnt", "column_in_dataframe", ()),
        ("when", "column_in_schema", ()),
        ("sessions", "column_in_schema", ()),
    }


@pytest.mark.parametrize(
    ("content", "check"),
    [(None, "file_exists"), ("", "file_not_empty"), ("hour_start,cnt\n", "has_rows")],
    ids=["missing", "empty", "header_only"],
)
def test_a_csv_file_without_rows_is_refused(
    tmp_path: Path, content: str | None, check: str
) -> None:
    path = tmp_path / "observed.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(BatchRejectedError) as caught:
        _read(path)
    assert _named(caught.value) == {("-", check, ())}
