"""Lean forms (`forecasting.export`, `forecasting.inference`) forecast what sktime forecasts.

Every model option is fitted on six simulated weeks; the exportable ones must match sktime's
``predict`` to a relative 1e-9 on the packaged sale calendar and on random ones (hypothesis),
and after being told new hours as sktime's ``update(update_params=False)`` is. So must a
stacked ensemble whose members are lean, recursive or sktime's own, and the scenarios (what-ifs)
of a recursive model, where a changed hour moves every later one.
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
from traffic_forecast.forecasting.export import (
    LeanModel,
    NotExportableError,
    days_since_epoch,
    export,
)
from traffic_forecast.forecasting.features import (
    ModelInputs,
    exogenous_columns,
    sale_features,
)
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime, target_series
from traffic_forecast.forecasting.lean_ensemble import LeanEnsemble
from traffic_forecast.forecasting.selection import ensemble_model

RTOL = 1e-9
# Which options have a lean form: a new option must be put on one side on purpose.
EXPORTABLE = {"gradient_boosting", "recursive_boosting", "seasonal_naive"}
TOLD_HOURS = 30
# sktime forecasts a recursive reduction at ~70 ms an hour: it is compared on fewer hours.
RECURSIVE = {"recursive_boosting"}
SHORT = 8
# A row-wise, a recursive and an sktime-only member (theta has no lean form).
MIXED = {"gradient_boosting": 0.4, "recursive_boosting": 0.5, "theta": 0.1}


def _columns(model: ModelConfig, frame: pd.DataFrame) -> list[str]:
    return exogenous_columns(frame) if model.uses_exog else []


def _sktime_forecast(forecaster: Any, future: pd.DataFrame, columns: list[str]) -> np.ndarray:
    fh = ForecastingHorizon(pd.DatetimeIndex(future["timestamp"]), is_relative=False)
    X = exogenous(future, columns) if columns else None
    with running_sktime():
        return np.asarray(forecaster.predict(fh, X=X), dtype=float).ravel()


def _lean_forecast(lean: LeanModel, future: pd.DataFrame, columns: list[str]) -> np.ndarray:
    days = days_since_epoch(pd.DatetimeIndex(future["timestamp"]))
    return lean.predict(days, exogenous(future, columns).to_numpy() if columns else None)


def _hours(option: str) -> int:
    return SHORT if option in RECURSIVE else 168


def _after_head(inputs: ModelInputs, hours: int) -> pd.DataFrame:
    """The ``hours`` after those the models are fitted on (the last TOLD_HOURS of history on)."""
    return pd.concat([inputs.history.iloc[-TOLD_HOURS:], inputs.future]).iloc[:hours]


def _told_both(
    forecaster: Any, lean: LeanModel, told: pd.DataFrame, columns: list[str]
) -> tuple[Any, LeanModel]:
    """Sktime's ``update(update_params=False)`` of a copy, and the lean form's ``advanced``."""
    updated = copy.deepcopy(forecaster)
    with running_sktime():
        updated.update(
            target_series(told),
            X=exogenous(told, columns) if columns else None,
            update_params=False,
        )
    moved = lean.advanced(
        told["target"].to_numpy(dtype=float),
        days_since_epoch(pd.DatetimeIndex(told["timestamp"])),
        exogenous(told, columns).to_numpy() if columns else None,
    )
    return updated, moved


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
    future = _after_head(inputs, _hours(option))
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
    updated, moved = _told_both(fitted[option], lean, told, columns)
    future = inputs.future.iloc[: _hours(option)]
    expected = _sktime_forecast(updated, future, columns)
    np.testing.assert_allclose(_lean_forecast(moved, future, columns), expected, rtol=RTOL)


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
def boosted(fitted: dict[str, Any], inputs: ModelInputs) -> tuple[Any, LeanModel, list[str]]:
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
    boosted: tuple[Any, LeanModel, list[str]],
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


# --- the stacked ensemble, and what-ifs of recursive models ----------------------------------


def _ensemble(weights: dict[str, float], history: pd.DataFrame) -> Any:
    candidates = {name: model_config(name) for name in weights}
    return fit(ensemble_model(candidates, weights), history)


@pytest.fixture(scope="module")
def mixed(inputs: ModelInputs) -> Any:
    """The `MIXED` ensemble fitted on all but the last `TOLD_HOURS` of history."""
    return _ensemble(MIXED, inputs.history.iloc[:-TOLD_HOURS])


# Theta cannot take new data without a refit: sktime says so, and shifts its forecast on.
@pytest.mark.filterwarnings("ignore:NotImplementedWarning:UserWarning")
def test_the_lean_ensemble_forecasts_and_moves_as_sktimes(mixed: Any, inputs: ModelInputs) -> None:
    columns = exogenous_columns(inputs.history)
    lean = export(mixed, columns)
    assert isinstance(lean, LeanEnsemble)
    assert lean.through_sktime == ("theta",)
    future = _after_head(inputs, SHORT)
    expected = _sktime_forecast(mixed, future, columns)
    np.testing.assert_allclose(_lean_forecast(lean, future, columns), expected, rtol=RTOL)
    updated, moved = _told_both(mixed, lean, inputs.history.iloc[-TOLD_HOURS:], columns)
    future = inputs.future.iloc[:SHORT]
    expected = _sktime_forecast(updated, future, columns)
    np.testing.assert_allclose(_lean_forecast(moved, future, columns), expected, rtol=RTOL)


# statsmodels' exponential smoothing says so on every update that keeps its parameters
@pytest.mark.filterwarnings("ignore:NotImplementedWarning")
def test_an_mstl_member_is_told_new_hours_as_sktime_tells_it(inputs: ModelInputs) -> None:
    head, told = inputs.history.iloc[:-TOLD_HOURS], inputs.history.iloc[-TOLD_HOURS:]
    ensemble = _ensemble({"seasonal_naive": 0.7, "mstl_ets": 0.3}, head)
    lean = export(ensemble, [])
    assert isinstance(lean, LeanEnsemble)
    assert lean.through_sktime == ("mstl_ets",)

    updated, moved = _told_both(ensemble, lean, told, [])

    future = inputs.future.iloc[:SHORT]
    expected = _sktime_forecast(updated, future, [])
    np.testing.assert_allclose(_lean_forecast(moved, future, []), expected, rtol=RTOL)


def test_an_ensemble_without_a_lean_member_is_not_exported(inputs: ModelInputs) -> None:
    ensemble = _ensemble({"theta": 0.5, "mstl_ets": 0.5}, inputs.history)
    with pytest.raises(NotExportableError, match="no member of the ensemble has a lean form"):
        export(ensemble, [])


def _with_sale(future: pd.DataFrame, columns: list[str], start: int, hours: int) -> pd.DataFrame:
    """``future`` with a sale of the first kind from its hour ``start`` for ``hours`` hours."""
    stamps = pd.DatetimeIndex(future["timestamp"])
    kinds = [c.removeprefix("sale_kind__") for c in columns if c.startswith("sale_kind__")]
    calendar = pd.DataFrame(
        {
            SaleEventsRaw.start: [stamps[start]],
            SaleEventsRaw.end: [stamps[start] + pd.Timedelta(hours=hours)],
            SaleEventsRaw.kind: [kinds[0]],
            SaleEventsRaw.discount_pct: [40],
        }
    )
    sales = sale_features(stamps, calendar, kinds)
    planned = future.copy()
    planned[list(sales.columns)] = sales.to_numpy()
    return planned


@pytest.mark.parametrize("name", ["recursive_boosting", "mixed"])
def test_a_what_if_of_a_recursive_model_moves_every_hour_from_its_first_change(
    name: str, fitted: dict[str, Any], mixed: Any, inputs: ModelInputs
) -> None:
    forecaster = mixed if name == "mixed" else fitted[name]
    columns = exogenous_columns(inputs.history)
    future = _after_head(inputs, SHORT)
    start = 4
    planned = _with_sale(future, columns, start, hours=3)
    days = days_since_epoch(pd.DatetimeIndex(future["timestamp"]))
    X, X_planned = (exogenous(frame, columns).to_numpy() for frame in (future, planned))
    assert (X[:start] == X_planned[:start]).all()
    assert (X[start] != X_planned[start]).any()
    scenarios = export(forecaster, columns).scenarios(days, X)
    what_if, same, shorter = scenarios.under([X_planned, X, X_planned[: start + 2]])
    np.testing.assert_array_equal(what_if[:start], scenarios.default[:start])
    assert what_if[start] != scenarios.default[start]
    np.testing.assert_array_equal(same, scenarios.default)
    np.testing.assert_array_equal(shorter, what_if[: start + 2])  # asked together, or alone
    expected = _sktime_forecast(forecaster, planned, columns)
    np.testing.assert_allclose(what_if, expected, rtol=RTOL)
