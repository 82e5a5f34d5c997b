"""Autoscaled fleet, its utilisation, latency, errors and release history."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from traffic_forecast.data.simulate._random import component_rng, uniform_int
from traffic_forecast.data.simulate.config import SimulationConfig

FloatArray = npt.NDArray[np.float64]
_SATURDAY = 5


def _next_release(
    previous: pd.Timestamp, rng: np.random.Generator, config: SimulationConfig
) -> pd.Timestamp:
    day = previous.normalize() + pd.Timedelta(days=uniform_int(rng, config.release_interval_days))
    if day.dayofweek >= _SATURDAY:
        # Nobody ships on a weekend: wait for Monday.
        day += pd.Timedelta(days=7 - day.dayofweek)
    return day + pd.Timedelta(hours=uniform_int(rng, config.release_hours))


def release_schedule(
    stamps: pd.DatetimeIndex, config: SimulationConfig
) -> tuple[list[pd.Timestamp], list[str]]:
    """Draw release times and versions ``YYYY.MM.N`` (N counts within the month).

    The version running at the first hour counts as a release at that hour.

    Parameters
    ----------
    stamps : pandas.DatetimeIndex
        Hourly grid of the simulation.
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    tuple of (list of pandas.Timestamp, list of str)
        Release times (sorted) and the matching versions.
    """
    rng = component_rng(config.seed, "releases")
    times = [pd.Timestamp(stamps[0])]
    while (candidate := _next_release(times[-1], rng, config)) <= stamps[-1]:
        times.append(candidate)
    per_month: dict[tuple[int, int], int] = {}
    versions = []
    for time in times:
        month = (time.year, time.month)
        versions.append(f"{time.year}.{time.month:02d}.{per_month.get(month, 0)}")
        per_month[month] = per_month.get(month, 0) + 1
    return times, versions


def _release_effects(
    stamps: pd.DatetimeIndex, releases: list[pd.Timestamp], config: SimulationConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Capacity factor, latency factor and extra error rate caused by releases."""
    rng = component_rng(config.seed, "release_blips")
    capacity = np.ones(len(stamps))
    latency = np.ones(len(stamps))
    errors = np.zeros(len(stamps))
    drift_start = pd.Timestamp(config.drift_start)
    heavy = next((time for time in releases if time >= drift_start), None)
    if heavy is not None:
        # The first release of the drift period is heavier per session.
        capacity[stamps >= heavy] = 1.0 - config.drift_capacity_drop
    for time in releases[1:]:
        blip = rng.random() < config.release_blip_probability
        hours = uniform_int(rng, config.release_blip_hours)
        window = (stamps >= time) & (stamps < time + pd.Timedelta(hours=hours))
        if blip:
            latency[window] *= config.release_blip_latency_factor
            errors[window] += config.release_blip_error_rate
    return capacity, latency, errors


def _autoscale(
    load: FloatArray, capacity: FloatArray, cpu_noise: FloatArray, config: SimulationConfig
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Replay an HPA-style autoscaler acting on the previous hour's CPU."""
    n = len(load)
    instances = np.empty(n, dtype=np.int64)
    cpu = np.empty(n)
    target = config.autoscaler_target_cpu
    current = max(config.min_instances, math.ceil(load[0] / (capacity[0] * target)))
    for t in range(n):
        instances[t] = current
        cpu[t] = min(max(load[t] / (current * capacity[t]) + cpu_noise[t], 0.0), 1.0)
        desired = math.ceil(current * cpu[t] / target)
        # Scale-down is rate-limited to avoid flapping; scale-up is not.
        slowest = math.ceil(current * (1.0 - config.max_scale_down_fraction))
        current = max(config.min_instances, desired, min(slowest, current))
    return instances, cpu


def simulate_infrastructure(
    stamps: pd.DatetimeIndex, sessions: npt.NDArray[np.int64], config: SimulationConfig
) -> pd.DataFrame:
    """Simulate the serving fleet for the given load.

    Parameters
    ----------
    stamps : pandas.DatetimeIndex
        Hourly grid.
    sessions : numpy.ndarray
        Sessions per hour on ``stamps``.
    config : SimulationConfig
        Simulation parameters.

    Returns
    -------
    pandas.DataFrame
        The ``infrastructure.csv`` columns.
    """
    n = len(stamps)
    releases, versions = release_schedule(stamps, config)
    capacity, latency_blip, error_blip = _release_effects(stamps, releases, config)
    # One stream per metric so a longer span only appends draws.
    cpu_noise = component_rng(config.seed, "cpu_noise").normal(0.0, config.cpu_noise_sigma, n)
    latency_noise = component_rng(config.seed, "latency_noise").lognormal(
        0.0, config.latency_noise_sigma, n
    )
    error_noise = component_rng(config.seed, "error_noise").lognormal(
        0.0, config.error_rate_noise_sigma, n
    )
    instances, cpu = _autoscale(
        sessions.astype(np.float64), config.instance_capacity * capacity, cpu_noise, config
    )
    queueing = 1.0 / (1.0 - np.minimum(cpu, config.latency_max_util))
    latency = config.latency_base_ms * queueing * latency_noise * latency_blip
    overload = np.maximum(cpu - config.error_rate_knee_cpu, 0.0)
    errors = (config.error_rate_baseline + config.error_rate_slope * overload**2) * error_noise
    running = pd.DatetimeIndex(releases).searchsorted(stamps, side="right") - 1
    return pd.DataFrame(
        {
            "timestamp": stamps,
            "instances": instances,
            "cpu_utilization": cpu,
            "p95_latency_ms": latency,
            "error_rate": np.clip(errors + error_blip, 0.0, 1.0),
            "app_version": pd.Series(np.asarray(versions)[running], dtype="str"),
        }
    )
