"""The fleet's training on Spark: per-series and global backtests in the report's contract.

Six series over five weeks, with two daily folds of 24 hours, read from Parquet as the
pipeline reads them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from tests.fleet.conftest import SMALL_FLEET
from traffic_forecast.core.config import BacktestConfig, Config, FleetConfig
from traffic_forecast.core.errors import ConfigError, PipelineInputError
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.fleet_files import read_fleet, write_fleet
from traffic_forecast.data.simulate import SimulationConfig, simulate
from traffic_forecast.data.simulate.fleet import split_site_total
from traffic_forecast.fleet.global_model import global_forecasts
from traffic_forecast.fleet.series import SeriesJob
from traffic_forecast.fleet.spark import collected
from traffic_forecast.fleet.train import FleetTraining, local_forecasts, train_fleet
from traffic_forecast.forecasting.backtest import run_backtest
from traffic_forecast.forecasting.features import build_features
from traffic_forecast.forecasting.metrics import summarise
from traffic_forecast.report.fleet import FleetSeriesMetrics, aggregate

FIVE_WEEKS = SimulationConfig(
    start="2024-02-05", end="2024-03-10 23:00", drift_start="2024-03-11", drift_end="2024-03-11"
)
TINY_BACKTEST = BacktestConfig(horizon=24, n_folds=2, step_hours=24, backend=None)
SHORT_SERIES = "eu-west/cart"
SHORT_HOURS = 300  # the tiny backtest needs 2 weeks + 24 h + 24 h = 384


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(["data=fleet"], params_file=None)


@pytest.fixture(scope="module")
def site() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The site's traffic and its sale calendar (the fleet shares it)."""
    tables = simulate(FIVE_WEEKS)
    return tables.traffic, tables.sale_events


@pytest.fixture(scope="module")
def fleet_frame(site: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return split_site_total(site[0], SMALL_FLEET)


@pytest.fixture(scope="module")
def fleet(
    spark: SparkSession, fleet_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> DataFrame:
    folder = tmp_path_factory.mktemp("fleet") / "raw"
    write_fleet(fleet_frame, folder)
    return read_fleet(spark, folder)


def _job(cfg: Config, model: str = "gradient_boosting") -> SeriesJob:
    model_cfg = (
        cfg.model
        if model == cfg.model.name
        else load_config([f"model={model}"], params_file=None).model
    )
    return SeriesJob(model_cfg, cfg.baseline, TINY_BACKTEST, cfg.features, cfg.data.sale_kinds)


def _settings(**changes: object) -> FleetConfig:
    return dataclasses.replace(SMALL_FLEET, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def local_run(
    fleet: DataFrame, site: tuple[pd.DataFrame, pd.DataFrame], cfg: Config
) -> FleetTraining:
    return train_fleet(fleet, site[1], _settings(model="local"), _job(cfg))


@pytest.fixture(scope="module")
def global_run(
    fleet: DataFrame, site: tuple[pd.DataFrame, pd.DataFrame], cfg: Config
) -> FleetTraining:
    return train_fleet(fleet, site[1], _settings(model="global"), _job(cfg))


@pytest.mark.slow
def test_local_mode_gives_one_row_per_series_in_the_report_contract(
    local_run: FleetTraining, fleet_frame: pd.DataFrame
) -> None:
    metrics = FleetSeriesMetrics.validate(local_run.metrics, lazy=True)

    assert sorted(metrics["series_id"]) == sorted(fleet_frame["series_id"].unique())
    assert list(metrics.columns) == list(FleetSeriesMetrics.to_schema().columns)
    assert local_run.excluded.empty
    ratio = aggregate(metrics).ratio
    print(f"local: {len(metrics)} series in {local_run.seconds:.1f} s, ratio {ratio:.3f}")


@pytest.mark.slow
def test_a_series_scores_as_in_the_single_series_pipeline(
    local_run: FleetTraining,
    fleet_frame: pd.DataFrame,
    site: tuple[pd.DataFrame, pd.DataFrame],
    cfg: Config,
) -> None:
    series = "us-east/search"
    traffic = fleet_frame.loc[fleet_frame["series_id"] == series, ["timestamp", "target"]]
    history = build_features(
        traffic.reset_index(drop=True), site[1], cfg.data.sale_kinds, cfg.features
    ).history
    model = run_backtest(cfg.model, history, TINY_BACKTEST, setting="model", intervals=False)
    naive = run_backtest(cfg.baseline, history, TINY_BACKTEST, setting="baseline")
    no_sales = pd.DatetimeIndex([])

    row = local_run.metrics.set_index("series_id").loc[series]
    assert row["mase"] == pytest.approx(summarise(model.folds, no_sales)["mase"], abs=1e-9)
    assert row["baseline_mase"] == pytest.approx(summarise(naive.folds, no_sales)["mase"], abs=1e-9)
    assert row["mae"] == pytest.approx(summarise(model.folds, no_sales)["mae"], abs=1e-9)


@pytest.mark.slow
def test_a_short_series_is_excluded_with_its_reason(
    fleet: DataFrame, site: tuple[pd.DataFrame, pd.DataFrame], cfg: Config
) -> None:
    shortened = _shortened(fleet)

    run = train_fleet(shortened, site[1], _settings(), _job(cfg, "seasonal_naive"))

    assert SHORT_SERIES not in set(run.metrics["series_id"])
    assert len(run.metrics) == 5
    assert run.excluded["series_id"].tolist() == [SHORT_SERIES]
    assert run.excluded["hours"].tolist() == [SHORT_HOURS]
    assert "300 hours of history" in run.excluded["reason"].iloc[0]
    assert "need 384" in run.excluded["reason"].iloc[0]


@pytest.mark.slow
def test_a_short_series_stops_the_run_when_set_to_error(
    fleet: DataFrame, site: tuple[pd.DataFrame, pd.DataFrame], cfg: Config
) -> None:
    settings = _settings(short_series="error")
    with pytest.raises(PipelineInputError, match=rf"{SHORT_SERIES} \(300 h\).*short_series"):
        train_fleet(_shortened(fleet), site[1], settings, _job(cfg))


@pytest.mark.slow
def test_a_fleet_with_no_series_long_enough_is_an_error(
    fleet: DataFrame, site: tuple[pd.DataFrame, pd.DataFrame], cfg: Config
) -> None:
    needs_more = _settings(min_history_hours=10_000)
    with pytest.raises(PipelineInputError, match=r"every one of the 6 series.*10000 hours"):
        train_fleet(fleet, site[1], needs_more, _job(cfg))


def _shortened(fleet: DataFrame) -> DataFrame:
    """The fleet with `SHORT_SERIES` keeping only its last `SHORT_HOURS` hours."""
    last = fleet.agg({"timestamp": "max"}).first()[0]  # type: ignore[index]
    first_kept = pd.Timestamp(last) - pd.Timedelta(hours=SHORT_HOURS - 1)
    keep = (fleet["series_id"] != SHORT_SERIES) | (fleet["timestamp"] >= first_kept)
    return fleet.where(keep)


@pytest.mark.slow
def test_global_mode_beats_seasonal_naive_on_the_same_folds(
    global_run: FleetTraining, local_run: FleetTraining
) -> None:
    metrics = FleetSeriesMetrics.validate(global_run.metrics, lazy=True)
    ratio = aggregate(metrics).ratio
    print(f"global: {len(metrics)} series in {global_run.seconds:.1f} s, ratio {ratio:.3f}")

    assert metrics["series_id"].tolist() == local_run.metrics["series_id"].tolist()
    # Seasonal naive scored in Spark equals the single-series backtest's: same folds, same scale.
    np.testing.assert_allclose(
        metrics["baseline_mase"], local_run.metrics["baseline_mase"], rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        metrics["actual_mean"], local_run.metrics["actual_mean"], rtol=0, atol=1e-9
    )
    assert ratio < 1.0


@pytest.mark.slow
def test_batch_forecast_gives_the_next_week_of_every_series(
    fleet: DataFrame,
    fleet_frame: pd.DataFrame,
    site: tuple[pd.DataFrame, pd.DataFrame],
    cfg: Config,
) -> None:
    forecasts = collected(local_forecasts(fleet, site[1], _job(cfg)))

    last_hours = fleet_frame.groupby("series_id")["timestamp"].max()
    assert set(forecasts["series_id"]) == set(last_hours.index)
    for series, rows in forecasts.groupby("series_id"):
        expected = pd.date_range(
            last_hours[series] + pd.Timedelta(hours=1), periods=cfg.features.horizon, freq="h"
        )
        stamps = pd.DatetimeIndex(rows["timestamp"].sort_values())
        assert stamps.equals(expected.as_unit(stamps.unit)), series
        assert np.isfinite(rows["forecast"]).all()
        assert (rows["forecast"] > 0).all(), series


@pytest.mark.slow
def test_the_global_batch_forecast_beats_seasonal_naive_on_a_held_out_day(
    fleet: DataFrame,
    fleet_frame: pd.DataFrame,
    site: tuple[pd.DataFrame, pd.DataFrame],
    cfg: Config,
) -> None:
    day = pd.Timedelta(hours=24)
    held_out = fleet_frame["timestamp"].max() - day
    job = _job(cfg)
    job = dataclasses.replace(job, features=dataclasses.replace(job.features, horizon=24))
    history = fleet.where(sf.col("timestamp") <= held_out.to_pydatetime())

    forecasts = collected(global_forecasts(history, site[1], SMALL_FLEET.global_model, job))

    frame = fleet_frame.astype({"timestamp": "datetime64[ns]"})
    week_ago = frame.assign(timestamp=frame["timestamp"] + pd.Timedelta(hours=168))
    naive = week_ago.rename(columns={"target": "naive"})[["series_id", "timestamp", "naive"]]
    scored = (
        frame[frame["timestamp"] > held_out]
        .merge(forecasts.astype({"timestamp": "datetime64[ns]"}), on=["series_id", "timestamp"])
        .merge(naive, on=["series_id", "timestamp"])
    )
    assert len(scored) == len(forecasts) == 24 * frame["series_id"].nunique()
    assert (scored["forecast"] >= 0).all()
    model_mae = (scored["forecast"] - scored["target"]).abs().mean()
    naive_mae = (scored["naive"] - scored["target"]).abs().mean()
    print(f"held-out day: global MAE {model_mae:.1f}, seasonal naive {naive_mae:.1f}")
    assert model_mae < naive_mae


def test_more_services_than_the_global_model_can_split_is_a_named_setting(
    fleet: DataFrame, site: tuple[pd.DataFrame, pd.DataFrame], cfg: Config
) -> None:
    narrow = dataclasses.replace(SMALL_FLEET.global_model, max_bins=2)  # 3 services

    with pytest.raises(ConfigError, match=r"max_bins=2: the fleet has 3 service values"):
        global_forecasts(fleet, site[1], narrow, _job(cfg))


@pytest.mark.parametrize(
    ("setting", "value"),
    [("model", "per_series"), ("short_series", "skip"), ("min_history_hours", -1)],
    ids=["model", "short_series", "min_history_hours"],
)
def test_a_wrong_fleet_setting_is_named(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"data\.fleet\.{setting}"):
        FleetConfig(**{setting: value})  # type: ignore[arg-type]


def test_the_sale_calendar_inside_the_fleet_folder_is_refused() -> None:
    # Spark reads every Parquet file under raw_dir as a partition of the fleet.
    with pytest.raises(
        ConfigError, match=r"sale_events_file=data/fleet/calendar\.parquet is inside"
    ):
        FleetConfig(raw_dir="data/fleet", sale_events_file="data/fleet/calendar.parquet")
