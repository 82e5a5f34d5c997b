"""The features stage: schema-valid history and future frames from the validated tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from traffic_forecast.core.config import Config, FeaturesConfig
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.data.schemas import FutureFeatures, ModelFrame
from traffic_forecast.pipeline import features, outputs, validate


def test_stage_writes_schema_valid_history_and_future(small_raw: Config) -> None:
    cfg = dataclasses.replace(small_raw, features=FeaturesConfig(horizon=168))
    assert validate.run(cfg).passed

    returned = features.run(cfg)

    out = Path(cfg.paths.features_dir)
    history = pd.read_parquet(out / outputs.HISTORY.name)
    future = pd.read_parquet(out / outputs.FUTURE.name)
    ModelFrame.validate(history)
    FutureFeatures.validate(future)
    pd.testing.assert_frame_equal(history, returned.history)
    pd.testing.assert_frame_equal(future, returned.future)

    raw = pd.read_csv(cfg.data.traffic_file, parse_dates=["timestamp"])
    assert history["timestamp"].tolist() == raw["timestamp"].tolist()
    assert history["target"].tolist() == raw["sessions"].astype(float).tolist()
    last = raw["timestamp"].iloc[-1]
    assert future["timestamp"].iloc[0] == last + pd.Timedelta(hours=1)
    assert len(future) == cfg.features.horizon
    assert future[FutureFeatures.target_lag_168].tolist() == history["target"].iloc[-168:].tolist()

    # The sale calendar of the raw file, planned sales included, is what the frames show.
    events = pd.read_csv(cfg.data.sale_events_file, parse_dates=["start", "end"])
    for frame in (history, future):
        stamps = frame["timestamp"]
        running = np.zeros(len(frame), dtype=bool)
        for event in events.itertuples():
            running |= ((stamps >= event.start) & (stamps < event.end)).to_numpy()
        assert frame[FutureFeatures.sale_active].astype(bool).tolist() == running.tolist()
    assert future[FutureFeatures.sale_active].any(), "the six weeks plan a sale in the horizon"

    # The six weeks hold two federal holidays: New Year's Day and Martin Luther King Jr. Day.
    holiday_days = set(history.loc[history[FutureFeatures.is_holiday] == 1, "timestamp"].dt.date)
    assert {str(day) for day in holiday_days} == {"2024-01-01", "2024-01-15"}


def test_stage_without_validated_tables_names_the_missing_file(config_in: Config) -> None:
    expected = outputs.TRAFFIC.path(config_in.paths)

    with pytest.raises(PipelineInputError, match="run the validate stage") as raised:
        features.run(config_in)

    assert str(expected) in str(raised.value)
    assert not Path(config_in.paths.features_dir).exists()
