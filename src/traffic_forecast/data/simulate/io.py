"""Byte-stable CSV serialisation of the raw tables."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from traffic_forecast.data.simulate.core import RawTables

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
# Fixed decimals per float column keep files byte-identical across platforms.
FLOAT_DECIMALS = {"cpu_utilization": 4, "p95_latency_ms": 2, "error_rate": 6}
FILE_NAMES = ("traffic.csv", "sale_events.csv", "infrastructure.csv")


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column, decimals in FLOAT_DECIMALS.items():
        if column in out.columns:
            values = np.round(out[column].to_numpy(dtype=np.float64), decimals)
            # Rounding can yield -0.0, which would print as "-0.0000".
            out[column] = [f"{value + 0.0:.{decimals}f}" for value in values]
    return out


def write_raw_tables(tables: RawTables, directory: Path) -> list[Path]:
    """Write ``traffic.csv``, ``sale_events.csv`` and ``infrastructure.csv``.

    Parameters
    ----------
    tables : RawTables
        Tables to write.
    directory : pathlib.Path
        Target directory, created if missing.

    Returns
    -------
    list of pathlib.Path
        Written files, in the order above.
    """
    directory.mkdir(parents=True, exist_ok=True)
    frames = (tables.traffic, tables.sale_events, tables.infrastructure)
    paths = []
    for name, frame in zip(FILE_NAMES, frames, strict=True):
        path = directory / name
        _formatted(frame).to_csv(
            path, index=False, date_format=TIMESTAMP_FORMAT, lineterminator="\n", encoding="utf-8"
        )
        log.info("wrote %s (%d rows)", path, len(frame))
        paths.append(path)
    return paths
