"""Batch predictions published per run id: all of a run or none of it, a rerun replaces it.

Layout under the output folder (readers see only ``run_id=…`` folders; Spark's own readers skip
names starting with ``_``)::

    run_id=<id>/series_id=<series>/part-….parquet   one published run, one file per series
    run_id=<id>/_manifest.json                     lineage, row and series counts, schema
    _LATEST                                        the pointer: the last run published
    _staging/<attempt>/                            a run being written (removed on any exit)
    _LOCK                                          one publisher per folder at a time

Partitioned by run, then series: the run is the unit that is published and replaced, so it must
be one folder (one rename); series inside it let a reader of one series prune to one file.

Atomicity, on a local (POSIX) filesystem: Spark writes the run into ``_staging``; the rows are
read back and counted (one copy of each series and hour, or nothing is published); the manifest
goes in; then the whole run folder is swapped into place in one step (Linux ``renameat2`` with
``RENAME_EXCHANGE``; elsewhere two renames, with a window of microseconds in which the run is
absent but never partial). ``_LATEST`` is written last, atomically. A failure anywhere before the
swap leaves every published byte as it was.

On an object store (S3, GCS) there is no rename: write each attempt to its own prefix with
Spark's S3A committers (magic or staging), and make the manifest the commit point — one PUT of
``_LATEST`` naming the attempt's prefix, which readers follow and never list around.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as sf
from pyspark.sql.types import StructType

from traffic_forecast.core.errors import BatchPublishError
from traffic_forecast.core.io import write_json_atomic

log = logging.getLogger(__name__)

SERIES_ID = "series_id"
TIMESTAMP = "timestamp"
RUN_ID = "run_id"
MODEL_VERSION = "model_version"
DATA_VERSION = "data_version"
CONFIG_HASH = "config_hash"
ORIGIN = "origin"
LINEAGE_COLUMNS = (RUN_ID, MODEL_VERSION, DATA_VERSION, CONFIG_HASH, ORIGIN)
PARTITION_COLUMNS = (RUN_ID, SERIES_ID)

LATEST = "_LATEST"
MANIFEST = "_manifest.json"
STAGING = "_staging"
LOCK = "_LOCK"

# A run id becomes a folder name and a partition value: nothing Spark would escape, no path tricks.
_RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DUPLICATES_SHOWN = 5


@dataclass(frozen=True)
class Lineage:
    """Where a run's forecasts came from; every published row carries these values."""

    model_version: str
    data_version: str
    config_hash: str


@dataclass(frozen=True)
class PublishedRun:
    """A run as published: its folder, what it holds and where it came from."""

    run_id: str
    path: Path
    rows: int
    series: int
    lineage: Lineage


def with_lineage(forecasts: DataFrame, run_id: str, lineage: Lineage) -> DataFrame:
    """The forecasts with the lineage columns, in a fixed order (the pure core of ``publish``).

    ``origin`` is the hour before a series' first forecast hour (the forecaster's cutoff) unless
    the forecaster supplies it. Nothing here reads the clock: the same inputs give the same rows.
    """
    _check_run_id(run_id)
    missing = [c for c in (SERIES_ID, TIMESTAMP) if c not in forecasts.columns]
    if missing:
        raise BatchPublishError(
            f"the forecasts lack column(s) {missing}: publish needs {SERIES_ID!r} and "
            f"{TIMESTAMP!r} (columns given: {forecasts.columns})"
        )
    clashing = [c for c in LINEAGE_COLUMNS if c in forecasts.columns and c != ORIGIN]
    if clashing:
        raise BatchPublishError(
            f"the forecasts already have lineage column(s) {clashing}: publish sets them itself"
        )
    if ORIGIN not in forecasts.columns:
        first_hour = sf.min(TIMESTAMP).over(Window.partitionBy(SERIES_ID))
        forecasts = forecasts.withColumn(ORIGIN, first_hour - sf.expr("INTERVAL 1 HOUR"))
    values = [c for c in forecasts.columns if c not in (SERIES_ID, TIMESTAMP, *LINEAGE_COLUMNS)]
    return forecasts.select(
        SERIES_ID,
        TIMESTAMP,
        *values,
        sf.lit(run_id).alias(RUN_ID),
        sf.lit(lineage.model_version).alias(MODEL_VERSION),
        sf.lit(lineage.data_version).alias(DATA_VERSION),
        sf.lit(lineage.config_hash).alias(CONFIG_HASH),
        ORIGIN,
    )


def publish(
    forecasts: DataFrame,
    folder: Path,
    run_id: str,
    lineage: Lineage,
    *,
    make_latest: bool = True,
) -> PublishedRun:
    """Write ``forecasts`` as run ``run_id`` under ``folder``, replacing that run if it exists.

    ``make_latest=False`` publishes without moving ``_LATEST`` (a backfill of an old run).
    """
    folder = folder.resolve()
    table = with_lineage(forecasts, run_id, lineage)
    folder.mkdir(parents=True, exist_ok=True)
    with _sole_publisher(folder):
        # A publisher killed outright (no `finally`) leaves its attempt behind: clear it now.
        shutil.rmtree(folder / STAGING, ignore_errors=True)
        attempt = folder / STAGING / uuid.uuid4().hex
        try:
            staged_run = _write_staged(table, attempt, run_id)
            manifest = _manifest_of_staged(table.sparkSession, attempt, run_id, lineage, table)
            write_json_atomic(staged_run / MANIFEST, manifest)
            _swap_into_place(staged_run, folder / _run_folder_name(run_id))
        finally:
            # After a swap the replaced run sits in the attempt's folder: it goes with it.
            shutil.rmtree(folder / STAGING, ignore_errors=True)
        if make_latest:
            write_json_atomic(folder / LATEST, {RUN_ID: run_id})
    log.info("published run %s: %d rows, %d series", run_id, manifest["rows"], manifest["series"])
    return PublishedRun(
        run_id=run_id,
        path=folder / _run_folder_name(run_id),
        rows=manifest["rows"],
        series=manifest["series"],
        lineage=lineage,
    )


def latest_run_id(folder: Path) -> str:
    """The run ``_LATEST`` names."""
    pointer = folder / LATEST
    if not pointer.is_file():
        raise BatchPublishError(f"nothing is published in {folder} ({LATEST} is missing)")
    return str(json.loads(pointer.read_text(encoding="utf-8"))[RUN_ID])


def read_manifest(folder: Path, run_id: str) -> dict[str, Any]:
    """A published run's manifest: lineage, row and series counts, schema."""
    manifest = folder / _run_folder_name(run_id) / MANIFEST
    if not manifest.is_file():
        raise BatchPublishError(f"run {run_id!r} is not published in {folder}")
    loaded: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    return loaded


def read_published(spark: SparkSession, folder: Path, run_id: str | None = None) -> DataFrame:
    """The rows of run ``run_id``, or of the run ``_LATEST`` names, with their published types."""
    folder = folder.resolve()
    run_id = latest_run_id(folder) if run_id is None else run_id
    _check_run_id(run_id)
    schema = StructType.fromJson(read_manifest(folder, run_id)["schema"])
    # The published schema, not inference: a series id "007" stays a string, not the number 7.
    rows = (
        spark.read.schema(schema)
        .option("basePath", _uri_of(folder))
        .parquet(_uri_of(folder / _run_folder_name(run_id)))
    )
    return rows.select(*schema.fieldNames())


def _uri_of(local_path: Path) -> str:
    # Explicitly local (a cluster's default filesystem may be HDFS), and not Path.as_uri(): it
    # escapes the '=' of partition folders, which Hadoop then takes literally.
    return f"file://{local_path}"


def _run_folder_name(run_id: str) -> str:
    return f"{RUN_ID}={run_id}"


def _check_run_id(run_id: str) -> None:
    if not _RUN_ID_PATTERN.fullmatch(run_id):
        raise BatchPublishError(
            f"run id {run_id!r} is not usable as a folder name: use letters, digits, '.', '_' "
            "and '-' (at most 128, starting with a letter or digit), e.g. 2024-06-01T00"
        )


def _write_staged(table: DataFrame, attempt: Path, run_id: str) -> Path:
    # One task per series, rows in time order: one file per series folder, not one per task.
    (
        table.repartition(SERIES_ID)
        .sortWithinPartitions(SERIES_ID, TIMESTAMP)
        .write.mode("errorifexists")
        .partitionBy(*PARTITION_COLUMNS)
        .parquet(_uri_of(attempt))
    )
    staged_run = attempt / _run_folder_name(run_id)
    if not staged_run.is_dir():
        raise BatchPublishError(f"run {run_id!r} has no forecasts: nothing to publish")
    return staged_run


def _manifest_of_staged(
    spark: SparkSession, attempt: Path, run_id: str, lineage: Lineage, table: DataFrame
) -> dict[str, Any]:
    # Count what was written, not what was meant to be: the files are what readers will get.
    staged = spark.read.schema(table.schema).parquet(_uri_of(attempt))
    copies = staged.groupBy(SERIES_ID, TIMESTAMP).count()
    summary = copies.agg(
        sf.sum("count").alias("rows"),
        sf.max("count").alias("most_copies"),
        sf.countDistinct(SERIES_ID).alias("series"),
    ).first()
    assert summary is not None  # an aggregate without grouping always has one row
    if summary["most_copies"] > 1:
        examples = copies.where(sf.col("count") > 1).orderBy(SERIES_ID, TIMESTAMP)
        shown = [
            f"{row[SERIES_ID]} at {row[TIMESTAMP]} ({row['count']} copies)"
            for row in examples.limit(_DUPLICATES_SHOWN).collect()
        ]
        raise BatchPublishError(
            f"run {run_id!r} has more than one forecast for the same series and hour, e.g. "
            f"{'; '.join(shown)}: fix the forecasts (nothing was published)"
        )
    return {
        RUN_ID: run_id,
        **asdict(lineage),
        "rows": int(summary["rows"]),
        "series": int(summary["series"]),
        "partitioned_by": list(PARTITION_COLUMNS),
        "schema": json.loads(table.schema.json()),
    }


def _swap_into_place(staged_run: Path, published_run: Path) -> None:
    if not published_run.exists():
        staged_run.rename(published_run)
    elif not _exchange(staged_run, published_run):
        # No atomic exchange here: set the old run aside in the attempt (deleted with it), then
        # rename the new one in. Between the two renames the run is absent, never partial.
        published_run.rename(staged_run.parent / "replaced")
        staged_run.rename(published_run)


# From <linux/fs.h> and <fcntl.h>: swap two names in one step; paths relative to the cwd.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot."""
    if sys.platform != "linux":
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    done = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if done == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # e.g. NFS, an old kernel
        return False
    raise OSError(error, os.strerror(error), str(first), None, str(second))


@contextmanager
def _sole_publisher(folder: Path) -> Iterator[None]:
    # A second publisher would clear the first one's staging: refuse it instead of racing.
    with (folder / LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchPublishError(
                f"another publish is writing to {folder}: wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
