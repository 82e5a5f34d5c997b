"""The forecasting core of the service: default scenario, intervals, what-ifs, fallback."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sktime.forecasting.base import ForecastingHorizon

from tests.packaged import Packaged, quiet_evening
from traffic_forecast.forecasting.export import export
from traffic_forecast.forecasting.features import build_features, exogenous_columns
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime, target_series
from traffic_forecast.forecasting.inference import LeanForecaster
from traffic_forecast.pipeline import outputs
from traffic_forecast.serving.artifacts import LeanForms, ModelArtifacts
from traffic_forecast.serving.engine import (
    Forecast,
    ForecastEngine,
    PlannedEvent,
    SelfCheckError,
    WhatIf,
)
from traffic_forecast.serving.state import packaged_state

WEEK = 168


@pytest.fixture(scope="module")
def engine(loaded: ModelArtifacts) -> ForecastEngine:
    return ForecastEngine(loaded)


def _history(packaged: Packaged) -> pd.DataFrame:
    return outputs.read_frame(outputs.HISTORY, packaged.cfg.paths)


def test_the_origin_is_the_hour_after_the_last_observed_one(
    engine: ForecastEngine, packaged: Packaged
) -> None:
    last = _history(packaged)["timestamp"].iloc[-1]
    assert engine.origin == last + pd.Timedelta(hours=1)
    assert engine.max_horizon == packaged.cfg.features.horizon


def test_the_default_is_the_models_own_forecast(engine: ForecastEngine) -> None:
    artifacts = engine.artifacts
    fh = ForecastingHorizon(engine.timestamps, is_relative=False)
    X = exogenous(artifacts.future, artifacts.card["exogenous_columns"])
    direct = artifacts.forecaster.predict(fh, X=X).to_numpy()
    served = engine.default(WEEK, 0.9)
    np.testing.assert_allclose(served.value, np.maximum(direct, 0.0))
    assert list(served.timestamps) == list(engine.timestamps)
    assert served.fallback is False


def test_a_horizon_takes_the_first_hours(engine: ForecastEngine) -> None:
    whole, first = engine.default(WEEK, 0.9), engine.default(24, 0.9)
    assert len(first) == 24
    np.testing.assert_array_equal(first.value, whole.value[:24])
    np.testing.assert_array_equal(first.upper, whole.upper[:24])


def _assert_bucket_bands(answer: Forecast, buckets: list[dict[str, Any]]) -> None:
    """Each bucket's hours have its calibrated band; the hours past the last, the last's."""
    assert len(buckets) > 1, "the packaged backtest is meant to have several buckets"
    ends = [b["last_step"] for b in buckets[:-1]] + [len(answer)]
    for bucket, end in zip(buckets, ends, strict=True):
        hours = slice(bucket["first_step"] - 1, end)
        value = answer.value[hours]
        low, high = bucket["log_residual_low"], bucket["log_residual_high"]
        np.testing.assert_allclose(answer.lower[hours] / value, math.exp(min(low, 0.0)))
        np.testing.assert_allclose(answer.upper[hours] / value, math.exp(max(high, 0.0)))


def test_the_calibrated_coverage_gives_each_buckets_calibrated_band(
    engine: ForecastEngine,
) -> None:
    intervals = engine.artifacts.intervals

    _assert_bucket_bands(engine.default(WEEK, intervals["coverage"]), intervals["buckets"])


@pytest.mark.parametrize(("narrow", "wide"), [(0.5, 0.8), (0.8, 0.95)], ids=["50-80", "80-95"])
def test_intervals_wrap_the_forecast_and_widen_with_coverage(
    engine: ForecastEngine, narrow: float, wide: float
) -> None:
    small, large = engine.default(WEEK, narrow), engine.default(WEEK, wide)
    for answer in (small, large):
        assert (answer.lower <= answer.value).all()
        assert (answer.value <= answer.upper).all()
    assert (large.upper - large.lower >= small.upper - small.lower).all()
    # Five backtest folds are too few to tell 80 % from 95 %: both reach a bucket's extreme
    # residuals (their conformal levels pass 1). A 50 % band stays narrower than either.
    half = engine.default(WEEK, 0.5)
    assert (large.upper - large.lower > half.upper - half.lower).all()


def test_the_fallback_is_the_same_hour_last_week(
    engine: ForecastEngine, packaged: Packaged
) -> None:
    last_week = _history(packaged)["target"].to_numpy()[-WEEK:]
    calibration = engine.artifacts.intervals["baseline"]
    fallback = engine.fallback(WEEK, calibration["coverage"], reason="test")
    np.testing.assert_allclose(fallback.value, last_week)
    assert (fallback.fallback, fallback.reason) == (True, "test")
    _assert_bucket_bands(fallback, calibration["buckets"])


def test_a_planned_sale_raises_the_forecast_from_its_start(engine: ForecastEngine) -> None:
    start = quiet_evening(engine)
    sale = PlannedEvent(start, start + pd.Timedelta(hours=4), "flash_sale", 40.0)
    default, what_if = engine.default(WEEK, 0.9), engine.what_if([sale], WEEK, 0.9)
    before = engine.timestamps < start
    during = (engine.timestamps >= sale.start) & (engine.timestamps < sale.end)
    np.testing.assert_allclose(what_if.value[before], default.value[before])
    assert what_if.value[during].mean() > 1.05 * default.value[during].mean()
    assert what_if.fallback is False


def test_the_scenario_marks_exactly_the_planned_hours(engine: ForecastEngine) -> None:
    start = quiet_evening(engine)
    sale = PlannedEvent(start, start + pd.Timedelta(hours=3), "flash_sale")
    scenario, packaged = engine.scenario([sale]), engine.artifacts.future
    changed = scenario["sale_active"].to_numpy() != packaged["sale_active"].to_numpy()
    planned = (engine.timestamps >= sale.start) & (engine.timestamps < sale.end)
    np.testing.assert_array_equal(changed, planned)
    assert (scenario.loc[planned, "sale_kind__flash_sale"] == 1).all()
    assert (scenario.loc[planned, "sale_discount"] == engine.typical_discount("flash_sale")).all()


def test_the_typical_discount_is_the_median_of_past_sales_of_the_kind(
    engine: ForecastEngine,
) -> None:
    events = engine.artifacts.sale_events
    assert events is not None
    kind = str(events["kind"].iloc[0])
    expected = float(events.loc[events["kind"] == kind, "discount_pct"].median())
    assert engine.typical_discount(kind) == expected
    assert engine.typical_discount("never_seen") == float(events["discount_pct"].median())


def test_a_model_without_sale_features_ignores_planned_sales(loaded: ModelArtifacts) -> None:
    card = {**loaded.card, "uses_exog": False, "exogenous_columns": []}
    naive = ForecastEngine(dataclasses.replace(loaded, forecaster=loaded.baseline, card=card))
    start = quiet_evening(naive)
    sale = PlannedEvent(start, start + pd.Timedelta(hours=4), "flash_sale")
    np.testing.assert_array_equal(
        naive.what_if([sale], 48, 0.9).value, naive.default(48, 0.9).value
    )


class _ForecastsNothing:
    """Fault injection: a forecaster whose predictions are NaN."""

    def predict(self, fh: ForecastingHorizon, X: Any = None) -> pd.Series:
        return pd.Series(np.nan, index=fh.to_pandas())


def test_a_model_that_forecasts_nan_fails_its_self_check(loaded: ModelArtifacts) -> None:
    with pytest.raises(SelfCheckError, match="model forecast is not"):
        ForecastEngine(dataclasses.replace(loaded, forecaster=_ForecastsNothing()))


# --- moving forward with live actuals ---------------------------------------------------------


def _next_hours(engine: ForecastEngine, hours: int, scale: float = 1.1) -> pd.Series:
    """Plausible actuals for the hours after the engine's last observed: last week's, scaled."""
    recent = engine.state.recent
    values = np.resize(recent.to_numpy(), hours) * scale
    return pd.Series(values, index=pd.date_range(engine.origin, periods=hours, freq="h"))


def test_the_recomputed_horizon_features_are_the_pipelines(
    engine: ForecastEngine, packaged: Packaged
) -> None:
    pipeline = outputs.read_frame(outputs.FUTURE, packaged.cfg.paths)
    served = engine.future[pipeline.columns]
    pd.testing.assert_frame_equal(served, pipeline, check_dtype=False)


def test_advancing_equals_sktime_told_the_same_hours_offline(
    engine: ForecastEngine, packaged: Packaged
) -> None:
    """Online equals offline: the service's path against `build_features` over the whole series."""
    actuals = _next_hours(engine, 30)
    moved = engine.advanced(actuals)
    assert moved.origin == actuals.index[-1] + pd.Timedelta(hours=1)
    assert moved.last_observed == actuals.index[-1]

    cfg = packaged.cfg
    traffic, events = outputs.read_validated(cfg.paths, with_events=True)
    extended = pd.concat(
        [traffic, pd.DataFrame({"timestamp": actuals.index, "target": actuals.to_numpy()})],
        ignore_index=True,
    )
    inputs = build_features(extended, events, list(cfg.data.sale_kinds), cfg.features)
    columns = engine.columns
    new_rows = inputs.history.iloc[-len(actuals) :]
    offline = copy.deepcopy(engine.artifacts.forecaster)
    offline.update(target_series(new_rows), X=exogenous(new_rows, columns), update_params=False)
    fh = ForecastingHorizon(pd.DatetimeIndex(inputs.future["timestamp"]), is_relative=False)
    expected = offline.predict(fh, X=exogenous(inputs.future, columns)).to_numpy()
    served = moved.default(WEEK, 0.9)
    np.testing.assert_allclose(served.value, np.maximum(expected, 0.0), rtol=1e-9)
    assert list(served.timestamps) == list(fh.to_pandas())


def test_advancing_in_steps_equals_advancing_at_once(engine: ForecastEngine) -> None:
    actuals = _next_hours(engine, 12)
    at_once = engine.advanced(actuals)
    in_steps = engine.advanced(actuals.iloc[:5]).advanced(actuals.iloc[5:])
    np.testing.assert_allclose(
        in_steps.default(WEEK, 0.9).value, at_once.default(WEEK, 0.9).value, rtol=1e-12
    )


def test_advancing_leaves_the_engine_it_came_from_as_it_was(engine: ForecastEngine) -> None:
    before = engine.default(WEEK, 0.9).value.copy()
    origin = engine.origin
    engine.advanced(_next_hours(engine, 6, scale=3.0))
    assert engine.origin == origin
    np.testing.assert_array_equal(engine.default(WEEK, 0.9).value, before)


def test_the_actuals_move_the_forecast(engine: ForecastEngine) -> None:
    """Higher traffic than the model expected lifts the next hours (the AR state moved)."""
    usual = engine.advanced(_next_hours(engine, 24, scale=1.0)).default(6, 0.9).value
    busier = engine.advanced(_next_hours(engine, 24, scale=1.5)).default(6, 0.9).value
    assert (busier > usual).all()


@pytest.mark.parametrize("offsets", [[1, 2, 3], [-1, 0, 1], [0, 2]], ids=["gap", "rewind", "holey"])
def test_only_the_next_consecutive_hours_can_be_told(
    engine: ForecastEngine, offsets: list[int]
) -> None:
    index = pd.DatetimeIndex([engine.origin + pd.Timedelta(hours=h) for h in offsets])
    with pytest.raises(ValueError, match="consecutive hours"):
        engine.advanced(pd.Series(np.ones(len(index)), index=index))


# --- the lean form, any coverage ---------------------------------------------------------------


def test_the_packaged_model_serves_in_its_lean_form(engine: ForecastEngine) -> None:
    assert engine.is_lean
    assert engine.inference == {"path": "lean", "why_not_lean": None}


def test_a_model_without_a_lean_form_is_served_by_sktime_and_says_why(
    loaded: ModelArtifacts,
) -> None:
    forms = dataclasses.replace(loaded.lean, forecaster=None, not_exported="theta: no lean form")
    engine = ForecastEngine(dataclasses.replace(loaded, lean=forms))
    assert not engine.is_lean
    assert engine.inference == {"path": "sktime", "why_not_lean": "theta: no lean form"}
    np.testing.assert_allclose(engine.default(WEEK, 0.9).value, ForecastEngine(loaded).default(
        WEEK, 0.9).value, rtol=1e-9)  # fmt: skip


@st.composite
def _planned_sales(draw: st.DrawFn, engine: ForecastEngine) -> list[PlannedEvent]:
    """One to five sales from three days before the window to its end, any kind and discount."""
    sales = []
    for _ in range(draw(st.integers(1, 5))):
        start = engine.origin + pd.Timedelta(hours=draw(st.integers(-72, WEEK - 1)))
        end = start + pd.Timedelta(hours=draw(st.integers(1, 96)))
        kind = draw(st.sampled_from(engine.artifacts.sale_kinds))
        discount = draw(st.none() | st.floats(0, 100))
        sales.append(PlannedEvent(start, end, kind, discount))
    return sales


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_lean_what_if_is_sktimes_forecast_of_the_scenario(
    data: st.DataObject, engine: ForecastEngine
) -> None:
    """Only the hours the sales change are forecast again: the rest must not differ either."""
    sales = data.draw(_planned_sales(engine))
    X = exogenous(engine.scenario(sales), engine.columns)
    fh = ForecastingHorizon(engine.timestamps, is_relative=False)
    expected = np.maximum(engine.artifacts.forecaster.predict(fh, X=X).to_numpy(), 0.0)
    np.testing.assert_allclose(engine.what_if(sales, WEEK, 0.9).value, expected, rtol=1e-9)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    coverage=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    wider=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    horizon=st.integers(1, WEEK),
)
def test_every_interval_holds_its_forecast_and_widens_with_coverage(
    engine: ForecastEngine, coverage: float, wider: float, horizon: int
) -> None:
    narrow, wide = sorted((coverage, wider))
    sale = PlannedEvent(engine.origin + pd.Timedelta(hours=5), engine.origin + pd.Timedelta(
        hours=9), engine.artifacts.sale_kinds[0])  # fmt: skip
    for answer in (
        engine.default(horizon, coverage),
        engine.what_if([sale], horizon, coverage),
        engine.fallback(horizon, coverage, "test"),
    ):
        assert len(answer) == horizon
        assert answer.coverage == coverage
        assert (answer.lower <= answer.value).all(), coverage
        assert (answer.value <= answer.upper).all(), coverage
    small, large = engine.default(horizon, narrow), engine.default(horizon, wide)
    assert (large.lower <= small.lower).all()
    assert (small.upper <= large.upper).all()


@pytest.fixture(scope="module")
def theta(loaded: ModelArtifacts, packaged: Packaged) -> ForecastEngine:
    """The theta option (native intervals, no lean form) on the packaged history."""
    from tests.forecasting.conftest import model_config  # noqa: PLC0415
    from traffic_forecast.forecasting.forecasters import fit  # noqa: PLC0415

    forecaster = fit(model_config("theta"), _history(packaged))
    card = {**loaded.card, "uses_exog": False, "exogenous_columns": []}
    forms = dataclasses.replace(loaded.lean, forecaster=None, not_exported="theta: no lean form")
    intervals = {**loaded.intervals, "method": "native"}
    artifacts = dataclasses.replace(
        loaded, forecaster=forecaster, card=card, lean=forms, intervals=intervals
    )
    return ForecastEngine(artifacts)


def test_native_intervals_of_any_coverage_come_from_the_models_quantiles(
    theta: ForecastEngine,
) -> None:
    fh = ForecastingHorizon(theta.timestamps, is_relative=False)
    band = theta.state.forecaster.predict_interval(fh, coverage=0.9)
    served = theta.default(WEEK, 0.9)
    np.testing.assert_allclose(served.lower, np.minimum(band.iloc[:, 0], served.value), rtol=1e-6)
    np.testing.assert_allclose(served.upper, np.maximum(band.iloc[:, 1], served.value), rtol=1e-6)
    for coverage in (0.01, 0.37, 0.5, 0.999):
        answer = theta.default(WEEK, coverage)
        assert (answer.lower <= answer.value).all()
        assert (answer.value <= answer.upper).all()


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_what_ifs_asked_together_are_those_asked_alone(
    data: st.DataObject, engine: ForecastEngine
) -> None:
    asked = [
        WhatIf(data.draw(_planned_sales(engine)), data.draw(st.integers(1, WEEK)), 0.8)
        for _ in range(data.draw(st.integers(2, 6)))
    ]
    together = engine.what_ifs(asked)
    for one, answer in zip(asked, together, strict=True):
        alone = engine.what_if(one.events, one.horizon, one.coverage)
        # Equal but for rounding: a batch's vectorised sums may group terms otherwise (an
        # AVX-512 machine differed by 2e-15 relative); another request's sales would be far more.
        np.testing.assert_allclose(answer.value, alone.value, rtol=1e-12, atol=0)
        np.testing.assert_allclose(answer.upper, alone.upper, rtol=1e-12, atol=0)


def test_a_lean_model_with_native_intervals_stays_on_sktimes_path(
    loaded: ModelArtifacts,
) -> None:
    """Native intervals are sktime's quantiles of the model: its lean form cannot give them."""
    native = dataclasses.replace(loaded, intervals={**loaded.intervals, "method": "native"})
    state = packaged_state(native)
    assert state.inference == "sktime"
    assert state.forecaster is loaded.forecaster
    assert "native intervals" in (state.why_not_lean or "")
    assert isinstance(state.baseline, LeanForecaster)  # the fallback's intervals are conformal


def test_a_model_trained_with_event_flags_serves_them_as_0(
    loaded: ModelArtifacts, packaged: Packaged
) -> None:
    # The packaged history with a flag on one hour in ten that doubles the traffic then.
    history = _history(packaged)
    flags = np.random.default_rng(1).random(len(history)) < 0.1
    traffic = history[["timestamp", "target"]].assign(
        target=history["target"] * np.where(flags, 2.0, 1.0),
        event__promo=pd.array(flags.astype(int), dtype="Int64"),
    )
    cfg = packaged.cfg
    events = outputs.read_frame(outputs.SALE_EVENTS, cfg.paths)
    inputs = build_features(traffic, events, cfg.data.sale_kinds, cfg.features)
    fitted = fit(cfg.model, inputs.history)
    columns = exogenous_columns(inputs.history)
    assert columns[-1] == "event__promo"
    recent = inputs.history.iloc[-WEEK:]
    artifacts = dataclasses.replace(
        loaded,
        forecaster=fitted,
        card={**loaded.card, "uses_exog": True, "exogenous_columns": columns},
        future=inputs.future,
        recent=pd.Series(
            recent["target"].to_numpy(dtype=float),
            index=pd.DatetimeIndex(recent["timestamp"], freq="h"),
        ),
        lean=LeanForms(export(fitted, columns), loaded.lean.baseline),
    )
    served = ForecastEngine(artifacts)
    assert served.is_lean, served.inference  # the lean form agrees with sktime, flags and all
    assert served.future["event__promo"].eq(0).all()
    X = exogenous(served.future, columns)
    fh = ForecastingHorizon(served.timestamps, is_relative=False)
    with running_sktime():
        quiet = fitted.predict(fh, X=X).to_numpy()
        eventful = fitted.predict(fh, X=X.assign(event__promo=1.0)).to_numpy()
    point = served.default(WEEK, 0.9).value
    np.testing.assert_allclose(point, np.maximum(quiet, 0.0), rtol=1e-9)
    assert np.median(eventful / quiet) > 1.5  # so serving really forecast "no event"
    # Live actuals move it on: the hours' features are rebuilt with the flag at 0.
    actuals = pd.Series(point[:3], index=served.timestamps[:3])
    moved = served.advanced(actuals)
    assert moved.origin == served.origin + pd.Timedelta(hours=3)
    assert np.isfinite(moved.default(24, 0.9).value).all()
    start = quiet_evening(served)
    sale = PlannedEvent(start, start + pd.Timedelta(hours=4), str(events["kind"].iloc[0]))
    assert np.isfinite(served.what_if([sale], 48, 0.9).value).all()
