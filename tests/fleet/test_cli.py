"""The fleet's commands end to end, in-process: data → validate → train → batch-predict → summary.

Four series (a service in each region) over five weeks, two daily folds and a day ahead,
every path in a temporary folder.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest

from traffic_forecast import cli
from traffic_forecast.fleet.batch import latest_run_id, read_manifest
from traffic_forecast.fleet.cli import fleet_config
from traffic_forecast.report.fleet import parse_fleet_metrics

SERIES = ["us-east/search", "us-west/search", "eu-west/search", "ap-southeast/search"]
HORIZON = 24
# As the README shows them (tests/test_readme.py finds these strings).
FLEET_DATA, FLEET_VALIDATE, FLEET_TRAIN = (
    "traffic-forecast fleet-data",
    "traffic-forecast fleet-validate",
    "traffic-forecast fleet-train",
)
BATCH_PREDICT = "traffic-forecast batch-predict"
BATCH_PREDICT_RUN = "traffic-forecast batch-predict --run-id nightly-1"
FLEET_SUMMARY = "traffic-forecast fleet-summary"
# Plumbing, not accuracy: few boosting rounds (each is several Spark jobs).
GLOBAL_RECONCILED = (
    "data.fleet.model=global",
    "data.fleet.reconcile=ols",
    "data.fleet.global_model.max_iter=10",
)


def _run(line: str, *overrides: str) -> int:
    return cli.main([*shlex.split(line)[1:], *overrides])


def _overrides(root: Path) -> list[str]:
    fleet = root / "fleet"
    return [
        "data.simulator.start=2024-02-05",
        "data.simulator.end='2024-03-10 23:00'",
        "data.simulator.drift_start=2024-03-11",
        "data.simulator.drift_end=2024-03-11",
        "data.fleet.services=[search]",  # the four regions' search services
        f"data.fleet.raw_dir={fleet / 'raw'}",
        f"data.fleet.validated_dir={fleet / 'validated'}",
        f"data.fleet.sale_events_file={fleet / 'sale_events.parquet'}",
        f"data.fleet.predictions_dir={fleet / 'predictions'}",
        f"paths.reports_dir={root / 'reports'}",
        "backtest.n_folds=2",
        "backtest.step_hours=24",
        "backtest.horizon=24",
        f"features.horizon={HORIZON}",
        "spark.master='local[2]'",  # quoted: brackets are override syntax
        "spark.shuffle_partitions=2",
        f"spark.local_dir={root / 'spark'}",
    ]


@pytest.mark.slow
def test_the_fleet_commands_run_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = _overrides(tmp_path)
    reports, predictions = tmp_path / "reports", tmp_path / "fleet" / "predictions"

    for line in (FLEET_DATA, FLEET_VALIDATE, FLEET_TRAIN):
        assert _run(line, *overrides) == 0, line

    assert (tmp_path / "fleet" / "validated").is_dir()
    assert "passed" in (reports / "fleet_validation.md").read_text(encoding="utf-8").lower()
    metrics_file = reports / "fleet_metrics.csv"
    metrics = parse_fleet_metrics(metrics_file.read_text(encoding="utf-8"), str(metrics_file))
    assert sorted(metrics["series_id"]) == sorted(SERIES)
    assert pd.read_csv(reports / "fleet_excluded.csv").columns.tolist() == [
        "series_id",
        "hours",
        "reason",
    ]

    assert _run(BATCH_PREDICT, *overrides) == 0
    run_id = latest_run_id(predictions)
    manifest = read_manifest(predictions, run_id)
    assert (manifest["rows"], manifest["series"]) == (len(SERIES) * HORIZON, len(SERIES))
    assert manifest["data_version"].startswith("untracked-")  # not in data/raw: not data.dvc's
    assert run_id == f"{manifest['data_version']}-{manifest['model_version']}"

    # The same data and settings: the same run, replaced rather than published twice.
    assert _run(BATCH_PREDICT, *overrides) == 0
    assert latest_run_id(predictions) == run_id
    # Another run id: the global model, reconciled (totals forecast, only the series published).
    assert _run(BATCH_PREDICT_RUN, *overrides, *GLOBAL_RECONCILED) == 0
    runs = sorted(p.name for p in predictions.glob("run_id=*"))
    assert runs == sorted([f"run_id={run_id}", "run_id=nightly-1"])
    assert latest_run_id(predictions) == "nightly-1"
    nightly = read_manifest(predictions, "nightly-1")
    assert (nightly["rows"], nightly["series"]) == (len(SERIES) * HORIZON, len(SERIES))
    assert nightly["model_version"] != manifest["model_version"]

    capsys.readouterr()
    assert _run(FLEET_SUMMARY, f"paths.reports_dir={reports}") == 0
    printed = capsys.readouterr().out
    assert f"fleet: {len(SERIES)} series scored, 0 excluded" in printed
    assert "worst 4 series" in printed


@pytest.mark.parametrize(
    ("overrides", "data"),
    [([], "fleet"), (["data=example"], "example"), (["data.fleet.seed=3"], "fleet")],
    ids=["fleet_by_default", "data_chosen_wins", "a_fleet_setting_keeps_fleet"],
)
def test_the_fleet_commands_load_the_fleet_unless_told_otherwise(
    overrides: list[str], data: str
) -> None:
    assert fleet_config(overrides).data.name == data


def test_the_summary_without_training_says_what_to_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(FLEET_SUMMARY, f"paths.reports_dir={tmp_path}") == 1
    assert "run `traffic-forecast fleet-train` first" in caplog.text
