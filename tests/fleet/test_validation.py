"""Fleet validation on a local Spark session: failures named by series, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from traffic_forecast.data.fleet_files import FleetDataError, write_fleet
from traffic_forecast.fleet.validation import REPORT_JSON, REPORT_MD, validate_and_publish

pytestmark = pytest.mark.slow

BAD = "eu-west/cart"


def _run(spark: SparkSession, frame: pd.DataFrame, tmp_path: Path) -> tuple[object, Path, Path]:
    raw, validated, reports = tmp_path / "raw", tmp_path / "validated", tmp_path / "reports"
    write_fleet(frame, raw)
    return validate_and_publish(spark, raw, validated, reports), validated, reports


def test_a_good_fleet_passes_and_is_published(
    spark: SparkSession, small_fleet: pd.DataFrame, tmp_path: Path
) -> None:
    result, validated, reports = _run(spark, small_fleet, tmp_path)
    assert result.passed, result.failures  # type: ignore[attr-defined]
    assert spark.read.parquet(str(validated)).count() == len(small_fleet)
    assert "✅ **Passed**" in (reports / REPORT_MD).read_text(encoding="utf-8")
    summed = spark.read.parquet(str(validated)).groupBy("timestamp").sum("target")
    assert summed.count() == small_fleet["timestamp"].nunique()


def test_one_bad_series_is_named_with_column_check_and_count(
    spark: SparkSession, small_fleet: pd.DataFrame, tmp_path: Path
) -> None:
    bad = small_fleet.copy()
    rows = bad.index[bad["series_id"] == BAD][:3]
    bad.loc[rows, "target"] = -1.0
    _result, validated, reports = _run(spark, bad, tmp_path)
    report = json.loads((reports / REPORT_JSON).read_text(encoding="utf-8"))
    assert report["passed"] is False
    assert report["failed_series"] == [BAD]
    counted = {(f["series_id"], f["column"], f["check"], f["count"]) for f in report["failures"]}
    assert counted == {(BAD, "target", "greater_than_or_equal_to(0.0)", 3)}
    assert f"`{BAD}`" in (reports / REPORT_MD).read_text(encoding="utf-8")
    assert not validated.exists()


def test_a_gap_and_a_duplicate_in_one_series(
    spark: SparkSession, small_fleet: pd.DataFrame, tmp_path: Path
) -> None:
    series = small_fleet["series_id"] == BAD
    hole = small_fleet.index[series][100:105]  # five hours missing: one gap
    repeated = small_fleet[series].iloc[[200]]
    frame = pd.concat([small_fleet.drop(hole), repeated], ignore_index=True)
    result, validated, _ = _run(spark, frame, tmp_path)
    found = {(f.series_id, f.column, f.check, f.count) for f in result.failures}  # type: ignore[attr-defined]
    assert found == {(BAD, "timestamp", "no_gap_before", 1), (BAD, "timestamp", "unique", 1)}
    assert not validated.exists()


def test_schema_drift_between_partitions_is_named(
    spark: SparkSession, small_fleet: pd.DataFrame, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    write_fleet(small_fleet, raw)
    drifted = next(raw.glob("series_id=us-east%2Fapi/month=*/part-0.parquet"))
    table = pq.read_table(drifted)
    as_int = table.set_column(
        table.schema.get_field_index("target"),
        "target",
        pa.array(table["target"].to_numpy().astype(np.int64)),
    )
    pq.write_table(as_int, drifted)
    result = validate_and_publish(spark, raw, tmp_path / "validated", tmp_path / "reports")
    [failure] = result.failures
    assert (failure.series_id, failure.column, failure.check) == (
        "us-east/api",
        "target",
        "same_schema",
    )
    assert failure.count == table.num_rows
    assert "int64, expected double" in failure.detail
    assert not (tmp_path / "validated").exists()


def test_a_missing_folder_is_named(spark: SparkSession, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-fleet"
    with pytest.raises(FleetDataError, match=str(missing)):
        validate_and_publish(spark, missing, tmp_path / "validated", tmp_path / "reports")


def test_a_missing_month_partition_is_named(
    spark: SparkSession, small_fleet: pd.DataFrame, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    write_fleet(small_fleet, raw)
    for file in raw.glob("series_id=us-east%2Fsearch/month=2024-03/*"):
        file.unlink()
    result = validate_and_publish(spark, raw, tmp_path / "validated", tmp_path / "reports")
    found = {(f.series_id, f.column, f.check, f.count) for f in result.failures}
    assert found == {("us-east/search", "month", "partition_present", 1)}
