"""Lean forms (`forecasting.export`, `forecasting.inference`) forecast what sktime forecasts.

Every model option is fitted on six simulated weeks; the exportable ones must match sktime's
``predict`` to a relative 1e-9 on the packaged sale calendar and on random ones (hypothesis),
and after being told new hours as sktime's ``update(update_params=False)`` is.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sktime.forecasting.base import ForecastingHorizon

from tests.forecasting.conftest import MODEL_OPTIONS, model_config
from traffic_forecast.core.config import ModelConfig
from traffic_forecast.data.schemas import SaleEventsRaw
from traffic_forecast.forecasting.export import NotExportableError, days_since_epoch, export
from traffic_forecast.forecasting.features import (
    ModelInputs,
    exogenous_columns,
    sale_features,
)
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime, target_series
from traffic_forecast.forecasting.inference import LeanForecaster

RTOL = 1e-9
# Which options have a lean form: a new option must be put on one side on purpose.
EXPORTABLE = {"gradient_boosting", "seasonal_naive"}
TOLD_HOURS = 30


def _columns(model: ModelConfig, frame: pd.DataFrame) -> list[str]:
    return exogenous_columns(frame) if model.uses_exog else []


def _sktime_forecast(forecaster: Any, future: pd.DataFrame, columns: list[str]) -> np.ndarray:
    fh = ForecastingHorizon(pd.DatetimeIndex(future["timestamp"]), is_relative=False)
    X = exogenous(future, columns) if columns else None
    with running_sktime():
        return np.asarray(forecaster.predict(fh, X=X), dtype=float).ravel()


def _lean_forecast(lean: LeanForecaster, future: pd.DataFrame, columns: list[str]) -> np.ndarray:
    days = days_since_epoch(pd.DatetimeIndex(future["timestamp"]))
    return lean.predict(days, exogenous(future, columns).to_numpy() if columns else None)


@pytest.fixture(scope="module")
def fitted(inputs: ModelInputs) -> dict[str, Any]:
    """Every model option fitted on all but the last `TOLD_HOURS` of history."""
    head = inputs.history.iloc[:-TOLD_HOURS]
    return {option: fit(model_config(option), head) for option in MODEL_OPTIONS}


def test_every_model_option_is_known_to_export_or_not() -> None:
    assert set(MODEL_OPTIONS) >= EXPORTABLE


@pytest.mark.parametrize("option", MODEL_OPTIONS, ids=MODEL_OPTIONS)
def test_the_lean_form_forecasts_what_sktime_forecasts(
    option: str,
    fitted: dict[str, Any],
    inputs: ModelInputs,
) -> None:
    model, forecaster = model_config(option), fitted[option]
    columns = _columns(model, inputs.history)
    # The hours right after the fitted ones: the last TOLD_HOURS of history and on.
    future = pd.concat([inputs.history.iloc[-TOLD_HOURS:], inputs.future]).iloc[:168]
    if option not in EXPORTABLE:
        with pytest.raises(NotExportableError, match="has no lean form"):
            export(forecaster, columns)
        return
    lean = export(forecaster, columns)
    expected = _sktime_forecast(forecaster, future, columns)
    np.testing.assert_allclose(_lean_forecast(lean, future, columns), expected, rtol=RTOL)


@pytest.mark.parametrize("option", sorted(EXPORTABLE))
def test_told_new_hours_the_lean_form_moves_as_sktime_does(
    option: str,
    fitted: dict[str, Any],
    inputs: ModelInputs,
) -> None:
    model = model_config(option)
    columns = _columns(model, inputs.history)
    lean = export(fitted[option], columns)
    told = inputs.history.iloc[-TOLD_HOURS:]
    updated = copy.deepcopy(fitted[option])
    with running_sktime():
        updated.update(
            target_series(told),
            X=exogenous(told, columns) if columns else None,
            update_params=False,
        )
    stamps = pd.DatetimeIndex(told["timestamp"])
    moved = lean.advanced(
        told["target"].to_numpy(dtype=float),
        days_since_epoch(stamps),
        exogenous(told, columns).to_numpy() if columns else None,
    )
    expected = _sktime_forecast(updated, inputs.future, columns)
    np.testing.assert_allclose(_lean_forecast(moved, inputs.future, columns), expected, rtol=RTOL)


@st.composite
def sale_calendars(draw: st.DrawFn, stamps: pd.DatetimeIndex, kinds: list[str]) -> pd.DataFrame:
    """Up to five sales starting anywhere from three days before the horizon to its end."""
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        start = stamps[0] + pd.Timedelta(hours=draw(st.integers(-72, len(stamps) - 1)))
        rows.append(
            {
                SaleEventsRaw.start: start,
                SaleEventsRaw.end: start + pd.Timedelta(hours=draw(st.integers(1, 96))),
                SaleEventsRaw.kind: draw(st.sampled_from(kinds)),
                SaleEventsRaw.discount_pct: draw(st.integers(0, 100)),
            }
        )
    columns = [SaleEventsRaw.start, SaleEventsRaw.end, SaleEventsRaw.kind]
    return pd.DataFrame(rows, columns=[*columns, SaleEventsRaw.discount_pct])


@pytest.fixture(scope="module")
def boosted(fitted: dict[str, Any], inputs: ModelInputs) -> tuple[Any, LeanForecaster, list[str]]:
    """The default model told the last hours of history: it forecasts `inputs.future`."""
    columns = exogenous_columns(inputs.history)
    told = inputs.history.iloc[-TOLD_HOURS:]
    forecaster = copy.deepcopy(fitted["gradient_boosting"])
    with running_sktime():
        forecaster.update(target_series(told), X=exogenous(told, columns), update_params=False)
    return forecaster, export(forecaster, columns), columns


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_on_any_sale_calendar_the_lean_form_forecasts_what_sktime_forecasts(
    data: st.DataObject,
    boosted: tuple[Any, LeanForecaster, list[str]],
    inputs: ModelInputs,
) -> None:
    forecaster, lean, columns = boosted
    future = inputs.future.copy()
    stamps = pd.DatetimeIndex(future["timestamp"])
    kinds = [c.removeprefix("sale_kind__") for c in columns if c.startswith("sale_kind__")]
    calendar = data.draw(sale_calendars(stamps, kinds))
    sales = sale_features(stamps, calendar, kinds)
    future[list(sales.columns)] = sales.to_numpy()
    expected = _sktime_forecast(forecaster, future, columns)
    np.testing.assert_allclose(_lean_forecast(lean, future, columns), expected, rtol=RTOL)
