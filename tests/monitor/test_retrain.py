"""Ingesting new actuals into the data version, and teaching the config a new sale kind."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, SMALL_PERIOD
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.data.simulate import simulate, write_raw_tables
from traffic_forecast.monitor import retrain
from traffic_forecast.pipeline import validate

NEXT_WEEKS = {"drift_start": "2024-02-12", "drift_end": "2024-02-25 23:00"}


def test_merge_keeps_the_old_rows_and_adds_only_new_keys() -> None:
    old = pd.DataFrame({"t": ["1", "2", "3"], "v": ["a", "b", "c"]})
    new = pd.DataFrame({"t": ["3", "0", "4"], "v": ["changed", "z", "d"]})
    merged = retrain.merge_table(old, new, ["t"], "t")
    assert merged["t"].tolist() == ["0", "1", "2", "3", "4"]
    assert merged.set_index("t").loc["3", "v"] == "c"  # published data is not rewritten


def test_ingest_appends_the_new_hours_and_sales_and_the_result_validates(
    small_raw: Config, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    drifted = dataclasses.replace(SMALL_PERIOD, **NEXT_WEEKS)  # type: ignore[arg-type]
    write_raw_tables(simulate(drifted, period="drift"), incoming)
    before = pd.read_csv(small_raw.data.traffic_file)
    # An export that repeats the last known week, as exports of "the last N weeks" do.
    fresh = pd.read_csv(incoming / "traffic.csv")
    pd.concat([before.tail(168), fresh]).to_csv(incoming / "traffic.csv", index=False)
    sales_before = pd.read_csv(small_raw.data.sale_events_file)
    added = retrain.ingest(small_raw, incoming)
    traffic = pd.read_csv(small_raw.data.traffic_file)
    assert added[small_raw.data.traffic_file] == 14 * 24  # the repeated week is not doubled
    assert len(traffic) == len(before) + 14 * 24
    assert traffic["timestamp"].is_unique
    assert traffic["timestamp"].is_monotonic_increasing
    sales = pd.read_csv(small_raw.data.sale_events_file)
    assert len(sales) >= len(sales_before)
    assert sales["event_id"].tolist() == list(range(1, len(sales) + 1))
    kinds = sorted(set(sales["kind"]))
    data = dataclasses.replace(small_raw.data, sale_kinds=kinds)
    assert validate.run(dataclasses.replace(small_raw, data=data)).passed


def test_a_new_sale_kind_is_added_to_the_data_config(
    base_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "data").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "conf/data/example.yaml", tmp_path / "conf/data/example.yaml")
    monkeypatch.chdir(tmp_path)
    path = retrain.add_sale_kinds(base_config, ["live_stream", "flash_sale"])
    assert path == Path("conf/data/example.yaml")
    text = path.read_text(encoding="utf-8")
    kinds = [*base_config.data.sale_kinds, "live_stream"]
    assert f"sale_kinds: [{', '.join(kinds)}]" in text
    assert retrain.add_sale_kinds(base_config, []) is None


def test_a_config_without_a_one_line_kind_list_is_refused(
    base_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf/data/example.yaml").write_text("sale_kinds:\n  - flash_sale\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineInputError, match="no one-line `sale_kinds"):
        retrain.add_sale_kinds(base_config, ["live_stream"])


def _verdict_and_new_weeks(cfg: Config, tmp_path: Path, *, retrain: bool, headline: str) -> Path:
    """The monitor's verdict in the reports, and the next weeks' raw tables: where they are."""
    reports = Path(cfg.paths.reports_dir)
    reports.mkdir(parents=True)
    (reports / "monitoring.json").write_text(
        json.dumps({"retrain": retrain, "headline": headline}), encoding="utf-8"
    )
    incoming = tmp_path / "incoming"
    write_raw_tables(simulate(dataclasses.replace(SMALL_PERIOD, **NEXT_WEEKS)), incoming)  # type: ignore[arg-type]
    return incoming


def test_nothing_is_ingested_or_retrained_when_the_monitor_found_no_reason(
    small_raw: Config, tmp_path: Path
) -> None:
    incoming = _verdict_and_new_weeks(
        small_raw, tmp_path, retrain=False, headline="🟢 No drift, no decay"
    )
    before = Path(small_raw.data.traffic_file).read_bytes()
    assert retrain.retrain(small_raw, incoming, propose=True, force=False) is None
    assert Path(small_raw.data.traffic_file).read_bytes() == before


def test_retrain_needs_the_monitors_verdict(small_raw: Config, tmp_path: Path) -> None:
    with pytest.raises(PipelineInputError, match="run `traffic-forecast monitor` first"):
        retrain.retrain(small_raw, tmp_path, propose=False, force=False)


def test_a_pull_request_run_never_retrains_and_pushes(
    small_raw: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    incoming = _verdict_and_new_weeks(small_raw, tmp_path, retrain=True, headline="🔴 Drift")
    before = Path(small_raw.data.traffic_file).read_bytes()
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    with pytest.raises(PipelineInputError, match="is read-only on the remote"):
        retrain.retrain(small_raw, incoming, propose=True, force=False)
    assert Path(small_raw.data.traffic_file).read_bytes() == before  # refused before ingesting
