"""Configuration: `params.yaml` matches `conf/`, every option composes, bad settings fail early.

A bad setting must stop a stage at once with a `ConfigError` that names the setting, before any
data is read or any model is fitted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from tests.conftest import REPO_ROOT
from traffic_forecast.core.config import (
    OPS_SECTIONS,
    PIPELINE_SECTIONS,
    BacktestConfig,
    Config,
)
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.core.settings import OPS_ROOT, compose, load_config, write_params
from traffic_forecast.forecasting.backtest import run_backtest, splitter
from traffic_forecast.forecasting.forecasters import build_forecaster, check_fits_history, fit
from traffic_forecast.forecasting.metrics import MASE_SEASON

CONF = REPO_ROOT / "conf"
COMMITTED_PARAMS = REPO_ROOT / "params.yaml"
HISTORY_HOURS = 1008  # six weeks, as in the `small_raw` fixture

# Every option of every config group, found on disk so that a new option is tested too.
GROUP_OPTIONS = sorted((path.parent.name, path.stem) for path in CONF.glob("*/*.yaml"))
MODEL_OPTIONS = sorted(option for group, option in GROUP_OPTIONS if group == "model")
SINGLE_MODELS = [option for option in MODEL_OPTIONS if option != "auto"]  # auto chooses one


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


def _composed_params(tmp_path: Path, overrides: list[str]) -> bytes:
    output = tmp_path / "params.yaml"
    write_params(overrides, output=output)
    return output.read_bytes()


def _no_data() -> pd.DataFrame:
    """Six weeks of rows and no columns: any stage that touches the data fails on it."""
    return pd.DataFrame(index=pd.RangeIndex(HISTORY_HOURS))


# --- params.yaml ------------------------------------------------------------------------------


def test_params_yaml_is_in_sync_with_conf(tmp_path: Path) -> None:
    assert _composed_params(tmp_path, []) == COMMITTED_PARAMS.read_bytes(), (
        "params.yaml differs from what conf/ composes to: run `make params` and commit it"
    )


def test_params_sync_check_notices_a_different_composition(tmp_path: Path) -> None:
    assert _composed_params(tmp_path, ["model=theta"]) != COMMITTED_PARAMS.read_bytes()


def test_writing_params_rejects_a_misspelt_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backtest\.n_fold\b"):
        write_params(["+backtest.n_fold=3"], output=tmp_path / "params.yaml")


def test_loading_params_rejects_a_misspelt_key(tmp_path: Path) -> None:
    edited = COMMITTED_PARAMS.read_text(encoding="utf-8").replace("  n_folds:", "  n_fold:")
    path = tmp_path / "params.yaml"
    path.write_text(edited, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"backtest\.n_fold\b") as raised:
        load_config(params_file=path)
    assert str(path) in str(raised.value)


def test_missing_params_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make params"):
        load_config(params_file=tmp_path / "params.yaml")


def test_params_yaml_holds_the_pipeline_and_conf_ops_the_rest() -> None:
    assert set(OmegaConf.load(COMMITTED_PARAMS).keys()) == set(PIPELINE_SECTIONS)
    assert set(compose(OPS_ROOT).keys()) == set(OPS_SECTIONS)


def test_an_ops_group_in_the_pipeline_config_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    text = (conf / "config.yaml").read_text(encoding="utf-8")
    (conf / "config.yaml").write_text(text.replace("  - _self_", "  - gate: default\n  - _self_"))
    with pytest.raises(ConfigError, match=r"\['gate'\].*ops\.yaml"):
        write_params(output=tmp_path / "params.yaml", conf_dir=conf)


# --- one loader, one rule: overrides on top of the current params ---------------------------


def _params_of_an_experiment(tmp_path: Path) -> Path:
    """A params.yaml as `dvc exp run -S model=theta -S backtest.n_folds=8` writes it."""
    path = tmp_path / "params.yaml"
    write_params(["model=theta", "backtest.n_folds=8"], output=path)
    return path


def test_without_overrides_the_params_are_loaded_as_written(tmp_path: Path) -> None:
    cfg = load_config(params_file=_params_of_an_experiment(tmp_path))
    assert (cfg.model.name, cfg.backtest.n_folds) == ("theta", 8)


def test_a_setting_override_keeps_what_the_experiment_set(tmp_path: Path) -> None:
    cfg = load_config(["backtest.horizon=12"], params_file=_params_of_an_experiment(tmp_path))
    assert (cfg.model.name, cfg.backtest.n_folds, cfg.backtest.horizon) == ("theta", 8, 12)


def test_a_group_override_replaces_only_its_section(tmp_path: Path) -> None:
    params = _params_of_an_experiment(tmp_path)
    cfg = load_config(["model@baseline=theta"], params_file=params)
    assert (cfg.model.name, cfg.baseline.name, cfg.backtest.n_folds) == ("theta", "theta", 8)
    cfg = load_config(["model=gradient_boosting"], params_file=params)
    assert (cfg.model.name, cfg.backtest.n_folds) == ("gradient_boosting", 8)


def test_groups_apply_before_settings_whatever_their_order(tmp_path: Path) -> None:
    cfg = load_config(
        ["data.traffic_file=mine.csv", "data=csv"], params_file=_params_of_an_experiment(tmp_path)
    )
    assert (cfg.data.name, cfg.data.traffic_file) == ("csv", "mine.csv")


def test_ops_settings_are_overridden_the_same_way() -> None:
    cfg = load_config(["deploy.router_port=9080", "serving.default_horizon=48"])
    assert (cfg.deploy.router_port, cfg.serving.default_horizon) == (9080, 48)
    assert cfg.model.name == OmegaConf.load(COMMITTED_PARAMS).model.name


def test_an_override_that_is_no_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="missing EQUAL"):
        load_config(["backtest.n_folds"])
    with pytest.raises(ConfigError, match="sweep"):
        load_config(["model=theta,seasonal_naive"])


# --- every option composes --------------------------------------------------------------------


def test_every_default_is_an_option_on_disk() -> None:
    defaults = [
        *OmegaConf.load(CONF / "config.yaml")["defaults"],
        *OmegaConf.load(CONF / f"{OPS_ROOT}.yaml")["defaults"],
    ]
    chosen = {
        (group.split("@")[0], option)  # model@baseline: an option of the model group
        for entry in defaults
        if entry != "_self_"
        for group, option in entry.items()
    }
    assert chosen <= set(GROUP_OPTIONS)
    assert {group for group, _ in chosen} == {group for group, _ in GROUP_OPTIONS}


@pytest.mark.parametrize(
    ("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS]
)
def test_every_option_composes_into_the_schema(group: str, option: str) -> None:
    root = "config" if group in PIPELINE_SECTIONS else OPS_ROOT
    raw = compose(root, [f"{group}={option}"])
    load_config([f"{group}={option}"], params_file=None)  # typed: the schema accepts it
    chosen = OmegaConf.load(CONF / group / f"{option}.yaml")
    settings = {key: value for key, value in chosen.items() if key != "defaults"}
    assert settings, f"conf/{group}/{option}.yaml sets nothing"
    for key, value in settings.items():
        assert _plain(raw[group][key]) == _plain(value), f"{group}.{key} of {option} not applied"


@pytest.mark.parametrize("option", SINGLE_MODELS, ids=SINGLE_MODELS)
def test_every_model_option_composes_as_the_baseline(option: str) -> None:
    cfg = load_config([f"model@baseline={option}"], params_file=None)
    assert cfg.baseline.name == option
    assert cfg.baseline.forecaster == _plain(
        OmegaConf.load(CONF / "model" / f"{option}.yaml").forecaster
    )


# --- bad settings -----------------------------------------------------------------------------

# (overrides, fragments the message must contain): rejected when the config is loaded.
REJECTED_WHEN_LOADED: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "unknown_model": (["model=nope"], ("model", "nope")),
    "auto_baseline": (["model@baseline=auto"], ("model@baseline=auto", "cannot be chosen")),
    "misspelt_model_key": (["+model.forecaster_typo=1"], ("model.forecaster_typo",)),
    "misspelt_backtest_key": (["+backtest.n_fold=3"], ("backtest.n_fold",)),
    "misspelt_key_without_plus": (["backtest.n_fold=3"], ("backtest.n_fold",)),
    "wrong_type": (["backtest.horizon=abc"], ("backtest.horizon", "abc")),
    "features_horizon_over_a_week": (["features.horizon=169"], ("features.horizon", "169")),
    "coverage_above_one": (["backtest.coverage=1.5"], ("backtest.coverage", "1.5")),
    "empty_interval_buckets": (["backtest.bucket_hours=0"], ("backtest.bucket_hours", "0")),
    "unknown_strategy": (["backtest.strategy=sometimes"], ("backtest.strategy", "sometimes")),
    "unknown_gap_filling": (["data.fill_gaps=linear"], ("data.fill_gaps", "linear")),
    "unknown_holiday_calendar": (["features.holidays=mars"], ("features.holidays", "mars")),
}


@pytest.mark.parametrize(
    ("overrides", "fragments"), REJECTED_WHEN_LOADED.values(), ids=REJECTED_WHEN_LOADED.keys()
)
def test_bad_setting_is_rejected_when_loaded(
    overrides: list[str], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(overrides)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_baseline_given_as_a_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"'baseline'"):
        load_config(["baseline=theta"])


# (overrides, section, fragments): the config loads, but the forecaster cannot be built.
REJECTED_WHEN_BUILT: dict[str, tuple[list[str], str, tuple[str, ...]]] = {
    "unknown_argument": (["+model.forecaster.bogus=1"], "model", ("model.forecaster", "bogus")),
    "unknown_nested_argument": (
        ["+model.forecaster.steps.0.bogus=1"],
        "model",
        ("model.forecaster", "bogus"),
    ),
    "unknown_baseline_argument": (
        ["+baseline.forecaster.bogus=1"],
        "baseline",
        ("baseline.forecaster", "bogus"),
    ),
    "target_not_importable": (
        ["model.forecaster._target_=sktime.forecasting.naive.NoSuchForecaster"],
        "model",
        ("model.forecaster", "NoSuchForecaster"),
    ),
    "target_not_a_forecaster": (
        ["model=seasonal_naive", "model.forecaster._target_=builtins.dict"],
        "model",
        ("model.forecaster", "not a forecaster"),
    ),
}


@pytest.mark.parametrize(
    ("overrides", "section", "fragments"),
    REJECTED_WHEN_BUILT.values(),
    ids=REJECTED_WHEN_BUILT.keys(),
)
def test_bad_forecaster_is_rejected_when_built(
    overrides: list[str], section: str, fragments: tuple[str, ...]
) -> None:
    cfg = load_config(overrides)
    with pytest.raises(ConfigError) as raised:
        build_forecaster(getattr(cfg, section), setting=section)
    for fragment in fragments:
        assert fragment in str(raised.value)


SEASONS = {
    "theta_nested_season": (["model=theta"], "model", "model.forecaster.steps.1.sp"),
    "baseline_season": ([], "baseline", "baseline.forecaster.sp"),
}


@pytest.mark.parametrize(("overrides", "section", "key"), SEASONS.values(), ids=SEASONS.keys())
def test_season_must_fit_twice_into_the_history(
    overrides: list[str], section: str, key: str
) -> None:
    half = HISTORY_HOURS // 2
    fitting = load_config([*overrides, f"{key}={half}"])
    check_fits_history(getattr(fitting, section), HISTORY_HOURS, setting=section)

    too_long = load_config([*overrides, f"{key}={half + 1}"])
    dotted = key.replace(".steps.1.", ".steps[1].")  # how the message spells a list index
    with pytest.raises(ConfigError, match="^" + re.escape(f"{dotted}={half + 1}")):
        # The stage's own entry point: the check comes before the data is touched.
        fit(getattr(too_long, section), _no_data(), setting=section)


def test_season_of_zero_is_rejected() -> None:
    cfg = load_config(["baseline.forecaster.sp=0"])
    with pytest.raises(ConfigError, match=r"^baseline\.forecaster\.sp=0"):
        fit(cfg.baseline, _no_data(), setting="baseline")


def test_backtest_longer_than_the_history_is_rejected() -> None:
    cfg = load_config(["backtest.n_folds=1000"])
    with pytest.raises(ConfigError, match="1000 folds") as raised:
        run_backtest(cfg.model, _no_data(), cfg.backtest, setting="model")
    assert f"{HISTORY_HOURS} hours" in str(raised.value)


def test_default_backtest_needs_two_seasons_before_the_first_fold(base_config: Config) -> None:
    backtest = base_config.backtest
    needed = backtest.horizon + (backtest.n_folds - 1) * backtest.step_hours + 2 * MASE_SEASON
    assert splitter(needed, backtest).initial_window == 2 * MASE_SEASON
    with pytest.raises(ConfigError, match=f"{backtest.n_folds} folds"):
        splitter(needed - 1, backtest)


def test_tiny_backtest_is_accepted() -> None:
    backtest = BacktestConfig(horizon=24, n_folds=6, step_hours=24)
    assert splitter(HISTORY_HOURS, backtest).initial_window == HISTORY_HOURS - 24 - 5 * 24


# --- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unknown_model_run() -> subprocess.CompletedProcess[str]:
    """``python -m traffic_forecast.pipeline.train model=nope``, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "traffic_forecast.pipeline.train", "model=nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_reports_a_bad_setting_without_a_traceback(
    unknown_model_run: subprocess.CompletedProcess[str],
) -> None:
    assert unknown_model_run.returncode == 2, unknown_model_run.stderr
    assert "Traceback" not in unknown_model_run.stderr
    first = unknown_model_run.stderr.splitlines()[0]
    assert first.startswith("error: ")
    assert "model" in first
    assert "nope" in first


def test_cli_reports_a_bad_setting_in_one_line(
    unknown_model_run: subprocess.CompletedProcess[str],
) -> None:
    assert len(unknown_model_run.stderr.strip().splitlines()) == 1, unknown_model_run.stderr
