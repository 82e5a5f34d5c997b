"""The DVC pipeline end to end on a fresh `git clone` of the committed HEAD: real DVC, no mocks.

One clone for the module, its pipeline run once (`tests.pipeline.clone`). The tests then run
DVC in that clone as a user would, with the commands the README shows: the committed lock
reproduced byte for byte, an experiment run, compared, applied and undone, bad data stopped.
``test_make.py`` does what the README says to do with make, in a clone of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pipeline.clone import (
    METRICS,
    RAN_EXPERIMENT,
    STAGES,
    Pipeline,
    Run,
    cloned_with_pipeline,
    dvc,
    git_status,
    shell,
    status,
)
from traffic_forecast.report import lockcheck

TRAFFIC = Path("data/raw/traffic.csv")
VALIDATED = Path("data/validated")
MODELS = Path("models")
VALIDATION_REPORTS = (Path("reports/validation.md"), Path("reports/validation.json"))
DATA_DVC = Path("data.dvc")
BAD_LINE = 100  # CSV line (header = 1) whose sessions value is made negative
MIN_FOLDS = 26


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself), by path: to compare bytes later."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return cloned_with_pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.mark.slow
def test_committed_dvc_lock_matches_the_committed_code_params_and_data(
    pipeline: Pipeline,
) -> None:
    # check-lock's own rule: in a fresh clone, only the absence of the cached outputs is allowed.
    dvc_yaml = yaml.safe_load((pipeline.repo / "dvc.yaml").read_text(encoding="utf-8"))
    stale = lockcheck.stale(pipeline.status_before_repro, lockcheck.cached_outputs(dvc_yaml))
    assert not stale, (
        "HEAD's dvc.lock does not match HEAD's code, params or data (dvc status in a fresh "
        "clone, before any stage ran):\n  "
        + "\n  ".join(stale)
        + "\nRun `dvc repro` (or `make repro`) and commit dvc.lock with the change."
    )


@pytest.mark.slow
def test_repro_brings_the_pipeline_up_to_date_and_the_model_beats_the_baseline(
    pipeline: Pipeline,
) -> None:
    assert pipeline.status_after_repro == {}, pipeline.repro.tail()
    assert "validate" in pipeline.repro.ran  # a clone has no data/validated: it had to run
    metrics = pipeline.metrics
    assert metrics["backtest"]["folds"] >= MIN_FOLDS
    assert metrics["model"]["mase"] < metrics["baseline"]["mase"], metrics
    assert metrics["mase_vs_baseline"] < 1


@pytest.mark.slow
def test_a_fresh_clone_reproduces_the_committed_outputs_byte_for_byte(pipeline: Pipeline) -> None:
    # dvc.lock (every output's hash), params.yaml and the reports in git: all as committed,
    # though every stage ran here in processes of another hash seed than the committer's.
    assert git_status(pipeline.repo) == "", pipeline.repro.tail()


@pytest.mark.slow
def test_second_repro_runs_nothing(pipeline: Pipeline) -> None:
    lock = (pipeline.repo / "dvc.lock").read_bytes()
    again = dvc(pipeline.repo, "repro")
    assert again.ran == [], again.tail()
    assert again.skipped == set(STAGES), again.tail()
    assert "'data.dvc' didn't change, skipping" in again.output
    assert (pipeline.repo / "dvc.lock").read_bytes() == lock


@dataclass(frozen=True)
class Experiments:
    """An experiment, compared, undone, applied and undone again, as the README shows it."""

    switched: Run
    shown: list[dict[str, Any]]
    table: Run
    applied_model: str
    returned: Run
    status_returned: str


@pytest.fixture(scope="module")
def experiments(pipeline: Pipeline) -> Experiments:
    repo = pipeline.repo
    # Hydra composes conf/ with the override into params.yaml (.dvc/config: hydra enabled).
    switched = shell(repo, "dvc exp run -S model=seasonal_naive")
    shown = json.loads(dvc(repo, "exp", "show", "--json").output)
    table = shell(repo, "dvc exp show --only-changed --drop Created --md")
    found = RAN_EXPERIMENT.search(switched.output)
    shell(repo, "dvc exp apply <exp>", exp=found[1] if found else "none")
    applied_model = yaml.safe_load((repo / "params.yaml").read_text())["model"]["name"]
    returned = shell(repo, "git checkout HEAD -- params.yaml dvc.lock reports && dvc checkout")
    return Experiments(
        switched,
        shown,
        table,
        applied_model,
        returned,
        git_status(repo),
    )


def _experiment(shown: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The data (params, metrics) of the experiment ``name`` in ``dvc exp show --json``."""
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment["revs"]:
                if rev["name"] == name:
                    data: dict[str, Any] = rev["data"]
                    return data
    return None


@pytest.mark.slow
def test_a_model_change_retrains_without_revalidating(experiments: Experiments) -> None:
    switched = experiments.switched
    assert {"validate", "features"} <= switched.skipped, switched.tail()
    assert not {"validate", "features"} & set(switched.ran), switched.tail()
    assert switched.ran[:2] == ["evaluate", "train"], switched.tail()


@pytest.mark.slow
def test_the_model_experiment_completes_and_is_listed_with_its_metrics(
    experiments: Experiments,
) -> None:
    switched = experiments.switched
    assert switched.returncode == 0, switched.tail()
    assert switched.ran == ["evaluate", "train", "explain"], switched.tail()
    found = RAN_EXPERIMENT.search(switched.output)
    assert found, switched.tail()
    data = _experiment(experiments.shown, found[1])
    assert data is not None, f"`dvc exp show --json` does not list {found[1]}"
    assert data["params"]["params.yaml"]["data"]["model"]["name"] == "seasonal_naive"
    metrics = data["metrics"]["reports/metrics.json"]["data"]
    # The model is the baseline's forecaster: the same forecasts on the same folds.
    assert metrics["model"]["mase"] == metrics["baseline"]["mase"]
    assert metrics["mase_vs_baseline"] == 1


@pytest.mark.slow
def test_exp_show_compares_only_metrics_and_the_pipelines_params(
    experiments: Experiments,
) -> None:
    data = next(baseline["data"] for baseline in experiments.shown if baseline.get("data"))
    assert set(data["metrics"]) == {METRICS.as_posix()}  # validation bookkeeping is no metric
    params = data["params"]["params.yaml"]["data"]
    assert not {"deploy", "serving", "monitor", "gate", "capacity"} & set(params)
    header = experiments.table.output.splitlines()
    columns = next(line for line in header if "Experiment" in line)
    assert "model.name" in columns  # what differs between the experiments …
    assert "data.traffic_file" not in columns  # … and not what they share (--only-changed)


@pytest.mark.slow
def test_an_experiment_is_applied_then_undone_with_the_committed_models_back(
    pipeline: Pipeline, experiments: Experiments
) -> None:
    assert experiments.applied_model == "seasonal_naive"
    # The committed lock, params, reports and models, byte for byte: the clone's own repro made
    # the very models HEAD records, so `dvc checkout` finds them in the cache.
    assert experiments.status_returned == "", experiments.returned.tail()
    assert status(pipeline.repo) == {}
    assert (pipeline.repo / MODELS / "forecaster.zip").is_file()
    assert json.loads((pipeline.repo / METRICS).read_text(encoding="utf-8")) == pipeline.metrics


@pytest.mark.slow
def test_bad_data_stops_the_pipeline_before_training(pipeline: Pipeline) -> None:
    repo = pipeline.repo
    assert status(repo) == {}, "an earlier test left the clone out of date"
    kept = {
        path: _snapshot(repo / path)
        for path in (MODELS, METRICS, VALIDATED, DATA_DVC, *VALIDATION_REPORTS)
    }
    traffic = repo / TRAFFIC
    lines = traffic.read_text(encoding="utf-8").splitlines(keepends=True)
    stamp, _ = lines[BAD_LINE - 1].rstrip("\n").split(",")
    lines[BAD_LINE - 1] = f"{stamp},-5\n"
    traffic.unlink()  # never write through a link into the DVC cache
    traffic.write_text("".join(lines), encoding="utf-8")
    try:
        bad = dvc(repo, "repro", check=False)
        assert bad.returncode != 0, bad.tail()
        assert bad.ran == ["validate"], bad.tail()
        report = (repo / "reports" / "validation.md").read_text(encoding="utf-8")
        for fragment in (f"`{TRAFFIC.as_posix()}`", "`sessions`", f"{BAD_LINE} (`-5"):
            assert fragment in report, report
        for path in (MODELS, METRICS, VALIDATED):
            assert _snapshot(repo / path) == kept[path], f"{path} changed"
    finally:
        # DVC 3.67 `dvc repro` re-hashes a changed data source and rewrites data.dvc to name
        # it (committing the bad data to the cache): `dvc checkout` alone would keep it.
        for path in (DATA_DVC, *VALIDATION_REPORTS):
            (repo / path).write_bytes(kept[path][path.name])
        dvc(repo, "checkout", "--force", str(DATA_DVC))
    assert status(repo) == {}
