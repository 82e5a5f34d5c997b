"""Validation of the fleet on Spark: the single series' rules per series, and the fleet's own.

Pandera's ``pyspark.sql`` backend checks the schema and the column rules; its errors name a
column and a check but no series. Every rule is therefore also a Spark condition, counted per
series in one pass, so the report says which series failed which check on how many rows.
Schema drift between partitions is found from the Parquet footers before Spark reads a row.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pandera.pyspark import DataFrameModel, Field
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as sf
from pyspark.sql import types as spark_types

from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.data.fleet_files import (
    FLEET_SCHEMA,
    MONTH_FORMAT,
    partition_files,
    partition_of,
    read_fleet,
)

ALL_SERIES = "*"  # a failure of the whole fleet (its schema), not of one series
HOUR_SECONDS = 3600
REPORT_MD = "fleet_validation.md"  # in paths.reports_dir
REPORT_JSON = "fleet_validation.json"


class FleetRaw(DataFrameModel):  # type: ignore[type-arg]  # pandera's Spark model: untyped
    """The fleet's raw rows: the single series' traffic rules, keyed by series."""

    series_id: spark_types.StringType = Field(nullable=False)
    region: spark_types.StringType = Field(nullable=False)
    service: spark_types.StringType = Field(nullable=False)
    timestamp: spark_types.TimestampNTZType = Field(nullable=False)
    target: spark_types.DoubleType = Field(nullable=False, ge=0.0)
    capacity: spark_types.DoubleType = Field(nullable=False, gt=0.0)
    month: spark_types.StringType = Field(nullable=False)

    class Config:
        """Columns the schema does not name are an error, as in the single series."""

        strict = True


@dataclass(frozen=True)
class SeriesFailure:
    """One check failed by one series: on how many rows (None: Spark could not count them)."""

    series_id: str
    column: str
    check: str
    count: int | None
    detail: str = ""


@dataclass
class FleetValidation:
    """What validation found; ``passed`` is False when any series failed any check."""

    series: int = 0
    rows: int = 0
    failures: list[SeriesFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.failures

    @property
    def failed_series(self) -> list[str]:
        """The ids of the series that failed a check, sorted."""
        return sorted({f.series_id for f in self.failures})


STEP = "_seconds_since_previous"  # of the series' previous row; a column, as Spark cannot
# aggregate over a window function directly


def _with_steps(frame: DataFrame) -> DataFrame:
    seconds = sf.col("timestamp").cast("timestamp").cast("long")  # session time zone: UTC
    previous = sf.lag(seconds).over(Window.partitionBy("series_id").orderBy("timestamp"))
    return frame.withColumn(STEP, seconds - previous)


def _row_rules(frame: DataFrame) -> dict[tuple[str, str], Column]:
    """(column, check) -> the condition under which a row fails; names as Pandera's checks."""
    step = sf.col(STEP)
    target = sf.col("target")
    rules = {
        (name, "not_nullable"): sf.col(name).isNull()
        for name in FLEET_SCHEMA.names
        if name in frame.columns
    }
    return rules | {
        ("target", "greater_than_or_equal_to(0.0)"): target < 0,
        # Spark orders NaN above every number, so ge(0) lets it through: checked on its own.
        ("target", "finite"): sf.isnan(target) | target.isin(float("inf"), float("-inf")),
        ("capacity", "greater_than(0.0)"): sf.col("capacity") <= 0,
        ("timestamp", "on_the_hour"): sf.col("timestamp") != sf.date_trunc("hour", "timestamp"),
        ("timestamp", "unique"): step == 0,  # a second row for the series' hour
        # Flags the row after a gap, as the single series' `no_gap_before` does.
        ("timestamp", "no_gap_before"): step > HOUR_SECONDS,
        ("month", "month_of_timestamp"): sf.col("month")
        != sf.date_format("timestamp", MONTH_FORMAT.replace("%Y", "yyyy").replace("%m", "MM")),
    }


def _count_per_series(frame: DataFrame) -> FleetValidation:
    """Every row rule and the months present, per series in one pass: the failures found.

    A series without a month partition the others have is a hole no gap check would see
    (the rows either side of it are a month apart only when the month is missing entirely).
    """
    rules = _row_rules(frame)
    sums = [
        sf.sum(sf.when(failing, 1).otherwise(0)).alias(f"rule_{i}")
        for i, failing in enumerate(rules.values())
    ]
    months = sf.countDistinct("month").alias("_months")
    rows = sf.count(sf.lit(1)).alias("_rows")
    counted = _with_steps(frame).groupBy("series_id").agg(*sums, months, rows).collect()
    expected = max((row["_months"] for row in counted), default=0)
    failures = [
        SeriesFailure(row["series_id"] or "(null)", column, check, int(row[f"rule_{i}"]))
        for row in counted
        for i, (column, check) in enumerate(rules)
        if row[f"rule_{i}"]
    ] + [
        SeriesFailure(row["series_id"], "month", "partition_present", expected - row["_months"])
        for row in counted
        if row["_months"] < expected
    ]
    return FleetValidation(len(counted), sum(int(row["_rows"]) for row in counted), failures)


def _schema_drift(folder: Path) -> list[SeriesFailure]:
    """Partitions whose file schema differs from the fleet's, from the footers alone."""
    expected = FLEET_SCHEMA.remove(FLEET_SCHEMA.get_field_index("month"))
    expected = expected.remove(expected.get_field_index("series_id"))
    failures = []
    for file in partition_files(folder):
        metadata = pq.read_metadata(file)
        found = metadata.schema.to_arrow_schema().remove_metadata()
        if found.equals(expected):
            continue
        keys = partition_of(file, folder)
        where = f"{file.relative_to(folder)}"
        for name in sorted(set(expected.names) | set(found.names)):
            want = str(expected.field(name).type) if name in expected.names else "absent"
            got = str(found.field(name).type) if name in found.names else "absent"
            if want != got:
                failures.append(
                    SeriesFailure(
                        keys.get("series_id", ALL_SERIES),
                        name,
                        "same_schema",
                        metadata.num_rows,
                        f"{where}: {got}, expected {want}",
                    )
                )
    return failures


def _pandera_failures(frame: DataFrame, counted: list[SeriesFailure]) -> list[SeriesFailure]:
    """Pandera's errors that no per-series count explains (the schema's: types, columns)."""
    explained = {(f.column, f.check) for f in counted}
    validated: Any = FleetRaw.validate(frame)  # type: ignore[arg-type]  # a plain Spark frame
    errors = validated.pandera.errors
    return [
        SeriesFailure(ALL_SERIES, str(error["column"]), str(error["check"]), None, error["error"])
        for kinds in errors.values()
        for reported in kinds.values()
        for error in reported
        if (error["column"], error["check"]) not in explained
    ]


def validate_frame(frame: DataFrame) -> FleetValidation:
    """Validate a fleet frame: the counts per series, then Pandera's schema and checks."""
    counted = _count_per_series(frame)
    failures = _pandera_failures(frame, counted.failures) + counted.failures
    counted.failures = sorted(failures, key=lambda f: (f.series_id, f.column, f.check))
    return counted


def validate_fleet(spark: SparkSession, folder: Path) -> FleetValidation:
    """Validate the fleet under ``folder``; drifted partitions stop it before Spark reads."""
    drift = _schema_drift(folder)
    if drift:
        series = {partition_of(file, folder).get("series_id") for file in partition_files(folder)}
        return FleetValidation(series=len(series), failures=drift)
    frame = read_fleet(spark, folder).persist(StorageLevel.MEMORY_AND_DISK)
    try:  # every check reads the cache; what memory cannot hold spills to Spark's local disk
        return validate_frame(frame)
    finally:
        frame.unpersist()


def validate_and_publish(
    spark: SparkSession, raw_dir: Path, validated_dir: Path, reports_dir: Path
) -> FleetValidation:
    """Validate, write the reports, and only when every series passed, publish what passed.

    The raw files are first hard-linked into a staging folder beside ``validated_dir`` (copied
    across filesystems), and the staged files are what is validated: a raw file rewritten
    meanwhile cannot slip in unvalidated (the store replaces files, never edits them). On a
    pass the staged folder is swapped in as ``validated_dir``, no byte of the data written
    twice; on a failure, or any error, it is removed and the previous copy stays whole.
    """
    # Imported here: the renderers import this module's result types.
    from traffic_forecast.fleet.validation_report import (  # noqa: PLC0415
        render_json,
        render_markdown,
    )

    staged = validated_dir.with_name(f".{validated_dir.name}.staged")
    try:
        _link_files(raw_dir, staged)
        result = validate_fleet(spark, staged)
        write_text_atomic(reports_dir / REPORT_MD, render_markdown(result, str(raw_dir)))
        write_json_atomic(reports_dir / REPORT_JSON, render_json(result, str(raw_dir)))
        if result.passed:
            shutil.rmtree(validated_dir, ignore_errors=True)
            staged.rename(validated_dir)
        return result
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _link_files(folder: Path, staged: Path) -> None:
    """``folder``'s Parquet files under ``staged``, as hard links (copies across devices)."""
    shutil.rmtree(staged, ignore_errors=True)
    for file in partition_files(folder):
        target = staged / file.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, target)
        except OSError:  # another filesystem, or one without hard links
            shutil.copy2(file, target)
