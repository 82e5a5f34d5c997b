"""Capacity: per-instance load learnt from infrastructure data, and instances for a forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.core.errors import DataValidationError
from traffic_forecast.data.simulate import SimulationConfig, simulate
from traffic_forecast.forecasting.capacity import Capacity, learn_capacity


def test_learns_the_simulated_instance_capacity() -> None:
    config = SimulationConfig(start="2024-01-01", end="2024-03-31 23:00")
    tables = simulate(config)
    traffic = tables.traffic.rename(columns={"sessions": "target"})
    infra = tables.infrastructure
    for frame in (traffic, infra):
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    capacity = learn_capacity(traffic, infra, window_hours=672, min_cpu=0.2)
    assert capacity.sessions_per_instance == pytest.approx(config.instance_capacity, rel=0.03)
    assert capacity.hours > 300


def test_instances_needed_rounds_up_and_never_drops_below_one() -> None:
    capacity = Capacity(sessions_per_instance=1000.0, hours=1)
    needed = capacity.instances_needed([0.0, 599.0, 601.0, 6000.0], target_utilisation=0.6)
    np.testing.assert_array_equal(needed, [1, 1, 2, 10])


def test_quiet_hours_only_is_an_error() -> None:
    stamps = pd.date_range("2024-01-01", periods=3, freq="h")
    traffic = pd.DataFrame({"timestamp": stamps, "target": [1.0, 2.0, 3.0]})
    infra = pd.DataFrame({"timestamp": stamps, "instances": [1, 1, 1], "cpu_utilization": 0.01})
    with pytest.raises(DataValidationError, match="cannot learn capacity"):
        learn_capacity(traffic, infra, window_hours=10, min_cpu=0.2)


def test_target_utilisation_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="utilisation"):
        Capacity(1000.0, 1).instances_needed([1.0], target_utilisation=60)
