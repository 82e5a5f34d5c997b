"""The evaluate stage: metrics, fold table, DVC plot data, PNGs and the summary table."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO_ROOT, SMALL_PERIOD, config_under
from traffic_forecast.core.config import Config
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.forecasting.intervals import GRID_STEPS, MIN_CALIBRATION_FOLDS, from_grid
from traffic_forecast.forecasting.selection import ENSEMBLE, choose
from traffic_forecast.pipeline import evaluate, features, outputs, train, validate
from traffic_forecast.report.summary import summary_table

# Five folds 12 h ahead, 130 h apart: the first fold falls on the weekend sale of late
# January in the simulated six weeks, and the fifth is the first with a conformal interval.
N_FOLDS, HORIZON, STEP = 5, 12, 130
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _config_under(root: Path, base: Config) -> Config:
    """``base`` with every path under ``root`` (as ``config_in`` does) and a small backtest."""
    backtest = dataclasses.replace(base.backtest, n_folds=N_FOLDS, horizon=HORIZON, step_hours=STEP)
    return dataclasses.replace(config_under(root, base), backtest=backtest)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, base_config: Config) -> Config:
    """Six weeks of simulated data through validate, features, train and evaluate, once."""
    cfg = _config_under(tmp_path_factory.mktemp("evaluate"), base_config)
    write_raw_tables(simulate(SMALL_PERIOD), Path(cfg.paths.raw_dir))
    assert validate.run(cfg).passed
    features.run(cfg)
    train.run(cfg)
    evaluate.run(cfg)
    return cfg


def _reports(cfg: Config) -> Path:
    return Path(cfg.paths.reports_dir)


def _metrics(cfg: Config) -> dict[str, Any]:
    def refuse(constant: str) -> float:
        raise ValueError(f"metrics.json holds {constant}, which is not JSON")

    text = (_reports(cfg) / outputs.METRICS.name).read_text(encoding="utf-8")
    metrics: dict[str, Any] = json.loads(text, parse_constant=refuse)
    return metrics


def _in_tmp(cfg: Config, repo_path: str) -> Path:
    """Where a ``reports/…`` path of dvc.yaml lies for this config."""
    return _reports(cfg) / Path(repo_path).relative_to("reports")


def _dvc_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    return loaded


def _forecasts(cfg: Config) -> pd.DataFrame:
    return pd.read_csv(_reports(cfg) / outputs.FORECAST_PLOT_DATA.name, parse_dates=["timestamp"])


# ---------------------------------------------------------------- metrics.json


def test_metrics_have_model_baseline_and_backtest_sections(evaluated: Config) -> None:
    metrics = _metrics(evaluated)

    assert set(metrics) == {"model", "baseline", "mase_vs_baseline", "backtest"}
    assert metrics["backtest"] == {
        "folds": N_FOLDS,
        "horizon_hours": HORIZON,
        "step_hours": STEP,
        "coverage": evaluated.backtest.coverage,
    }
    for side in ("model", "baseline"):
        for key in ("mase", "smape", "rmse", "mae", "mae_peak_hours", "mae_sale_hours"):
            assert math.isfinite(metrics[side][key]), f"{side}.{key}"
            assert metrics[side][key] >= 0, f"{side}.{key}"
    ratio = metrics["model"]["mase"] / metrics["baseline"]["mase"]
    assert metrics["mase_vs_baseline"] == pytest.approx(ratio, rel=1e-5)


def test_sale_hours_are_the_backtest_hours_in_a_raw_sale(evaluated: Config) -> None:
    events = pd.read_csv(evaluated.data.sale_events_file, parse_dates=["start", "end"])
    stamps = _forecasts(evaluated)["timestamp"]
    on_sale = np.zeros(len(stamps), dtype=bool)
    for event in events.itertuples():
        on_sale |= ((stamps >= event.start) & (stamps < event.end)).to_numpy()
    assert on_sale.any(), "the backtest is meant to cover a sale"

    metrics = _metrics(evaluated)

    for side in ("model", "baseline"):
        assert metrics[side]["sale_hours"] == on_sale.sum()


def test_model_intervals_are_conformal_from_earlier_folds(evaluated: Config) -> None:
    metrics = _metrics(evaluated)
    intervals = json.loads((_reports(evaluated) / outputs.INTERVALS.name).read_text("utf-8"))

    assert metrics["model"]["interval_folds"] == N_FOLDS - MIN_CALIBRATION_FOLDS
    assert 0.0 <= metrics["model"]["interval_coverage"] <= 1.0
    assert "interval_coverage" not in metrics["baseline"]
    # Serving's intervals come from the residuals of every backtest hour, per bucket of steps.
    assert intervals["method"] == "split_conformal_log_residuals"
    assert intervals["residuals"] == N_FOLDS * HORIZON
    width = evaluated.backtest.bucket_hours
    for calibration in (intervals, intervals["baseline"]):
        buckets = calibration["buckets"]
        assert [(b["first_step"], b["last_step"]) for b in buckets] == [
            (first, min(first + width - 1, HORIZON)) for first in range(1, HORIZON + 1, width)
        ]
        for bucket in buckets:
            assert bucket["log_residual_low"] < 0 < bucket["log_residual_high"]
            # The grid serves any coverage; at the calibrated one it gives the calibrated bounds.
            grid = bucket["log_residual_quantiles"]
            assert len(grid) == GRID_STEPS + 1
            assert grid == sorted(grid)
            low, high = from_grid(grid, calibration["level"])
            assert low == pytest.approx(bucket["log_residual_low"], abs=1e-4)
            assert high == pytest.approx(bucket["log_residual_high"], abs=1e-4)
    # Each model bucket's backtest coverage is reported; metrics.json keeps the overall one.
    scored = [b["backtest_coverage"] for b in intervals["buckets"]]
    assert np.mean(scored) == pytest.approx(metrics["model"]["interval_coverage"], abs=1e-4)


def test_fold_table_agrees_with_the_headline_mase(evaluated: Config) -> None:
    folds = pd.read_csv(_reports(evaluated) / outputs.FOLDS.name)
    metrics = _metrics(evaluated)

    assert folds["fold"].tolist() == list(range(1, N_FOLDS + 1))
    cutoffs = pd.to_datetime(folds["cutoff"])
    assert (cutoffs.diff().dropna() == pd.Timedelta(hours=STEP)).all()
    for side in ("model", "baseline"):
        assert metrics[side]["mase"] == pytest.approx(folds[f"{side}_mase"].mean(), abs=1e-4)


def test_forecast_data_lines_up_with_the_observed_hours(evaluated: Config) -> None:
    raw = pd.read_csv(evaluated.data.traffic_file, parse_dates=["timestamp"])
    sessions = raw.set_index("timestamp")["sessions"]

    forecasts = _forecasts(evaluated)

    assert len(forecasts) == N_FOLDS * HORIZON
    assert forecasts.groupby("fold").size().tolist() == [HORIZON] * N_FOLDS
    # The last fold ends at the last observed hour; actuals are the raw file's values.
    assert forecasts["timestamp"].iloc[-1] == raw["timestamp"].iloc[-1]
    np.testing.assert_allclose(
        forecasts["actual"], sessions.loc[forecasts["timestamp"]].to_numpy(), atol=0.05
    )
    # The baseline is the same hour a week earlier.
    week_before = sessions.loc[forecasts["timestamp"] - pd.Timedelta(hours=168)].to_numpy()
    np.testing.assert_allclose(forecasts["baseline"], week_before, atol=0.05)


# ---------------------------------------------------------------- what dvc.yaml promises


def test_plot_data_has_the_columns_dvc_yaml_plots(evaluated: Config) -> None:
    wanted: dict[str, set[str]] = {}
    for entry in _dvc_yaml()["plots"]:
        (spec,) = entry.values()
        for file, columns in spec["y"].items():
            wanted.setdefault(file, set()).update([spec["x"], *columns])
    assert wanted, "dvc.yaml names plots"

    for file, columns in wanted.items():
        header = pd.read_csv(_in_tmp(evaluated, file), nrows=0).columns
        assert columns <= set(header), file


def test_every_output_dvc_yaml_declares_is_written(evaluated: Config) -> None:
    stage = _dvc_yaml()["stages"]["evaluate"]
    declared = [
        next(iter(item)) if isinstance(item, dict) else item
        for section in ("outs", "metrics", "plots")
        for item in stage.get(section, [])
    ]

    for file in declared:
        path = _in_tmp(evaluated, file)
        assert path.is_file(), file
        assert path.stat().st_size > 0, file
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_MAGIC), file


# ---------------------------------------------------------------- reproducibility


def test_evaluating_twice_gives_byte_identical_reports(evaluated: Config) -> None:
    reports = _reports(evaluated)
    compared = (outputs.METRICS.name, outputs.FOLDS.name, outputs.FORECAST_PLOT_DATA.name)
    first = {name: (reports / name).read_bytes() for name in compared}

    evaluate.run(evaluated)

    for name in compared:
        assert (reports / name).read_bytes() == first[name], name


# ---------------------------------------------------------------- traffic-forecast summary


SUMMARY_METRICS: dict[str, Any] = {
    "model": {
        "mase": 0.51234,
        "smape": 4.26,
        "rmse": 12345.6,
        "mae": 9876.4,
        "mae_peak_hours": 20000.4,
        "mae_sale_hours": 15000.0,
        "interval_coverage": 0.874,
    },
    "baseline": {
        "mase": 1.2,
        "smape": 10.0,
        "rmse": 30000.0,
        "mae": 25000.0,
        "mae_peak_hours": 40000.0,
    },
    "mase_vs_baseline": 0.42695,
    "backtest": {"folds": 26, "horizon_hours": 24, "step_hours": 168},
}
# Row label -> (model cell, baseline cell), formatted by hand; "-" where a metric is absent.
SUMMARY_ROWS = {
    "MASE (vs same hour last week)": ("0.512", "1.200"),
    "sMAPE %": ("4.3", "10.0"),
    "RMSE": ("12,346", "30,000"),
    "MAE, all hours": ("9,876", "25,000"),
    "MAE, peak hours": ("20,000", "40,000"),
    "MAE, sale hours": ("15,000", "-"),
    "interval coverage": ("87%", "-"),
}


def test_summary_table_shows_model_and_baseline_values() -> None:
    lines = summary_table(SUMMARY_METRICS, "gradient_boosting", "seasonal_naive").splitlines()

    header = lines[0]
    model_end = header.index("gradient_boosting") + len("gradient_boosting")
    baseline_end = header.index("seasonal_naive") + len("seasonal_naive")
    assert model_end < baseline_end == len(header)
    rows = {line.split("  ")[0]: line for line in lines[1 : 1 + len(SUMMARY_ROWS)]}
    assert list(rows) == list(SUMMARY_ROWS)
    for label, (ours, theirs) in SUMMARY_ROWS.items():
        line = rows[label]
        # Each value sits right-aligned under its column's name.
        assert line[:model_end].rstrip().endswith(" " + ours), label
        assert line[model_end:baseline_end].strip() == theirs, label
        assert len(line) == baseline_end, label
    assert lines[-1] == ("26 folds, 24 h ahead, every 168 h; MASE ratio model/baseline: 0.43")


def test_summary_of_an_evaluated_run(evaluated: Config) -> None:
    metrics = _metrics(evaluated)

    text = summary_table(metrics, evaluated.model.name, evaluated.baseline.name)

    assert f"{N_FOLDS} folds, {HORIZON} h ahead, every {STEP} h" in text
    assert "nan" not in text.lower()
    mase_line = next(line for line in text.splitlines() if line.startswith("MASE"))
    shown = [float(cell) for cell in mase_line.split()[-2:]]
    assert shown == pytest.approx([metrics["model"]["mase"], metrics["baseline"]["mase"]], abs=5e-4)


# ---------------------------------------------------------------- model=auto

AUTO_CANDIDATES = ("seasonal_naive", "theta", "gradient_boosting")  # the quick ones


@pytest.fixture(scope="module")
def auto_evaluated(evaluated: Config) -> Config:
    """The same features, ``model=auto`` over three candidates: evaluate, then train."""
    auto = load_config(["model=auto"], params_file=None).model
    candidates = {name: auto.candidates[name] for name in AUTO_CANDIDATES}
    reports = Path(evaluated.paths.reports_dir).with_name("auto-reports")
    paths = dataclasses.replace(
        evaluated.paths,
        reports_dir=str(reports),
        model_dir=str(reports.with_name("auto-models")),
    )
    cfg = dataclasses.replace(
        evaluated, model=dataclasses.replace(auto, candidates=candidates), paths=paths
    )
    evaluate.run(cfg)
    train.run(cfg)
    return cfg


def test_auto_scores_every_candidate_and_the_ensemble_on_the_same_folds(
    auto_evaluated: Config, evaluated: Config
) -> None:
    metrics = _metrics(auto_evaluated)
    selection = metrics["selection"]
    scores = {name: selection["candidates"][name]["mase"] for name in selection["order"]}

    assert list(scores) == [*AUTO_CANDIDATES, ENSEMBLE]
    assert selection["chosen"] == choose(scores, auto_evaluated.model.tie_tolerance)
    assert metrics["model"]["mase"] == scores[selection["chosen"]]
    # the single-model run of the default backtests the same folds: the same score
    assert scores["gradient_boosting"] == _metrics(evaluated)["model"]["mase"]
    weights = selection["candidates"][ENSEMBLE]["weights"]
    assert sorted(weights) == sorted(AUTO_CANDIDATES)
    assert all(weight >= 0 for weight in weights.values())


def test_auto_trains_the_chosen_candidate_and_says_so(auto_evaluated: Config) -> None:
    chosen = _metrics(auto_evaluated)["selection"]["chosen"]
    choice = json.loads((_reports(auto_evaluated) / outputs.CHOICE.name).read_text("utf-8"))
    card = outputs.read_json(outputs.MODEL_CARD, auto_evaluated.paths)

    assert choice["model"] == chosen == card["model"]
    assert card["chosen_by"] == "model=auto"
    assert bool(choice["weights"]) == (chosen == ENSEMBLE)


def test_auto_leaves_out_a_candidate_that_cannot_fit_the_data_and_says_why(
    auto_evaluated: Config,
) -> None:
    # One season longer than the six simulated weeks allow: refused by name, not a traceback.
    too_long = {**auto_evaluated.model.candidates["theta"]}
    too_long["forecaster"] = {
        **too_long["forecaster"],
        "steps": [
            *too_long["forecaster"]["steps"][:1],
            {**too_long["forecaster"]["steps"][1], "sp": 24 * 7 * 5},
            *too_long["forecaster"]["steps"][2:],
        ],
    }
    model = dataclasses.replace(
        auto_evaluated.model,
        candidates={
            "seasonal_naive": auto_evaluated.model.candidates["seasonal_naive"],
            "theta": too_long,
        },
        ensemble=False,
    )
    cfg = dataclasses.replace(auto_evaluated, model=model)

    selection = evaluate.select(cfg, outputs.read_features(cfg.paths)[0])

    assert list(selection.runs) == ["seasonal_naive"]
    assert "a season length must be" in selection.excluded["theta"]
    assert selection.choice.model == "seasonal_naive"
