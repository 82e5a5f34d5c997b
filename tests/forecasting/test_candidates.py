"""The candidates of ``model=auto``: zero hours, short history, refusals, the stacked ensemble.

Every model option fits and forecasts the next day in test_forecasters; here the same options
meet what users' data brings (hours with no traffic, too little history), and the ensemble's
weights are checked to learn only from folds before the one they combine.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.forecasting.conftest import MODEL_OPTIONS, model_config
from traffic_forecast.core.config import ModelConfig
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.forecasting.ensemble import stacked_folds, stacking_weights
from traffic_forecast.forecasting.features import ModelInputs, exogenous_columns
from traffic_forecast.forecasting.forecasters import (
    PROJECT_TARGETS,
    build_forecaster,
    exogenous,
    fit,
    running_sktime,
    target_series,
)
from traffic_forecast.forecasting.metrics import Fold
from traffic_forecast.forecasting.selection import (
    ENSEMBLE,
    STACKED,
    Choice,
    candidate_models,
    choose,
    chosen_model,
    ensemble_model,
)

HOURS_AHEAD = 24
NIGHT = (1, 2, 3, 4)  # hours of the day emptied to zero, as bike rentals are at night
OUTAGE_DAY = 20  # and one whole day at zero: after the log and the weekly profile, below 0


def _with_zero_hours(history: pd.DataFrame) -> pd.DataFrame:
    zeroed = history.copy()
    stamps = zeroed["timestamp"]
    outage = stamps.dt.normalize() == stamps.iloc[0].normalize() + pd.Timedelta(days=OUTAGE_DAY)
    zeroed.loc[stamps.dt.hour.isin(NIGHT) | outage, "target"] = 0.0
    return zeroed


@pytest.mark.parametrize("option", MODEL_OPTIONS, ids=MODEL_OPTIONS)
def test_every_candidate_forecasts_a_series_with_zero_hours(
    option: str, inputs: ModelInputs
) -> None:
    model = model_config(option)
    history = _with_zero_hours(inputs.history)

    forecaster = fit(model, history)
    X = None
    if model.uses_exog:
        X = exogenous(inputs.future.iloc[:HOURS_AHEAD], exogenous_columns(inputs.future))
    with running_sktime():
        forecast = forecaster.predict(fh=np.arange(1, HOURS_AHEAD + 1), X=X).to_numpy()

    assert np.isfinite(forecast).all()
    assert forecast.max() > 0


@pytest.mark.parametrize("option", ["theta", "mstl_ets", "seasonal_naive"])
def test_a_season_longer_than_half_the_history_is_refused_by_name(
    option: str, inputs: ModelInputs
) -> None:
    short = inputs.history.iloc[-300:]  # under two weeks: a weekly season cannot fit twice

    with pytest.raises(ConfigError, match=r"model\.forecaster.*=168: a season length"):
        fit(model_config(option), short)


def _multiplicative_theta() -> ModelConfig:
    theta = model_config("theta")
    steps = [dict(step) for step in theta.forecaster["steps"]]
    steps[1] = {**steps[1], "model": "multiplicative"}
    return dataclasses.replace(theta, forecaster={**theta.forecaster, "steps": steps})


def test_a_multiplicative_form_on_zero_hours_is_refused_before_training(
    inputs: ModelInputs,
) -> None:
    history = _with_zero_hours(inputs.history)

    with pytest.raises(ConfigError, match=r"steps\[1\]\.model=multiplicative.*hours at or below 0"):
        fit(_multiplicative_theta(), history)
    fit(_multiplicative_theta(), inputs.history)  # positive traffic: the same form is fine


def test_a_forecaster_failing_inside_statsmodels_gives_one_line_naming_it(
    inputs: ModelInputs,
) -> None:
    # sktime's Theta deseasonalizes multiplicatively unless told not to, whatever the config
    # says elsewhere: the failure surfaces deep in statsmodels, and comes out as a ConfigError.
    theta = model_config("theta")
    steps = [dict(step) for step in theta.forecaster["steps"]]
    steps[2] = {key: value for key, value in steps[2].items() if key != "deseasonalize"}
    implicit = dataclasses.replace(theta, forecaster={**theta.forecaster, "steps": steps})

    with pytest.raises(ConfigError, match=r"\(theta\) cannot be fitted on this data.*Multipl"):
        fit(implicit, _with_zero_hours(inputs.history))


# statsmodels' exponential smoothing says so on every update that keeps its parameters
@pytest.mark.filterwarnings("ignore:NotImplementedWarning")
def test_mstl_takes_live_actuals_where_sktimes_own_transformer_fails(
    inputs: ModelInputs,
) -> None:
    history = target_series(inputs.history)
    head, told = history.iloc[:-6], history.iloc[-6:]
    model = model_config("mstl_ets")
    forecaster = fit(model, inputs.history.iloc[:-6])
    steps = [dict(step) for step in model.forecaster["steps"]]
    steps[1]["_target_"] = "sktime.transformations.detrend.mstl.MSTL"  # sktime's own
    stock = build_forecaster(
        dataclasses.replace(model, forecaster={**model.forecaster, "steps": steps})
    )

    with running_sktime():
        forecaster.update(told, update_params=False)
        assert forecaster.cutoff[0] == history.index[-1]
        assert np.isfinite(forecaster.predict(fh=[1, 2]).to_numpy()).all()
        stock.fit(head)
        with pytest.raises(ValueError, match="Unexpected input type"):
            stock.update(told, update_params=False)


def test_every_project_class_a_model_names_is_a_dependency_of_the_stages() -> None:
    named = {
        match
        for path in (REPO_ROOT / "conf" / "model").glob("*.yaml")
        for match in re.findall(r"_target_: (traffic_forecast\.[\w.]+)", path.read_text("utf-8"))
    }

    assert named  # the control: mstl_ets names the project's MSTL
    assert named | {STACKED} <= {f"{t.__module__}.{t.__name__}" for t in PROJECT_TARGETS}


# ---------------------------------------------------------------- the stacked ensemble


def _folds(values: np.ndarray, actual: np.ndarray, scale: float = 1.0) -> list[Fold]:
    """One fold per row: ``values`` forecasts ``actual``, hourly from a fixed start."""
    folds = []
    for k, (forecast, truth) in enumerate(zip(values, actual, strict=True)):
        hours = pd.date_range("2025-01-01", periods=len(truth), freq="h") + pd.Timedelta(weeks=k)
        folds.append(
            Fold(
                cutoff=hours[0] - pd.Timedelta(hours=1),
                actual=pd.Series(truth, index=hours),
                forecast=pd.Series(forecast, index=hours),
                lower=None,
                upper=None,
                scale=scale,
            )
        )
    return folds


def _candidates(seed: int = 0) -> tuple[list[list[Fold]], np.ndarray]:
    """Two candidates: one 20 % too high, one unbiased but noisy; 8 folds of 24 hours."""
    rng = np.random.default_rng(seed)
    truth = 100 + 50 * np.sin(np.arange(8 * 24).reshape(8, 24) / 4)
    high = truth * 1.2
    noisy = truth + rng.normal(0, 10, truth.shape)
    return [_folds(high, truth), _folds(noisy, truth)], truth


def test_stacking_weights_recover_a_known_combination() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(50, 150, (6, 24))
    a, b = rng.uniform(50, 150, truth.shape), rng.uniform(50, 150, truth.shape)
    actual = 0.3 * a + 0.6 * b  # the truth is exactly this mix

    weights = stacking_weights([_folds(a, actual), _folds(b, actual)])

    np.testing.assert_allclose(weights, [0.3, 0.6], atol=1e-9)


def test_weights_are_non_negative_and_the_first_fold_takes_the_mean() -> None:
    candidates, _ = _candidates()
    negative = [_folds(-np.ones((8, 24)), np.ones((8, 24))), candidates[1]]

    assert (stacking_weights(negative) >= 0).all()
    first = stacked_folds(candidates)[0]
    mean = (candidates[0][0].forecast + candidates[1][0].forecast) / 2
    np.testing.assert_allclose(first.forecast.to_numpy(), mean.to_numpy())


def test_a_fold_is_combined_only_with_what_earlier_folds_taught() -> None:
    candidates, truth = _candidates()
    honest = stacked_folds(candidates)
    # Poison fold 6's actuals (and so what later folds learn): folds 0-6 must not move.
    poisoned_truth = truth.copy()
    poisoned_truth[6] *= 1000
    poisoned = [
        _folds(np.array([f.forecast.to_numpy() for f in c]), poisoned_truth) for c in candidates
    ]

    moved = stacked_folds(poisoned)

    for k in range(7):
        np.testing.assert_array_equal(moved[k].forecast, honest[k].forecast, err_msg=f"fold {k}")
    assert not np.allclose(moved[7].forecast, honest[7].forecast)  # the control: it learns


def test_the_ensemble_beats_each_candidate_when_their_errors_differ() -> None:
    candidates, _ = _candidates()
    folds = stacked_folds(candidates)

    def error(fold_list: list[Fold]) -> float:
        return float(np.mean([np.abs(f.forecast - f.actual).mean() for f in fold_list[1:]]))

    assert error(folds) < min(error(candidate) for candidate in candidates)


# ---------------------------------------------------------------- model=auto's choice


def test_the_lowest_mase_wins_and_a_tie_goes_to_the_cheaper() -> None:
    assert choose({"a": 0.9, "b": 0.5, ENSEMBLE: 0.6}, tie_tolerance=0.01) == "b"
    assert choose({"a": 0.503, "b": 0.5, ENSEMBLE: 0.45}, tie_tolerance=0.01) == ENSEMBLE
    assert choose({"a": 0.504, "b": 0.5}, tie_tolerance=0.01) == "a"  # within 1 %: listed first
    assert choose({"a": 0.506, "b": 0.5}, tie_tolerance=0.01) == "b"
    assert choose({"flat": None, "b": 0.7}, tie_tolerance=0.01) == "b"


def test_auto_lists_every_other_model_option_as_a_candidate() -> None:
    auto = model_config("auto")

    candidates = candidate_models(auto)

    assert sorted(candidates) == MODEL_OPTIONS
    assert all(model.forecaster for model in candidates.values())
    with pytest.raises(ConfigError, match="run the evaluate stage first"):
        chosen_model(auto, None)
    assert chosen_model(auto, Choice("theta")) == candidates["theta"]
    with pytest.raises(ConfigError, match="no longer a candidate"):
        chosen_model(auto, Choice("prophet"))


def test_the_chosen_ensemble_keeps_the_weighted_candidates_and_hides_features_from_others(
    inputs: ModelInputs,
) -> None:
    auto = model_config("auto")
    weights = {"seasonal_naive": 0.0, "theta": 0.25, "gradient_boosting": 0.8}

    model = chosen_model(auto, Choice(ENSEMBLE, weights))
    forecaster = fit(model, inputs.history.iloc[-3 * 168 :])

    assert model == ensemble_model(candidate_models(auto), weights)
    assert model.uses_exog
    assert [name for name, _ in forecaster.forecasters] == ["theta", "gradient_boosting"]
    assert type(forecaster.forecasters[0][1]).__name__ == "IgnoreX"
    assert forecaster.weights == [0.25, 0.8]
    with pytest.raises(ConfigError, match="no candidate with a positive weight"):
        ensemble_model(candidate_models(auto), {"theta": 0.0})
