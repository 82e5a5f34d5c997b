"""The monitor on simulated data: the drifted quarter is flagged, the same process undrifted is not.

The model is the serving tests' (six simulated weeks); new actuals are simulated for the weeks
right after its training, once with the simulator's drift (traffic +35 %, a new sale kind,
capacity -10 %) and once without it, as a fresh sample of the same process. They arrive as raw
files (the example's feed) or in the observation store the service reads (production's).
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
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.data.observations import read_csv_batch
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.data.store import STORE_FILE, ObservationStore
from traffic_forecast.deploy.state import observations_url
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


def _deployed_in(cfg: Config, state_dir: Path) -> Config:
    """``cfg`` with its deploy state (the default store, the prediction logs) in ``state_dir``."""
    deploy = dataclasses.replace(cfg.deploy, state_dir=str(state_dir))
    observations = dataclasses.replace(cfg.observations, url="")
    return dataclasses.replace(cfg, deploy=deploy, observations=observations)


@pytest.fixture(scope="module")
def no_store(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """No deployment here: no observation store, no prediction log."""
    return _deployed_in(packaged.cfg, tmp_path_factory.mktemp("no-deployment"))


@pytest.fixture(scope="module")
def drifted(packaged: Packaged, no_store: Config, drifted_actuals: Path) -> watch.Watch:
    return watch.watch(no_store, drifted_actuals, model=packaged.tag)


@pytest.fixture(scope="module")
def undrifted(packaged: Packaged, no_store: Config, undrifted_actuals: Path) -> watch.Watch:
    return watch.watch(no_store, undrifted_actuals, model=packaged.tag)


@pytest.fixture(scope="module")
def stored(
    packaged: Packaged, drifted_actuals: Path, tmp_path_factory: pytest.TempPathFactory
) -> Config:
    """A deployment whose store holds the drifted weeks, as `traffic-forecast observe` stores them.

    Traffic and infrastructure in one CSV of observed hours; no raw file anywhere.
    """
    cfg = _deployed_in(packaged.cfg, tmp_path_factory.mktemp("deployment"))
    traffic = pd.read_csv(drifted_actuals / "traffic.csv")
    infrastructure = pd.read_csv(drifted_actuals / "infrastructure.csv")
    batch_file = tmp_path_factory.mktemp("observed") / "observed.csv"
    traffic.merge(infrastructure.drop(columns="app_version"), on="timestamp").to_csv(
        batch_file, index=False
    )
    batch = read_csv_batch(batch_file, cfg.data, now=pd.Timestamp("2030-01-01"), max_future_hours=1)
    store = ObservationStore(observations_url(cfg))
    store.write(batch)
    store.close()
    return cfg


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
    packaged: Packaged,
    no_store: Config,
    drifted: watch.Watch,
    drifted_actuals: Path,
    tmp_path: Path,
) -> None:
    bands = ["value", "lower", "upper"]
    served = drifted.served.forecast[bands].iloc[:48] * 1.3  # as if the service had answered this
    log = predictions.PredictionLog(tmp_path / "predictions-blue.jsonl", 10**6, 1)
    entry = {"model_version": packaged.tag, "what_if": False, "fallback": False}
    entry |= {"origin": served.index[0].isoformat()}
    entry |= {k: served[k].to_numpy() for k in ("value", "lower", "upper")}
    log.record(entry)
    log.record(entry | {"what_if": True, "value": served["value"].to_numpy()[:24] * 2})
    log.record(entry | {"model_version": "other:tag"})  # another model's answers
    log.close()
    monitor = dataclasses.replace(
        no_store.monitor, prediction_logs=str(tmp_path / "predictions-*.jsonl*")
    )
    cfg = dataclasses.replace(no_store, monitor=monitor)
    result = watch.watch(cfg, drifted_actuals, model=packaged.tag)
    assert result.served.source.startswith("prediction log (1 default answers from 1 origins;")
    assert result.verdict.quality.hours == 48
    np.testing.assert_allclose(result.served.forecast["value"], served["value"], rtol=1e-6)
    assert result.verdict.quality.mae != drifted.verdict.quality.mae


@pytest.mark.parametrize(("which", "code"), [("drifted", 1), ("undrifted", 0)])
def test_the_monitor_exits_1_on_a_breach_and_0_without(
    packaged: Packaged,
    no_store: Config,
    *,
    which: str,
    code: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    actuals: Path = request.getfixturevalue(f"{which}_actuals")
    paths = dataclasses.replace(no_store.paths, reports_dir=str(tmp_path))
    cfg = dataclasses.replace(no_store, paths=paths)
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


def test_without_store_hours_the_raw_files_are_read_and_the_report_says_so(
    drifted: watch.Watch, no_store: Config, tmp_path: Path
) -> None:
    assert drifted.new.source == "files"
    assert drifted.new.described.startswith("raw tables in ")
    assert "the observation store" in drifted.new.described
    assert "has no hour after 2024-02-11 23:00:00" in drifted.new.described
    assert not (Path(no_store.deploy.state_dir) / STORE_FILE).exists()  # looking made none
    watch.write(drifted, tmp_path)
    payload = json.loads((tmp_path / watch.REPORT_JSON).read_text(encoding="utf-8"))
    assert payload["actuals"]["source"] == "files"


def test_a_store_with_hours_after_training_is_what_the_monitor_reads(
    packaged: Packaged, stored: Config, drifted: watch.Watch, tmp_path: Path
) -> None:
    nothing_here = tmp_path / "no-files"  # no `make actuals`: monitor.actuals_dir is empty
    result = watch.watch(stored, nothing_here, model=packaged.tag)
    assert result.new.source == "store"
    assert result.new.described.startswith("the observation store sqlite:///")
    assert result.new.traffic.equals(drifted.new.traffic)  # the same hours as the files held
    checks = {c.name: c for c in result.verdict.checks}
    from_files = {c.name: c for c in drifted.verdict.checks}
    # The store's infrastructure columns feed the capacity check: -10 % capacity is seen.
    assert checks["capacity"].breached
    assert checks["capacity"].value == pytest.approx(from_files["capacity"].value)
    assert checks["level"].value == pytest.approx(from_files["level"].value)
    assert checks["error"].value == pytest.approx(from_files["error"].value)
    # The store holds no sale calendar and none is in the empty folder: no kind to compare.
    assert result.verdict.new_sale_kinds == []
    watch.write(result, tmp_path)
    payload = json.loads((tmp_path / watch.REPORT_JSON).read_text(encoding="utf-8"))
    assert payload["actuals"]["source"] == "store"
    text = (tmp_path / watch.REPORT_MD).read_text(encoding="utf-8")
    assert "from the observation store sqlite:///" in text
    assert "168 hours, with the packaged model's forecast from its training end" in text


def test_the_files_can_be_chosen_over_the_store_and_the_store_demanded(
    packaged: Packaged, stored: Config, no_store: Config, drifted_actuals: Path
) -> None:
    chosen = watch.watch(stored, drifted_actuals, model=packaged.tag, actuals_from="files")
    assert chosen.new.source == "files"
    assert chosen.verdict.new_sale_kinds == ["live_stream"]  # the files' sale calendar
    with pytest.raises(PipelineInputError, match="has no hour after"):
        watch.watch(no_store, drifted_actuals, model=packaged.tag, actuals_from="store")


def _log_line(tag: str, origin: pd.Timestamp, served: pd.DataFrame, **fields: object) -> str:
    """A line of the service's prediction log: a default answer from ``origin``."""
    entry = {
        "model_version": tag,
        "endpoint": "forecast",
        "request": {"horizon": len(served), "coverage": None, "events": []},
        "origin": origin.isoformat(),
        "last_observed": (origin - pd.Timedelta(hours=1)).isoformat(),
        "what_if": False,
        "fallback": False,
        "fallback_reason": None,
        "coverage": 0.9,
        **{k: [round(float(v), 3) for v in served[k]] for k in ("value", "lower", "upper")},
        "time": "2024-03-01T00:00:00.000+00:00",
    }
    return json.dumps(entry | fields)


def test_forecasts_served_from_two_origins_are_scored_hour_by_hour(
    packaged: Packaged, stored: Config, tmp_path: Path
) -> None:
    """The origin moved a day forward: the day both answers cover is scored with the newer one."""
    store = ObservationStore(observations_url(stored))
    current = store.current()
    store.close()
    actual = pd.Series(current["target"].to_numpy(), index=pd.DatetimeIndex(current["timestamp"]))
    first, second = actual.index[0], actual.index[24]
    hours = 48

    def answer(origin: pd.Timestamp, factor: float) -> pd.DataFrame:
        values = actual[origin:].iloc[:hours] * factor
        return pd.DataFrame({"value": values, "lower": values * 0.9, "upper": values * 1.1})

    older, newer = answer(first, 1.2), answer(second, 0.95)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [
        _log_line(packaged.tag, second, newer),
        _log_line(packaged.tag, first, older),  # an older origin logged later does not win
        _log_line(packaged.tag, second, newer * 3, what_if=True),
        _log_line(packaged.tag, second, newer * 3, fallback=True),
        _log_line("traffic_forecast:other", second, newer * 3),
    ]
    (logs / "predictions-blue.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monitor = dataclasses.replace(stored.monitor, prediction_logs=str(logs / "*.jsonl"))
    cfg = dataclasses.replace(stored, monitor=monitor)
    result = watch.watch(cfg, tmp_path / "no-files", model=packaged.tag)
    assert result.served.source.startswith("prediction log (2 default answers from 2 origins;")
    expected = pd.concat([older.iloc[:24], newer])  # day 1: the older; days 2 and 3: the newer
    scored = result.served.forecast
    assert scored.index.equals(expected.index)
    np.testing.assert_allclose(scored["value"], expected["value"], rtol=1e-6)
    assert result.served.origins(actual.index) == 2
    quality = result.verdict.quality
    assert quality.hours == 72
    errors = (expected["value"] - actual[expected.index]).abs()
    assert quality.mae == pytest.approx(errors.mean(), rel=1e-6)
    assert quality.coverage == pytest.approx(2 / 3)  # inside ±10 % on days 2 and 3 only
    watch.write(result, tmp_path)
    text = (tmp_path / watch.REPORT_MD).read_text(encoding="utf-8")
    assert (
        "72 hours, each with the forecast served for it when it came (2 forecast origins)" in text
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [([], "has no hour after"), (["--actuals", "."], "cannot go with --from store")],
    ids=["empty-store", "with-a-folder"],
)
def test_the_command_demanding_the_store_fails_without_its_hours(
    packaged: Packaged,
    no_store: Config,
    *,
    extra: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    paths = dataclasses.replace(no_store.paths, reports_dir=str(tmp_path))
    cfg = dataclasses.replace(no_store, paths=paths)
    monkeypatch.setattr(watch, "load_config", lambda overrides: cfg)
    assert watch.main(["--from", "store", *extra, "--model", packaged.tag]) == 1
    assert message in caplog.text
    assert not (tmp_path / watch.REPORT_JSON).exists()
