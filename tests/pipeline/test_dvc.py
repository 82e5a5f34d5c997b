"""The DVC pipeline end to end on a fresh `git clone` of the committed HEAD: real DVC, no mocks.

One clone per module (``dvc repro`` of the whole pipeline takes most of a minute): it gets its
own empty remote (``dvc remote modify --local storage url …``), ``traffic-forecast data``
regenerates data/raw and pushes it there, and ``dvc repro`` runs once. The tests then run DVC
in that clone as a user would. Stages run ``python -m traffic_forecast.pipeline.<stage>``:
``PYTHONPATH`` points them at the clone's own ``src/``, not at the editable install of the
working tree, so what DVC hashes is what runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

STAGES = ("validate", "features", "train", "evaluate", "explain")
# Cached outputs of the stages: a clone has neither them nor their cache, until `dvc repro`.
CACHED_OUTS = {"data/validated", "data/features", "models"}
METRICS = Path("reports/metrics.json")
TRAFFIC = Path("data/raw/traffic.csv")
VALIDATED = Path("data/validated")
MODELS = Path("models")
VALIDATION_REPORTS = (Path("reports/validation.md"), Path("reports/validation.json"))
DATA_DVC = Path("data.dvc")
BAD_LINE = 100  # CSV line (header = 1) whose sessions value is made negative
MIN_FOLDS = 26

RUNNING = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping", re.MULTILINE)
RAN_EXPERIMENT = re.compile(r"Ran experiment\(s\): (\S+)")


@dataclass(frozen=True, repr=False)
class Run:
    """One command in the clone: its exit code and its stdout and stderr, interleaved."""

    args: tuple[str, ...]
    returncode: int
    output: str

    def __repr__(self) -> str:  # assertion messages show `tail()`, not the whole output
        return f"Run({' '.join(self.args[2:])!r}, returncode={self.returncode})"

    @property
    def ran(self) -> list[str]:
        """The stages DVC ran, in order."""
        return RUNNING.findall(self.output)

    @property
    def skipped(self) -> set[str]:
        """The stages DVC found unchanged."""
        return set(SKIPPED.findall(self.output))

    def tail(self, lines: int = 25) -> str:
        """The command and the last ``lines`` of its output, for assertion messages."""
        return f"$ {' '.join(self.args)} -> {self.returncode}\n" + "\n".join(
            self.output.splitlines()[-lines:]
        )


def _env(repo: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "ITERATIVE_DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
        "TRAFFIC_FORECAST_LOG": "INFO",
        # dvc.yaml runs `python -m …`: the project's interpreter, importing the clone's code.
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(repo / "src"),
    }


def _run(repo: Path, *args: str) -> Run:
    result = subprocess.run(
        args,
        cwd=repo,
        env=_env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    return Run(args, result.returncode, result.stdout)


def _dvc(repo: Path, *args: str, check: bool = True) -> Run:
    run = _run(repo, sys.executable, "-m", "dvc", *args)
    assert not check or run.returncode == 0, run.tail()
    return run


def _status(repo: Path) -> dict[str, Any]:
    """``dvc status --json`` of the whole project: ``{}`` when everything is up to date."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=repo,
        env=_env(repo),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout or "{}")
    return status


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself), by path: to compare bytes later."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _stale(status: dict[str, Any]) -> list[str]:
    """What ``dvc status`` reports beyond the absence of the stages' cached outputs.

    Right after a clone and ``traffic-forecast data``, DVC 3.67 reports each cached output as
    ``not in cache`` and the stages reading it as having a ``deleted`` dependency: that only
    says the pipeline has not run here. A modified dependency, a changed parameter or command,
    or a git-tracked report that differs from its recorded hash means dvc.lock is stale.
    """
    found = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                found.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                expected = {"changed outs": "not in cache", "changed deps": "deleted"}.get(kind)
                for path, state in paths.items():
                    if state != expected or path not in CACHED_OUTS:
                        found.append(f"{stage}: {kind}: {path}: {state}")
    return found


@dataclass(frozen=True)
class Pipeline:
    """The clone after ``traffic-forecast data`` and one ``dvc repro``."""

    repo: Path
    status_before_repro: dict[str, Any]
    repro: Run
    status_after_repro: dict[str, Any]
    metrics: dict[str, Any]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    root = tmp_path_factory.mktemp("pipeline")
    repo = root / "repo"
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO_ROOT), str(repo)], check=True, env=_env(repo)
    )
    _dvc(repo, "remote", "modify", "--local", "storage", "url", str(root / "remote"))
    data = _run(repo, sys.executable, "-m", "traffic_forecast.cli", "data")
    assert data.returncode == 0, data.tail()
    status_before = _status(repo)
    repro = _dvc(repo, "repro")
    metrics = json.loads((repo / METRICS).read_text(encoding="utf-8"))
    return Pipeline(repo, status_before, repro, _status(repo), metrics)


@pytest.mark.slow
def test_committed_dvc_lock_matches_the_committed_code_params_and_data(
    pipeline: Pipeline,
) -> None:
    stale = _stale(pipeline.status_before_repro)
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
def test_second_repro_runs_nothing(pipeline: Pipeline) -> None:
    lock = (pipeline.repo / "dvc.lock").read_bytes()
    again = _dvc(pipeline.repo, "repro")
    assert again.ran == [], again.tail()
    assert again.skipped == set(STAGES), again.tail()
    assert "'data.dvc' didn't change, skipping" in again.output
    assert (pipeline.repo / "dvc.lock").read_bytes() == lock


@dataclass(frozen=True)
class Experiments:
    """``dvc exp run -S model=seasonal_naive``, ``dvc exp show``, then back to the default."""

    switched: Run
    shown: list[dict[str, Any]]
    switched_back: Run
    metrics_back: dict[str, Any]


@pytest.fixture(scope="module")
def experiments(pipeline: Pipeline) -> Experiments:
    repo = pipeline.repo
    # Hydra composes conf/ with the override into params.yaml (.dvc/config: hydra enabled).
    switched = _dvc(repo, "exp", "run", "-S", "model=seasonal_naive", check=False)
    shown = json.loads(_dvc(repo, "exp", "show", "--json").output)
    switched_back = _dvc(repo, "exp", "run", "-S", "model=gradient_boosting", check=False)
    metrics_back = json.loads((repo / METRICS).read_text(encoding="utf-8"))
    return Experiments(switched, shown, switched_back, metrics_back)


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
    assert switched.ran[:2] == ["train", "evaluate"], switched.tail()


@pytest.mark.slow
def test_the_model_experiment_completes_and_is_listed_with_its_metrics(
    experiments: Experiments,
) -> None:
    switched = experiments.switched
    assert switched.returncode == 0, switched.tail()
    assert switched.ran == ["train", "evaluate", "explain"], switched.tail()
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
def test_switching_back_to_the_default_model_reproduces_its_metrics(
    pipeline: Pipeline, experiments: Experiments
) -> None:
    back = experiments.switched_back
    assert back.returncode == 0, back.tail()
    assert "evaluate" in back.ran, back.tail()  # the backtest ran again, not restored
    assert not {"validate", "features"} & set(back.ran), back.tail()
    assert experiments.metrics_back == pipeline.metrics


@pytest.mark.slow
def test_bad_data_stops_the_pipeline_before_training(pipeline: Pipeline) -> None:
    repo = pipeline.repo
    assert _status(repo) == {}, "an earlier test left the clone out of date"
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
        bad = _dvc(repo, "repro", check=False)
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
        _dvc(repo, "checkout", "--force", str(DATA_DVC))
    assert _status(repo) == {}
