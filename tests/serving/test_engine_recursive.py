"""Serving a recursive model (recursive_boosting) in its lean form: what-ifs and live actuals.

A recursive model feeds each forecast hour back as a lag of the next, so a sale planned at hour
``h`` moves every hour from ``h`` on, and none before. sktime forecasts it at ~70 ms an hour,
so the engine here serves the packaged horizon's first `HOURS` hours only.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.base import ForecastingHorizon

from tests.forecasting.conftest import model_config
from tests.packaged import Packaged
from traffic_forecast.forecasting.export import export
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime
from traffic_forecast.pipeline import outputs
from traffic_forecast.serving.artifacts import LeanForms, ModelArtifacts
from traffic_forecast.serving.engine import ForecastEngine, PlannedEvent, WhatIf

HOURS = 8
SALE_START = 3  # hours after the origin


@pytest.fixture(scope="module")
def recursive(loaded: ModelArtifacts, packaged: Packaged) -> ForecastEngine:
    """recursive_boosting fitted on the packaged history, served as `packaged_state` chooses."""
    history = outputs.read_frame(outputs.HISTORY, packaged.cfg.paths)
    fitted = fit(model_config("recursive_boosting"), history)
    columns = list(loaded.card["exogenous_columns"])
    artifacts = dataclasses.replace(
        loaded,
        forecaster=fitted,
        future=loaded.future.iloc[:HOURS],
        lean=LeanForms(export(fitted, columns), loaded.lean.baseline),
    )
    return ForecastEngine(artifacts)


def _sktime(forecaster: Any, engine: ForecastEngine, future: pd.DataFrame) -> np.ndarray:
    fh = ForecastingHorizon(engine.timestamps, is_relative=False)
    with running_sktime():
        predicted = forecaster.predict(fh, X=exogenous(future, engine.columns))
    return np.maximum(predicted.to_numpy(), 0.0)


def _sale(engine: ForecastEngine, start: int = SALE_START) -> PlannedEvent:
    begin = engine.origin + pd.Timedelta(hours=start)
    return PlannedEvent(begin, begin + pd.Timedelta(hours=2), engine.artifacts.sale_kinds[0], 40.0)


def test_a_planned_sale_moves_every_hour_from_its_start_and_none_before(
    recursive: ForecastEngine,
) -> None:
    assert recursive.is_lean, recursive.inference  # its lean form agreed with sktime
    sale = _sale(recursive)
    default, what_if = recursive.default(HOURS, 0.9), recursive.what_if([sale], HOURS, 0.9)
    np.testing.assert_array_equal(what_if.value[:SALE_START], default.value[:SALE_START])
    assert what_if.value[SALE_START] != default.value[SALE_START]
    expected = _sktime(recursive.artifacts.forecaster, recursive, recursive.scenario([sale]))
    np.testing.assert_allclose(what_if.value, expected, rtol=1e-9)


def test_what_ifs_asked_together_are_those_asked_alone(recursive: ForecastEngine) -> None:
    asked = [
        WhatIf([_sale(recursive, start)], horizon, 0.8)
        for start, horizon in [(0, HOURS), (5, HOURS), (2, 4), (6, 3)]
    ]
    for one, answer in zip(asked, recursive.what_ifs(asked), strict=True):
        alone = recursive.what_if(one.events, one.horizon, one.coverage)
        np.testing.assert_array_equal(answer.value, alone.value)
        assert len(answer) == one.horizon


def test_live_actuals_move_it_as_sktime_told_the_same_hours(recursive: ForecastEngine) -> None:
    told = 5
    values = recursive.default(told, 0.9).value * 1.3
    actuals = pd.Series(values, index=recursive.timestamps[:told])
    moved = recursive.advanced(actuals)
    offline = copy.deepcopy(recursive.artifacts.forecaster)
    y = pd.Series(values, index=pd.DatetimeIndex(recursive.timestamps[:told], freq="h"), name="y")
    with running_sktime():
        X = exogenous(recursive.future.iloc[:told], recursive.columns)
        offline.update(y, X=X, update_params=False)
    expected = _sktime(offline, moved, moved.future)
    np.testing.assert_allclose(moved.default(HOURS, 0.9).value, expected, rtol=1e-9)
    assert moved.origin == recursive.origin + pd.Timedelta(hours=told)
