"""One small local Spark session for the fleet's tests, and a small fleet (6 series x 3 weeks)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from traffic_forecast.core.config import FleetConfig, FleetGlobalModelConfig, SparkConfig
from traffic_forecast.data.simulate import SimulationConfig
from traffic_forecast.data.simulate.fleet import simulate_fleet
from traffic_forecast.fleet.spark import session

SMALL_SITE = SimulationConfig(
    start="2024-02-19", end="2024-03-10 23:00", drift_start="2024-03-11", drift_end="2024-03-11"
)
SMALL_FLEET = FleetConfig(
    regions={"us-east": 0, "eu-west": 5},
    services=["search", "cart", "api"],
    # Fewer, larger boosting steps than conf/data/fleet.yaml's: each round is several Spark
    # jobs, and on six series the jobs' overhead, not the data, is the time.
    global_model=FleetGlobalModelConfig(max_iter=30, max_depth=5, step_size=0.2),
)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """Two local cores, shared by a module's tests (a session takes seconds to start)."""
    scratch = tmp_path_factory.mktemp("spark")
    spark = session(SparkConfig(master="local[2]", shuffle_partitions=2, local_dir=str(scratch)))
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def small_fleet() -> pd.DataFrame:
    """Six series over three weeks (straddling a month end: two month partitions)."""
    return simulate_fleet(SMALL_SITE, SMALL_FLEET)
