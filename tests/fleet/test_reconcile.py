"""Reconciled batch forecasts: the series sum to their region's and the site's forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.core.config import FleetConfig
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.fleet.reconcile import TOTAL, reconcile, series_only

HOURS = pd.date_range("2024-03-11", periods=3, freq="h")
SERIES = {("east", "search"): 40.0, ("east", "cart"): 10.0, ("west", "search"): 30.0}


def _nodes(series: dict[tuple[str, str], float], region_total: float, site: float) -> pd.DataFrame:
    """Every node's forecast, the same each hour; east's and the site's totals as given."""
    nodes = {
        **series,
        ("east", TOTAL): region_total,
        ("west", TOTAL): series[("west", "search")],
        (TOTAL, TOTAL): site,
    }
    rows = [
        {
            "series_id": f"{region}/{service}",
            "region": region,
            "service": service,
            "timestamp": hour,
            "forecast": value,
        }
        for (region, service), value in nodes.items()
        for hour in HOURS
    ]
    return pd.DataFrame(rows)


def _by_node(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(["region", "service"])["forecast"].first()


@pytest.mark.parametrize("method", ["ols", "wls_str", "td_fcst"])
def test_reconciled_series_sum_to_their_totals_every_hour(method: str) -> None:
    # Incoherent: east's series sum to 50 but east is forecast at 60, the site at 95, not 80.
    coherent = reconcile(_nodes(SERIES, region_total=60.0, site=95.0), method)

    for _, hour in coherent.groupby("timestamp"):
        node = _by_node(hour)
        east = node[("east", "search")] + node[("east", "cart")]
        assert east == pytest.approx(node[("east", TOTAL)])
        assert node[("west", "search")] == pytest.approx(node[("west", TOTAL)])
        assert east + node[("west", "search")] == pytest.approx(node[(TOTAL, TOTAL)])
    moved = _by_node(coherent)[("east", "search")]
    assert moved != pytest.approx(SERIES[("east", "search")])  # reconciliation changed it


def test_ols_moves_the_forecasts_least_in_squares() -> None:
    # OLS projects onto coherent forecasts: known closed form for this small hierarchy.
    coherent = _by_node(reconcile(_nodes(SERIES, region_total=60.0, site=95.0), "ols"))
    order = [
        ("east", TOTAL),
        ("east", "cart"),
        ("east", "search"),
        ("west", TOTAL),
        ("west", "search"),
        (TOTAL, TOTAL),
    ]
    # Each node as a sum of the bottom series (east/cart, east/search, west/search).
    summing = np.array(
        [[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=float
    )
    forecast = np.array([60.0, 10.0, 40.0, 30.0, 30.0, 95.0])
    bottom = np.linalg.lstsq(summing, forecast, rcond=None)[0]
    expected = summing @ bottom
    np.testing.assert_allclose([coherent[node] for node in order], expected, rtol=1e-9)


def test_coherent_forecasts_stay_as_they_are() -> None:
    nodes = _nodes(SERIES, region_total=50.0, site=80.0)
    coherent = reconcile(nodes, "ols")
    expected = nodes.sort_values(["series_id", "timestamp"], kind="mergesort", ignore_index=True)
    np.testing.assert_allclose(coherent["forecast"], expected["forecast"], rtol=1e-9)


def test_only_the_fleet_s_own_series_are_published() -> None:
    coherent = series_only(reconcile(_nodes(SERIES, region_total=60.0, site=95.0), "ols"))
    assert sorted(coherent["series_id"].unique()) == ["east/cart", "east/search", "west/search"]


def test_an_unknown_method_is_named() -> None:
    with pytest.raises(ConfigError, match=r"data\.fleet\.reconcile='mint'"):
        FleetConfig(reconcile="mint")
