"""What the README tells a user to do with make, in a fresh clone, each command as it shows it.

Edit ``conf/`` and ``make repro``; run the drift demo; bring your own data and select it once.
A clone of its own (not ``test_dvc.py``'s): the two modules run on two workers side by side.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.pipeline.clone import (
    METRICS,
    STAGES,
    Pipeline,
    cloned_with_pipeline,
    dvc,
    git_status,
    shell,
    status,
    with_make,
)

TRAFFIC = Path("data/raw/traffic.csv")
MODELS = Path("models")
DATA_DVC = Path("data.dvc")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return cloned_with_pipeline(tmp_path_factory.mktemp("make"))


@pytest.mark.slow
def test_the_drift_demo_flags_the_drift_and_proposes_a_retrain_that_passes_its_gate(
    pipeline: Pipeline,
) -> None:
    run = shell(with_make(pipeline.repo), "make drift-demo")
    assert "## Retrain proposed by the monitor" in run.output, run.tail()
    assert "PR report of the proposal" in run.output
    assert "Gate passed" in run.output, run.tail()
    assert git_status(pipeline.repo) == ""  # the proposal is a branch of a scratch clone


@pytest.mark.slow
def test_make_repro_after_a_conf_edit_runs_what_changed(pipeline: Pipeline) -> None:
    repo = with_make(pipeline.repo)
    weekly = repo / "conf" / "backtest" / "weekly.yaml"
    text = weekly.read_text(encoding="utf-8")
    weekly.write_text(text.replace("n_folds: 26", "n_folds: 25"), encoding="utf-8")
    try:
        run = shell(repo, "make repro")
        assert run.ran == ["evaluate"], run.tail()  # no other stage reads backtest.*
        params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
        assert params["backtest"]["n_folds"] == 25
        metrics = json.loads((repo / METRICS).read_text(encoding="utf-8"))
        assert metrics["backtest"]["folds"] == 25
    finally:
        shell(repo, "git checkout HEAD -- conf params.yaml dvc.lock reports")
        dvc(repo, "checkout")
    assert status(repo) == {}


README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
YOUR_OWN_DATA = re.search(r"```yaml\n# conf/data/mine\.yaml\n(.*?)```", README, re.DOTALL)


@pytest.mark.slow
def test_your_own_data_is_selected_once_and_every_stage_and_the_card_use_it(
    pipeline: Pipeline,
) -> None:
    # The README's steps, on 30 weeks of hourly requests in a CSV of the user's own shape.
    repo = with_make(pipeline.repo)
    traffic = pd.read_csv(repo / TRAFFIC).head(30 * 168)
    mine = traffic.rename(columns={"timestamp": "ts", "sessions": "requests"})
    mine.to_csv(repo / "my.csv", index=False)
    shell(
        repo,
        "traffic-forecast validate data=csv data.traffic_file=my.csv "
        "data.timestamp_column=ts data.target_column=requests",
    )
    assert YOUR_OWN_DATA is not None, "the README's conf/data/mine.yaml block"
    (repo / "conf" / "data" / "mine.yaml").write_text(YOUR_OWN_DATA[1], encoding="utf-8")
    shutil.move(repo / "my.csv", repo / "data" / "raw" / "mine.csv")

    shell(repo, "sed -i 's/- data: example/- data: mine/' conf/config.yaml")
    shell(repo, "dvc commit --force data.dvc && dvc push")
    run = shell(repo, "make repro")

    assert run.ran == list(STAGES), run.tail()
    card = json.loads((repo / MODELS / "model_card.json").read_text(encoding="utf-8"))
    assert card["data"]["name"] == "mine"
    digest = hashlib.md5((repo / "data/raw/mine.csv").read_bytes(), usedforsecurity=False)
    assert card["data"]["files"]["data/raw/mine.csv"]["md5"] == digest.hexdigest()
    tracked = yaml.safe_load((repo / DATA_DVC).read_text(encoding="utf-8"))["outs"][0]["md5"]
    assert card["data_version"] == tracked  # the version data.dvc now names, with mine.csv
    assert card["config"]["data"]["target_column"] == "requests"
    metrics = json.loads((repo / METRICS).read_text(encoding="utf-8"))
    assert metrics["model"]["mase"] < metrics["baseline"]["mase"]
