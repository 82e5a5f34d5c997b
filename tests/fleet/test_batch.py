"""Batch predictions are published whole or not at all, and a rerun replaces its run."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.errors import PythonException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import DoubleType

from traffic_forecast.core.errors import BatchPublishError
from traffic_forecast.fleet import batch
from traffic_forecast.fleet.batch import Lineage, publish, read_published

pytestmark = pytest.mark.slow

SERIES = ("eu-checkout", "eu-search", "us-checkout")
FIRST_HOUR = datetime(2024, 6, 1, 0)
HORIZON = 168
LINEAGE = Lineage(model_version="ets-3", data_version="md5-abc", config_hash="cfg-123")
FAILING_SERIES = "eu-search"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Own session for now; it moves to the shared tests/fleet/conftest.py fixture once that lands.
    # PySpark 4.3 starts Python workers with $PYSPARK_PYTHON (else `python3` on PATH, which lacks
    # this project); the spark.pyspark.python setting reaches only spark-submit.
    environment = pytest.MonkeyPatch()
    environment.setenv("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")  # local mode: a failed task fails the job
        .appName("test_batch")
        .config("spark.ui.enabled", "false")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()
    environment.undo()


def forecasts(spark: SparkSession, level: float, series: tuple[str, ...] = SERIES) -> DataFrame:
    rows = [
        (name, FIRST_HOUR + timedelta(hours=hour), level + hour)
        for name in series
        for hour in range(HORIZON)
    ]
    return spark.createDataFrame(rows, "series_id string, timestamp timestamp, forecast double")


def files_and_bytes(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a hash of its bytes (folders too, as empty strings)."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        )
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_rerun_replaces_its_run_and_never_duplicates_a_row(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    # Both ways of replacing a run: the atomic exchange Linux offers, the fallback elsewhere.
    exchanged: list[bool] = []
    real_exchange = batch._exchange

    def exchange_or_not(first: Path, second: Path) -> bool:
        exchanged.append(real_exchange(first, second) if exchange else False)
        return exchanged[-1]

    monkeypatch.setattr(batch, "_exchange", exchange_or_not)
    publish(forecasts(spark, level=10.0), tmp_path, "2024-06-01", LINEAGE)
    rerun = publish(forecasts(spark, level=20.0), tmp_path, "2024-06-01", LINEAGE)

    rows = read_published(spark, tmp_path, "2024-06-01")
    copies = rows.groupBy("run_id", "series_id", "timestamp").count()
    assert copies.agg(sf.max("count")).first() == (1,)
    assert rows.count() == rerun.rows == len(SERIES) * HORIZON
    assert rows.agg(sf.min("forecast")).first() == (20.0,), "the rerun's values, not the first's"
    # What a reader of the whole folder sees: one run, nothing of the attempt that replaced it.
    assert spark.read.parquet(tmp_path.as_uri()).count() == len(SERIES) * HORIZON
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_LATEST", "_LOCK", "run_id=2024-06-01"]
    assert exchanged == [exchange], "the first publish renames; the rerun replaces"


def test_every_row_carries_the_lineage_it_was_published_with(
    spark: SparkSession, tmp_path: Path
) -> None:
    publish(forecasts(spark, level=10.0), tmp_path, "2024-06-01", LINEAGE)

    rows = read_published(spark, tmp_path)
    assert rows.columns == [
        "series_id", "timestamp", "forecast",
        "run_id", "model_version", "data_version", "config_hash", "origin",
    ]  # fmt: skip
    lineage = rows.select("run_id", "model_version", "data_version", "config_hash").distinct()
    assert lineage.collect() == [("2024-06-01", "ets-3", "md5-abc", "cfg-123")]
    origins = rows.groupBy("series_id").agg(sf.collect_set("origin").alias("origins"))
    expected_origin = FIRST_HOUR - timedelta(hours=1)
    assert {row.series_id: row.origins for row in origins.collect()} == {
        name: [expected_origin] for name in SERIES
    }


def test_runs_coexist_and_the_pointer_names_the_latest(spark: SparkSession, tmp_path: Path) -> None:
    publish(forecasts(spark, level=1.0), tmp_path, "2024-06-01", LINEAGE)
    publish(forecasts(spark, level=2.0, series=SERIES[:2]), tmp_path, "2024-06-02", LINEAGE)

    assert read_published(spark, tmp_path).select("run_id").distinct().collect() == [
        ("2024-06-02",)
    ]
    assert read_published(spark, tmp_path, "2024-06-01").count() == len(SERIES) * HORIZON
    # A backfill of the older run replaces it without taking the pointer back.
    publish(forecasts(spark, 3.0), tmp_path, "2024-06-01", LINEAGE, make_latest=False)
    assert read_published(spark, tmp_path).count() == 2 * HORIZON
    assert read_published(spark, tmp_path, "2024-06-01").agg(sf.min("forecast")).first() == (3.0,)


def _failing_for_one_series(how: str) -> Callable[[DataFrame], DataFrame]:
    """The forecasts through a Python UDF that fails for one series: raises, or kills itself."""

    # Nested, so cloudpickle ships it by value (a worker cannot import this test module), and
    # without type hints, which PySpark 4 would read to choose the kind of UDF.
    def forecast_or_fail(series_id, value):
        if series_id == FAILING_SERIES and how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)  # the Python worker dies, as in an OOM kill
        if series_id == FAILING_SERIES:
            raise RuntimeError(f"model for {series_id} blew up")
        return value

    def forecast_through_udf(frame: DataFrame) -> DataFrame:
        value: Column = sf.udf(forecast_or_fail, DoubleType())("series_id", "forecast")
        return frame.withColumn("forecast", value)

    return forecast_through_udf


def _duplicated(frame: DataFrame) -> DataFrame:
    return frame.unionByName(frame.where(sf.col("series_id") == FAILING_SERIES).limit(1))


@pytest.mark.parametrize(
    ("break_the_run", "expected"),
    [
        (_failing_for_one_series("raise"), (PythonException, "model for eu-search blew up")),
        # Spark reports a crashed worker as a Java error, not as one of PySpark's exceptions.
        (_failing_for_one_series("kill"), (Py4JJavaError, "Python worker exited unexpectedly")),
        (_duplicated, (BatchPublishError, "eu-search at 2024-06-01 00:00:00 .2 copies.")),
        (None, (OSError, "disk gone at the last moment")),
    ],
    ids=["udf-raises", "python-worker-killed", "duplicate-rows", "fails-before-the-swap"],
)
def test_a_failed_run_leaves_every_published_byte_as_it_was(
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    break_the_run: Callable[[DataFrame], DataFrame] | None,
    expected: tuple[type[BaseException], str],
) -> None:
    publish(forecasts(spark, level=1.0), tmp_path, "2024-06-01", LINEAGE)
    publish(forecasts(spark, level=2.0), tmp_path, "2024-06-02", LINEAGE)
    before = files_and_bytes(tmp_path)

    doomed = forecasts(spark, level=9.0)
    if break_the_run is None:

        def swap_that_fails(staged_run: Path, published_run: Path) -> None:
            assert (staged_run / batch.MANIFEST).is_file(), "the whole run was staged"
            raise OSError("disk gone at the last moment")

        monkeypatch.setattr(batch, "_swap_into_place", swap_that_fails)
    else:
        doomed = break_the_run(doomed)
    with pytest.raises(expected[0], match=expected[1]):
        publish(doomed, tmp_path, "2024-06-01", LINEAGE)

    assert files_and_bytes(tmp_path) == before, "no staging litter, no byte of either run changed"
    assert read_published(spark, tmp_path).agg(sf.min("forecast")).first() == (2.0,)


@pytest.mark.parametrize(
    "run_id",
    ["", "../escape", "a/b", "run_id=x", ".hidden", "x" * 129],
    ids=["empty", "parent", "slash", "equals", "hidden", "too-long"],
)
def test_a_run_id_that_is_not_a_plain_folder_name_is_refused(
    spark: SparkSession, tmp_path: Path, run_id: str
) -> None:
    with pytest.raises(BatchPublishError, match="not usable as a folder name"):
        publish(forecasts(spark, level=1.0), tmp_path, run_id, LINEAGE)
    assert not tmp_path.joinpath("_staging").exists()
