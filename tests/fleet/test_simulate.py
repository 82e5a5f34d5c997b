"""The fleet simulator, in pandas: the series split the site total exactly, reproducibly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.fleet.conftest import SMALL_FLEET, SMALL_SITE
from traffic_forecast.data.fleet_files import write_fleet
from traffic_forecast.data.simulate import simulate
from traffic_forecast.data.simulate.fleet import FLEET_COLUMNS, fleet_of_size, split_site_total


def test_series_sum_to_the_site_total_every_hour(small_fleet: pd.DataFrame) -> None:
    site = simulate(SMALL_SITE).traffic
    summed = small_fleet.groupby("timestamp")["target"].sum()
    assert (summed.to_numpy() == site["sessions"].to_numpy()).all()
    assert small_fleet["target"].min() >= 0
    assert tuple(small_fleet.columns) == FLEET_COLUMNS
    assert small_fleet["series_id"].nunique() == 6
    assert (small_fleet.groupby("series_id")["capacity"].first()
            > small_fleet.groupby("series_id")["target"].max()).all()  # fmt: skip


def test_a_region_ahead_of_the_site_peaks_at_another_hour(small_fleet: pd.DataFrame) -> None:
    peak_hour = (
        small_fleet.assign(hour=small_fleet["timestamp"].dt.hour)
        .groupby(["region", "hour"])["target"].mean()
        .groupby("region").idxmax()
    )  # fmt: skip
    assert peak_hour["us-east"][1] != peak_hour["eu-west"][1]


def test_any_size_of_fleet_still_sums_to_the_site() -> None:
    site = simulate(SMALL_SITE).traffic
    fleet = split_site_total(site, fleet_of_size(7, 3))
    assert fleet["series_id"].nunique() == 21
    assert (fleet.groupby("timestamp")["target"].sum().to_numpy() == site["sessions"]).all()


def test_the_same_seed_writes_the_same_bytes(small_fleet: pd.DataFrame, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_fleet(small_fleet, first)
    write_fleet(split_site_total(simulate(SMALL_SITE).traffic, SMALL_FLEET), second)
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert len(files) == 12  # 6 series x 2 months, one file each
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
