"""The Spark session of fleet mode, built from ``conf/spark/`` (``spark.master`` picks where)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from traffic_forecast.core.config import SparkConfig

log = logging.getLogger(__name__)


def spark_settings(cfg: SparkConfig) -> dict[str, str]:
    """Every ``spark.*`` setting the session gets, ``cfg.settings`` last (they win)."""
    settings = {
        "spark.driver.memory": cfg.driver_memory,
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.local.dir": str(Path(cfg.local_dir).absolute()),
        "spark.ui.enabled": str(cfg.ui).lower(),
        "spark.ui.showConsoleProgress": "false",  # a progress bar would garble the logs
        # Python workers run this interpreter (with pandas and this package), not the system's.
        "spark.pyspark.python": sys.executable,
        # Timestamps are naive site hours: no session time zone may shift them.
        "spark.sql.session.timeZone": "UTC",
        # Partition values stay text ("2024-01" is a month, not a number to infer).
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    }
    if cfg.executor_memory is not None:
        settings["spark.executor.memory"] = cfg.executor_memory
    if cfg.executor_cores is not None:
        settings["spark.executor.cores"] = str(cfg.executor_cores)
    return {**settings, **cfg.settings}


def session(cfg: SparkConfig) -> SparkSession:
    """Start (or join) the Spark session the configuration describes.

    Spark sends no telemetry; the UI is off unless ``spark.ui`` asks for it.
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(cfg.master).appName(cfg.app_name)
    for key, value in spark_settings(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    log.info("Spark %s on %s", spark.version, cfg.master)
    return spark


@contextmanager
def running_session(cfg: SparkConfig) -> Iterator[SparkSession]:
    """A session for the ``with`` block, stopped at its end, also when the block fails."""
    spark = session(cfg)
    try:
        yield spark
    finally:
        spark.stop()


def collected(frame: DataFrame) -> pd.DataFrame:
    """A small Spark frame (a row per series, say) as pandas, its columns in order.

    Not ``toPandas``: PySpark 4.3's Arrow conversion passes pandas 3 a deprecated ``copy``
    argument, a warning that tests turn into an error. Rows through Python are as fast for the
    few thousand rows this is for. Timestamps must be ``timestamp_ntz`` (the fleet's are):
    a zoned timestamp would come back in this process's time zone.
    """
    rows = frame.collect()
    return pd.DataFrame([row.asDict() for row in rows], columns=frame.columns)
