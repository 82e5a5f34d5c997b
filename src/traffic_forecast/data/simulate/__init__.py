"""Deterministic simulator of the hourly traffic of a large e-retail site."""

from traffic_forecast.data.simulate.cli import main
from traffic_forecast.data.simulate.config import (
    SaleKindConfig,
    SeasonalSaleWindow,
    SimulationConfig,
)
from traffic_forecast.data.simulate.core import RawTables, simulate
from traffic_forecast.data.simulate.io import write_raw_tables
from traffic_forecast.data.simulate.sales import DRIFT_ONLY_KINDS, SALE_KINDS

__all__ = [
    "DRIFT_ONLY_KINDS",
    "SALE_KINDS",
    "RawTables",
    "SaleKindConfig",
    "SeasonalSaleWindow",
    "SimulationConfig",
    "main",
    "simulate",
    "write_raw_tables",
]
