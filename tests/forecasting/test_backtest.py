"""The backtest: fold layout, the Dask path for scaling out, and quiet progress in CI."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from traffic_forecast.core.config import BacktestConfig, Config
from traffic_forecast.forecasting.backtest import run_backtest, splitter
from traffic_forecast.pipeline import features, validate


@pytest.fixture
def small_history(small_raw: Config) -> pd.DataFrame:
    assert validate.validate_and_log(small_raw) == 0
    return features.run(small_raw).history


def test_last_fold_ends_at_the_last_observed_hour() -> None:
    backtest = BacktestConfig(horizon=24, n_folds=3, step_hours=168)
    cv = splitter(1000, backtest)
    cutoffs = list(cv.get_cutoffs(pd.RangeIndex(1000)))
    assert len(cutoffs) == 3
    assert cutoffs[-1] + 24 == 999  # positions: the last test hour is the last hour
    assert cutoffs[1] - cutoffs[0] == 168


def test_dask_backend_gives_the_same_forecasts(
    small_raw: Config, small_history: pd.DataFrame
) -> None:
    sequential = dataclasses.replace(small_raw.backtest, n_folds=3, step_hours=48, backend=None)
    on_dask = dataclasses.replace(sequential, backend="dask", n_jobs=2)
    one = run_backtest(small_raw.model, small_history, sequential, setting="model", intervals=False)
    two = run_backtest(small_raw.model, small_history, on_dask, setting="model", intervals=False)
    assert len(two.folds) == 3
    for a, b in zip(one.folds, two.folds, strict=True):
        assert a.cutoff == b.cutoff
        pd.testing.assert_series_equal(a.forecast, b.forecast, check_names=False)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("ci", "shown"), [("", True), ("true", False)], ids=["terminal", "ci"])
def test_progress_shows_folds_on_a_terminal_and_stays_quiet_in_ci(
    ci: str,
    shown: bool,
    small_raw: Config,
    small_history: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("CI", ci)
    # In-process folds: a worker process would print to its own stderr, not this terminal.
    backtest = dataclasses.replace(small_raw.backtest, n_folds=2, step_hours=48, backend=None)
    run_backtest(small_raw.baseline, small_history, backtest, setting="baseline", intervals=False)
    assert ("fold 2 of 2" in terminal.getvalue()) is shown


_LOKY_BACKTEST = """
import dataclasses, sys
import pandas as pd
from traffic_forecast.core.settings import load_config
from traffic_forecast.forecasting import backtest as module
if sys.argv[2] == "without-initializer":
    module.quiet_worker = lambda: None  # the control: workers as sktime leaves them
cfg = load_config(params_file=None)
folds = dataclasses.replace(cfg.backtest, n_folds=2, step_hours=48, backend="loky", n_jobs=2)
history = pd.read_parquet(sys.argv[1])
module.run_backtest(cfg.baseline, history, folds, setting="baseline", intervals=False)
"""


@pytest.mark.parametrize(
    ("how", "announced"), [("as-configured", False), ("without-initializer", True)]
)
def test_backtest_workers_drop_sktimes_announcement_at_the_source(
    how: str, announced: bool, small_history: pd.DataFrame, tmp_path: Path
) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)

    done = subprocess.run(
        [sys.executable, "-c", _LOKY_BACKTEST, str(history), how],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )

    assert ("remember_data" in done.stderr) is announced, done.stderr[-2000:]
