"""The fleet's raw data on disk: Parquet partitioned by series and month, and reading it back.

The simulator writes with pyarrow (it is no Spark job), byte for byte the same for a seed;
every reader goes through Spark's own Parquet reader.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from traffic_forecast.core.errors import DataLoadError

if TYPE_CHECKING:  # written without Spark: `make data` writes the fleet where no JVM is needed
    from pyspark.sql import DataFrame, SparkSession

PARTITION_COLUMNS = ("series_id", "month")
MONTH_FORMAT = "%Y-%m"
# One file per partition; a fixed name, so a rewrite gives the same file names and bytes.
BASENAME = "part-{i}.parquet"
FLEET_SCHEMA = pa.schema(
    [
        ("series_id", pa.string()),
        ("region", pa.string()),
        ("service", pa.string()),
        ("timestamp", pa.timestamp("us")),  # naive site hours (Spark: timestamp_ntz)
        ("target", pa.float64()),
        ("capacity", pa.float64()),
        ("month", pa.string()),
    ]
)


class FleetDataError(DataLoadError):
    """The fleet's folder or one of its partitions is missing or unreadable."""


def write_fleet(frame: pd.DataFrame, folder: Path) -> None:
    """Replace ``folder`` with the fleet, partitioned ``series_id=…/month=…/part-0.parquet``.

    Written beside the folder first and swapped in, so a failed write leaves the old one and
    no partition of an earlier, larger fleet survives.
    """
    with_month = frame.assign(month=frame["timestamp"].dt.strftime(MONTH_FORMAT))
    table = pa.Table.from_pandas(with_month, schema=FLEET_SCHEMA, preserve_index=False)
    staged = folder.with_name(f".{folder.name}.staged")
    shutil.rmtree(staged, ignore_errors=True)
    ds.write_dataset(
        table.replace_schema_metadata(None),  # no pandas metadata: its version would show
        staged,
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([FLEET_SCHEMA.field(name) for name in PARTITION_COLUMNS]), flavor="hive"
        ),
        basename_template=BASENAME,
        use_threads=False,  # rows in their order: the same bytes on every run
        max_rows_per_group=1 << 20,
    )
    shutil.rmtree(folder, ignore_errors=True)
    staged.rename(folder)


def partition_files(folder: Path) -> list[Path]:
    """The Parquet files of the fleet, sorted; a missing or empty folder is an error."""
    if not folder.is_dir():
        raise FleetDataError(
            f"{folder}: fleet data not found; simulate it (`data=fleet`) or point "
            "data.fleet.raw_dir at the fleet's Parquet folder"
        )
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise FleetDataError(f"{folder}: no Parquet file under it (series_id=…/month=…/*.parquet)")
    return files


def partition_of(file: Path, folder: Path) -> dict[str, str]:
    """``{"series_id": "eu-west/search", "month": "2024-01"}`` from a file's hive path."""
    parts = file.relative_to(folder).parts[:-1]
    return {key: unquote(value) for key, _, value in (part.partition("=") for part in parts)}


def read_fleet(spark: SparkSession, folder: Path) -> DataFrame:
    """The fleet as a Spark frame, read by Spark's Parquet reader (partition columns last)."""
    partition_files(folder)  # a clear error before Spark's own
    return spark.read.parquet(str(folder))
