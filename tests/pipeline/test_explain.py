"""The explain stage: permutation importance by feature group; a header only without X."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMALL_PERIOD, config_under
from tests.forecasting.conftest import model_config
from traffic_forecast.core.config import Config
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.forecasting.features import SALE_KIND_PREFIX, exogenous_columns
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime
from traffic_forecast.pipeline import explain, features, outputs, validate

HOLDOUT_HOURS = 24
GROUPS = [
    "daily and weekly calendar",
    "month (yearly season)",
    "public holidays",
    "sale calendar",
    "same hour last week",
]
HEADER = ["feature", "importance", "mase_shuffled", "mase"]


def _config_under(root: Path, base: Config) -> Config:
    """``base`` with every path under ``root`` (as ``config_in`` does) and a short holdout."""
    settings = dataclasses.replace(base.explain, holdout_hours=HOLDOUT_HOURS, repeats=2)
    return dataclasses.replace(config_under(root, base), explain=settings)


@pytest.fixture(scope="module")
def explained(
    tmp_path_factory: pytest.TempPathFactory, base_config: Config
) -> tuple[Config, pd.DataFrame]:
    """Six weeks of simulated data through validate and features, then explain, once."""
    cfg = _config_under(tmp_path_factory.mktemp("explain"), base_config)
    write_raw_tables(simulate(SMALL_PERIOD), Path(cfg.paths.raw_dir))
    assert validate.run(cfg).passed
    features.run(cfg)
    assert cfg.model.uses_exog, "the default model is meant to use the features"
    table = explain.run(cfg)
    assert table is not None
    return cfg, table


def test_one_row_per_feature_group_present(explained: tuple[Config, pd.DataFrame]) -> None:
    cfg, table = explained
    history, _ = outputs.read_features(cfg.paths)
    columns = exogenous_columns(history)

    groups = explain.feature_groups(columns)

    # The example data has calendar, holiday, sale and last-week features: all five groups.
    assert sorted(table["feature"]) == sorted(GROUPS)
    assert sorted(groups) == sorted(GROUPS)
    # Every feature is shuffled in exactly one group, sale kinds with the sale calendar.
    members = [c for group in groups.values() for c in group]
    assert sorted(members) == sorted(columns)
    assert {c for c in columns if c.startswith(SALE_KIND_PREFIX)} <= set(groups["sale calendar"])


def test_rows_are_sorted_by_importance_with_one_reference(
    explained: tuple[Config, pd.DataFrame],
) -> None:
    _, table = explained

    assert table["importance"].is_monotonic_decreasing
    assert table["mase"].nunique() == 1
    assert table["mase"].iloc[0] > 0
    assert table["importance"].to_numpy() == pytest.approx(
        (table["mase_shuffled"] - table["mase"]).to_numpy()
    )
    assert table["importance"].max() > 0, "a model with features depends on some of them"


def test_shuffling_a_constant_group_changes_nothing(
    explained: tuple[Config, pd.DataFrame],
) -> None:
    cfg, table = explained
    history, _ = outputs.read_features(cfg.paths)
    holdout = history.iloc[-HOLDOUT_HOURS:]
    groups = explain.feature_groups(exogenous_columns(history))
    constant = {name for name, members in groups.items() if (holdout[members].nunique() == 1).all()}
    # The last day of the six weeks: one month, no holiday, no sale (each group constant),
    # but 24 different hours: both kinds of group are there to tell apart.
    assert constant
    assert constant != set(groups)

    importance = table.set_index("feature")["importance"]

    for name in constant:
        assert importance[name] == 0.0, name


def test_csv_holds_the_table(explained: tuple[Config, pd.DataFrame]) -> None:
    cfg, table = explained
    reports = Path(cfg.paths.reports_dir)

    written = pd.read_csv(reports / outputs.EXPLAIN_CSV.name)

    assert written.columns.tolist() == HEADER
    assert written["feature"].tolist() == table["feature"].tolist()
    assert written["importance"].to_numpy() == pytest.approx(
        table["importance"].to_numpy(), abs=1e-4
    )
    assert (reports / outputs.EXPLAIN_PNG.name).read_bytes().startswith(b"\x89PNG")


def test_a_model_without_features_writes_the_header_and_a_note_image(config_in: Config) -> None:
    # The seasonal-naive baseline takes no X; no features need to exist for it.
    cfg = dataclasses.replace(config_in, model=config_in.baseline)
    reports = Path(cfg.paths.reports_dir)

    assert explain.run(cfg) is None

    lines = (reports / outputs.EXPLAIN_CSV.name).read_text(encoding="utf-8").splitlines()
    assert lines == [",".join(HEADER)]
    # dvc.yaml declares the PNG: without it `dvc exp run -S model=theta` would fail.
    assert (reports / outputs.EXPLAIN_PNG.name).read_bytes().startswith(b"\x89PNG")


def test_event_flags_are_shuffled_as_one_group() -> None:
    columns = ["hour", "sale_active", "event__promo", "event__outage"]
    groups = explain.feature_groups(columns)
    assert groups["event flags"] == ["event__promo", "event__outage"]
    assert "event flags" not in explain.feature_groups(["hour", "sale_active"])


def test_the_forecasts_shuffled_are_sktimes_through_the_lean_form(
    explained: tuple[Config, pd.DataFrame],
) -> None:
    """A recursive model's lean form forecasts every shuffled copy as sktime does."""
    cfg, _ = explained
    history, _ = outputs.read_features(cfg.paths)
    hours = 4  # sktime forecasts a recursive model at ~70 ms an hour
    forecaster = fit(model_config("recursive_boosting"), history.iloc[:-hours])
    X = exogenous(history.iloc[-hours:], exogenous_columns(history))
    groups = explain.feature_groups(list(X.columns))
    shuffled = explain.shuffled_copies(
        X, [groups["sale calendar"], groups["same hour last week"]], 1, 0
    )
    forecasts = explain.holdout_forecasts(forecaster, X, shuffled)
    with running_sktime():
        expected = [
            forecaster.predict(fh=np.arange(1, hours + 1), X=frame) for frame in [X, *shuffled]
        ]
    assert len(forecasts) == len(expected)
    for mine, theirs in zip(forecasts, expected, strict=True):
        np.testing.assert_allclose(mine, theirs.to_numpy(), rtol=1e-9)
