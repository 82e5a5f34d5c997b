"""The monitor on simulated data: the drifted quarter is flagged, the same process undrifted is not.

The model is the serving tests' (six simulated weeks); new actuals are simulated for the weeks
right after its training, once with the simulator's drift (traffic +35 %, a new sale kind,
capacity -10 %) and once without it, as a fresh sample of the same process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMALL_PERIOD
from tests.packaged import Packaged
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.monitor import drift, watch
from traffic_forecast.serving import predictions

AFTER_TRAINING = {"drift_start": "2024-02-12", "drift_end": "2024-03-31 23:00"}
UNDRIFTED = {"drift_level_shift": 0.0, "drift_capacity_drop": 0.0, "live_streams_per_month": 0.0}


def _actuals(folder: Path, **changes: object) -> Path:
    config = dataclasses.replace(SMALL_PERIOD, **AFTER_TRAINING, **changes)  # type: ignore[arg-type]
    write_raw_tables(simulate(config, period="drift"), folder)
    return folder


@pytest.fixture(scope="module")
def drifted_actuals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _actuals(tmp_path_factory.mktemp("drifted"))


@pytest.fixture(scope="module")
def undrifted_actuals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _actuals(tmp_path_factory.mktemp("undrifted"), **UNDRIFTED)


@pytest.fixture(scope="module")
def drifted(packaged: Packaged, drifted_actuals: Path) -> watch.Watch:
    return watch.watch(packaged.cfg, drifted_actuals, model=packaged.tag)


@pytest.fixture(scope="module")
def undrifted(packaged: Packaged, undrifted_actuals: Path) -> watch.Watch:
    return watch.watch(packaged.cfg, undrifted_actuals, model=packaged.tag)


def test_the_drifted_period_is_flagged_as_data_drift(drifted: watch.Watch) -> None:
    verdict = drifted.verdict
    breached = {c.name for c in verdict.breached}
    assert {"level", "sale_kinds", "capacity"} <= breached, [c.text for c in verdict.checks]
    assert verdict.new_sale_kinds == ["live_stream"]
    assert verdict.data_drift
    assert verdict.degraded  # +35 % that the model cannot know of
    assert not verdict.concept_drift
    assert verdict.retrain


def test_the_same_process_without_drift_is_not_flagged(undrifted: watch.Watch) -> None:
    verdict = undrifted.verdict
    assert verdict.breached == [], [c.text for c in verdict.checks]
    assert verdict.quality.hours == 168  # the whole served week has actuals
    assert {c.name for c in verdict.checks} >= {"level", "profile", "capacity", "error"}
    assert not verdict.data_drift
    assert not verdict.degraded
    # Seven weeks of actuals are past the 28-day cadence: a retrain is due, for that reason only.
    assert verdict.cadence_due
    assert verdict.reasons == ["the retraining cadence is due"]


def test_a_fresh_sample_of_the_training_period_shows_no_input_drift(
    packaged: Packaged, drifted: watch.Watch
) -> None:
    fresh = simulate(dataclasses.replace(SMALL_PERIOD, seed=SMALL_PERIOD.seed + 1)).traffic
    series = pd.Series(
        fresh["sessions"].to_numpy(float), index=pd.DatetimeIndex(fresh["timestamp"])
    )
    recent = series.iloc[-4 * drift.WEEK :]
    cfg = packaged.cfg.monitor
    for check in (
        drift.level_check(drifted.reference, recent, cfg),
        drift.profile_check(drifted.reference, recent, cfg),
    ):
        assert not check.breached, check.text


def test_the_reports_say_what_was_found(drifted: watch.Watch, tmp_path: Path) -> None:
    watch.write(drifted, tmp_path)
    payload = json.loads((tmp_path / watch.REPORT_JSON).read_text(encoding="utf-8"))
    assert payload["data_drift"] is True
    assert payload["retrain"] is True
    assert payload["new_sale_kinds"] == ["live_stream"]
    text = (tmp_path / watch.REPORT_MD).read_text(encoding="utf-8")
    assert text.startswith("**🔴 Data drift, and the model's error rose with it**")
    assert "| level | data | traffic level +" in text
    assert "```mermaid" in text
    assert (tmp_path / watch.REPORT_PNG).read_bytes().startswith(b"\x89PNG")


def test_the_monitor_scores_what_the_prediction_log_says_was_served(
    packaged: Packaged, drifted: watch.Watch, drifted_actuals: Path, tmp_path: Path
) -> None:
    served = drifted.served.forecast.iloc[:48] * 1.3  # as if the service had answered this
    log = predictions.PredictionLog(tmp_path / "predictions-blue.jsonl", 10**6, 1)
    entry = {"model_version": packaged.tag, "what_if": False, "fallback": False}
    entry |= {"origin": served.index[0].isoformat()}
    entry |= {k: served[k].to_numpy() for k in ("value", "lower", "upper")}
    log.record(entry)
    log.record(entry | {"what_if": True, "value": served["value"].to_numpy()[:24] * 2})
    log.record(entry | {"model_version": "other:tag"})  # another model's answers
    log.close()
    monitor = dataclasses.replace(
        packaged.cfg.monitor, prediction_logs=str(tmp_path / "predictions-*.jsonl*")
    )
    cfg = dataclasses.replace(packaged.cfg, monitor=monitor)
    result = watch.watch(cfg, drifted_actuals, model=packaged.tag)
    assert result.served.source == "prediction log (1 default answers)"
    assert result.verdict.quality.hours == 48
    np.testing.assert_allclose(result.served.forecast["value"], served["value"], rtol=1e-6)
    assert result.verdict.quality.mae != drifted.verdict.quality.mae


@pytest.mark.parametrize(("which", "code"), [("drifted", 1), ("undrifted", 0)])
def test_the_monitor_exits_1_on_a_breach_and_0_without(
    packaged: Packaged,
    *,
    which: str,
    code: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    actuals: Path = request.getfixturevalue(f"{which}_actuals")
    paths = dataclasses.replace(packaged.cfg.paths, reports_dir=str(tmp_path))
    cfg = dataclasses.replace(packaged.cfg, paths=paths)
    monkeypatch.setattr(watch, "load_config", lambda overrides: cfg)
    assert watch.main(["--actuals", str(actuals), "--model", packaged.tag]) == code
    assert json.loads((tmp_path / watch.REPORT_JSON).read_text(encoding="utf-8"))["retrain"]


def test_by_default_the_monitor_reads_every_file_the_deployed_colours_log(
    packaged: Packaged, tmp_path: Path
) -> None:
    deploy = dataclasses.replace(packaged.cfg.deploy, state_dir=str(tmp_path))
    cfg = dataclasses.replace(packaged.cfg, deploy=deploy)
    logs = tmp_path / "logs"
    logs.mkdir()
    names = ["predictions-blue.1.jsonl", "predictions-green.2.jsonl.1", "green.log"]
    for name in names:
        (logs / name).write_text("", encoding="utf-8")
    found = predictions.log_files(watch._prediction_logs(cfg))
    assert sorted(path.name for path in found) == names[:2]
