"""A fleet of hourly series (region x service) that splits the simulated site total exactly.

Each series gets a level (its region's weight times its service's), the site's daily profile
shifted to its region's local time and sharpened or flattened for its service, and noise of
its own. Per hour the weights are normalised into shares and the site's sessions are allotted
as whole sessions (largest remainders), so the series sum to the site total exactly in any
order of addition. The sale calendar is the site's: a sale lifts the total, and every share
of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from traffic_forecast.core.config import FleetConfig
from traffic_forecast.core.io import write_parquet_atomic
from traffic_forecast.data.fleet_files import write_fleet
from traffic_forecast.data.simulate import RawTables, SimulationConfig, simulate
from traffic_forecast.data.simulate._random import component_rng

HOURS_PER_DAY = 24
SERIES_SEPARATOR = "/"  # series_id = "<region>/<service>"
# Share weights are drawn log-normally: regions and services differ by about this factor.
LEVEL_SPREAD = 0.6
PROFILE_EXPONENT = (0.6, 1.4)  # a service's daily swing relative to its region's
CAPACITY_HEADROOM = (1.2, 1.6)  # capacity over the series' own peak hour
FLEET_COLUMNS = ("series_id", "region", "service", "timestamp", "target", "capacity")


def series_id(region: str, service: str) -> str:
    """The key of one series: ``"eu-west/search"``."""
    return f"{region}{SERIES_SEPARATOR}{service}"


def fleet_of_size(regions: int, services: int, *, seed: int = 17) -> FleetConfig:
    """A fleet of ``regions x services`` series with generated names, for benchmarks.

    Regions are spread over the day's time zones (offsets -11 … +12 hours).
    """
    offsets = {
        f"region-{i:03d}": (i * HOURS_PER_DAY // max(regions, 1)) % HOURS_PER_DAY - 11
        for i in range(regions)
    }
    return FleetConfig(
        regions=offsets, services=[f"service-{j:03d}" for j in range(services)], seed=seed
    )


def _daily_profile(stamps: pd.DatetimeIndex, total: np.ndarray) -> np.ndarray:
    """The site's mean traffic by hour of day, relative to its mean."""
    by_hour = np.bincount(stamps.hour, weights=total, minlength=HOURS_PER_DAY)
    counts = np.maximum(np.bincount(stamps.hour, minlength=HOURS_PER_DAY), 1)
    profile: np.ndarray = by_hour / counts
    relative: np.ndarray = profile / profile.mean()
    return relative


def _weights(stamps: pd.DatetimeIndex, total: np.ndarray, fleet: FleetConfig) -> np.ndarray:
    """One row of positive share weights per series (regions outer, services inner)."""
    profile = _daily_profile(stamps, total)
    hours = stamps.hour.to_numpy()
    rows = []
    for region, ahead in fleet.regions.items():
        region_level = math.exp(LEVEL_SPREAD * component_rng(fleet.seed, f"region/{region}")
                                .standard_normal())  # fmt: skip
        # The region's local hour sees the site's profile at that hour; relative to the site's
        # own hour, so a region in the site's zone follows the site's shape.
        shifted = profile[(hours + ahead) % HOURS_PER_DAY] / profile[hours]
        for service in fleet.services:
            service_rng = component_rng(fleet.seed, f"service/{service}")
            service_level = math.exp(LEVEL_SPREAD * service_rng.standard_normal())
            exponent = service_rng.uniform(*PROFILE_EXPONENT)
            noise_rng = component_rng(fleet.seed, f"series/{series_id(region, service)}")
            noise = np.exp(fleet.noise * noise_rng.standard_normal(len(stamps)))
            rows.append(region_level * service_level * shifted**exponent * noise)
    return np.vstack(rows)


def _allot(total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Whole sessions per series and hour, summing to ``total`` exactly (largest remainders)."""
    exact = weights / weights.sum(axis=0) * total
    whole = np.floor(exact)
    left_over = (total - whole.sum(axis=0)).astype(np.int64)
    # Rank the fractional parts within each hour; a stable sort keeps ties in series order.
    order = np.argsort(-(exact - whole), axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(len(weights))[:, None], axis=0)
    shares: np.ndarray = whole + (ranks < left_over)
    return shares


def split_site_total(traffic: pd.DataFrame, fleet: FleetConfig) -> pd.DataFrame:
    """The fleet's long frame from the site's hourly ``timestamp`` and ``sessions``.

    Rows are ordered by series (regions, then services, as configured) and hour.
    """
    stamps = pd.DatetimeIndex(traffic["timestamp"])
    total = traffic["sessions"].to_numpy(dtype=np.float64)
    target = _allot(total, _weights(stamps, total, fleet))
    pairs = [(region, service) for region in fleet.regions for service in fleet.services]
    headroom = [
        component_rng(fleet.seed, f"capacity/{series_id(*pair)}").uniform(*CAPACITY_HEADROOM)
        for pair in pairs
    ]
    capacity = np.ceil(target.max(axis=1) * np.array(headroom))
    hours = len(stamps)
    return pd.DataFrame(
        {
            "series_id": np.repeat([series_id(*pair) for pair in pairs], hours),
            "region": np.repeat([region for region, _ in pairs], hours),
            "service": np.repeat([service for _, service in pairs], hours),
            "timestamp": np.tile(stamps.to_numpy(), len(pairs)),
            "target": target.ravel(),
            "capacity": np.repeat(capacity, hours),
        }
    )


def write_fleet_tables(tables: RawTables, fleet: FleetConfig) -> pd.DataFrame:
    """Split the simulated site into the fleet; write it and the shared sale calendar.

    The data.dvc version holds them when ``fleet.raw_dir`` is inside ``data/raw`` (the
    default), so the fleet is pulled, pushed and versioned with the single series.
    """
    frame = split_site_total(tables.traffic, fleet)
    write_fleet(frame, Path(fleet.raw_dir))
    write_parquet_atomic(tables.sale_events, Path(fleet.sale_events_file))
    return frame


def simulate_fleet(site: SimulationConfig, fleet: FleetConfig) -> pd.DataFrame:
    """Simulate the site's history, then split it into the fleet's series."""
    return split_site_total(simulate(site).traffic, fleet)
