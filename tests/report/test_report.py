"""The PR report: pure sections from hand-made data, and runs in a temporary repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.report.samples import (
    FAILED,
    FAILED_MD,
    GATE,
    TRAFFIC_FILE,
    forecast_frame,
    horizon_frame,
    metrics_json,
    report_inputs,
    table_row,
)
from tests.repos import git, working_tree_repository
from traffic_forecast.core.config import GateConfig, PathsConfig
from traffic_forecast.data.remote import EMBEDDED_REMOTE, choose_remote
from traffic_forecast.forecasting.capacity import Capacity
from traffic_forecast.report import gather, render_json, render_markdown
from traffic_forecast.report.charts import MAX_POINTS, forecast_chart, horizon_chart, xychart
from traffic_forecast.report.gate import apply_gate
from traffic_forecast.report.gather import PullRequest, pull_request_event
from traffic_forecast.report.render import SECTIONS
from traffic_forecast.report.sections import (
    BETTER,
    DASH,
    NEUTRAL,
    VALIDATION_FAILED,
    WORSE,
    CapacityImpact,
    capacity_section,
    files_table,
    leaf_changes,
    metrics_table,
    params_table,
    verdict_line,
)

# --- 1. verdict -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pr", "labels", "start"),
    [
        (metrics_json(mase=0.5), [], "✅ Gate passed"),
        (metrics_json(mase=0.6), [], "❌ Gate failed: MASE +20.0 %"),
        (metrics_json(mase=0.6), ["gate-override"], "⚠️ Gate overridden by label: MASE +20.0 %"),
    ],
    ids=["pass", "fail", "override"],
)
def test_verdict_line_is_the_gate_headline(
    pr: dict[str, Any], labels: list[str], start: str
) -> None:
    verdict = apply_gate(pr, metrics_json(), GATE, labels)
    assert verdict_line(verdict, validation_passed=True).startswith(start)
    report = render_markdown(report_inputs(pr_metrics=pr, verdict=verdict))
    assert report.splitlines()[0] == f"**{verdict.headline()}**"


def test_failed_validation_overrides_the_verdict() -> None:
    verdict = apply_gate(metrics_json(), metrics_json(), GATE, [])
    assert verdict_line(verdict, validation_passed=False) == VALIDATION_FAILED


# --- 3. params ----------------------------------------------------------------------------------


def test_changed_lists_are_shown_down_to_the_value_that_changed() -> None:
    # `dvc params diff` reports a changed list as the repr of the whole list.
    old = "[{'_target_': 'a.Log', 'offset': 1}, {'_target_': 'b.AR', 'lags': 24, 'trend': 'n'}]"
    new = "[{'_target_': 'a.Log', 'offset': 1}, {'_target_': 'b.AR', 'lags': 2, 'trend': 'n'}]"
    assert leaf_changes({"model.steps": (old, new)}) == {"model.steps[1].lags": (24, 2)}
    table = params_table({"model.steps": (old, new)})
    assert table_row(table, "`model.steps[1].lags`") == ["`model.steps[1].lags`", "`24`", "`2`"]
    grown = leaf_changes({"model.steps": ("[1]", "[1, 2]")})
    assert grown == {"model.steps[1]": (None, 2)}
    assert leaf_changes({"note": ("[not python", "[x")}) == {"note": ("[not python", "[x")}


def test_params_table_shows_only_changed_keys() -> None:
    table = params_table({"backtest.coverage": (0.9, 0.8), "seed": (42, 42), "new.key": (None, 3)})
    assert table_row(table, "`backtest.coverage`") == ["`backtest.coverage`", "`0.9`", "`0.8`"]
    assert table_row(table, "`new.key`") == ["`new.key`", DASH, "`3`"]
    assert "seed" not in table
    assert params_table({}) == "No parameter changed."
    assert params_table({"seed": (42, 42)}) == "No parameter changed."


# --- 4. metrics ---------------------------------------------------------------------------------


def test_metrics_table_numbers_deltas_and_markers() -> None:
    base = metrics_json(mase=0.500, smape=6.0, rmse=1000.0, coverage=0.80)
    pr = metrics_json(mase=0.490, smape=6.6, rmse=1002.0, coverage=0.88)
    table, rows = metrics_table(pr, base, nominal_coverage=0.9)
    assert table_row(table, "MASE") == ["MASE", "0.500", "0.490", "-2.0 %", BETTER, ""]
    assert table_row(table, "sMAPE %") == ["sMAPE %", "6.00", "6.60", "+10.0 %", WORSE, ""]
    rmse = table_row(table, "RMSE")
    assert rmse == ["RMSE", "1,000", "1,002", "+0.2 %", NEUTRAL, ""]  # under 0.5 %
    assert table_row(table, "interval coverage") == [
        "interval coverage",
        "80.0%",
        "88.0%",
        "+8.0 pp",
        BETTER,
        "",
    ]
    ratio = table_row(table, "vs seasonal naive (MASE ratio)")
    assert ratio[1:3] == ["0.357", "0.350"]
    assert ratio[4] == BETTER
    assert [row["label"] for row in rows][:2] == ["MASE", "sMAPE %"]
    assert rows[0]["delta"] == pytest.approx(-2.0)


def test_coverage_is_better_closer_to_nominal_even_when_lower() -> None:
    table, _ = metrics_table(metrics_json(coverage=0.91), metrics_json(coverage=0.97), 0.9)
    assert table_row(table, "interval coverage")[3:5] == ["-6.0 pp", BETTER]
    table, _ = metrics_table(metrics_json(coverage=0.97), metrics_json(coverage=0.91), 0.9)
    assert table_row(table, "interval coverage")[4] == WORSE


def test_interval_width_is_shown_in_points_and_never_marked() -> None:
    # Narrower is better only at the same coverage: a marker would praise a lost coverage.
    base, pr = metrics_json(coverage=0.90), metrics_json(coverage=0.80)
    base["model"]["interval_width_rel"], pr["model"]["interval_width_rel"] = 0.25, 0.20
    table, rows = metrics_table(pr, base, nominal_coverage=0.9)
    label = "interval width / actual"
    assert table_row(table, label) == [label, "25.0%", "20.0%", "-5.0 pp", "", ""]
    assert table_row(table, "interval coverage")[3:5] == ["-10.0 pp", WORSE]
    assert next(row for row in rows if row["label"] == label)["marker"] == ""


def test_none_values_show_a_dash_and_no_marker() -> None:
    table, _rows = metrics_table(metrics_json(sale=None, coverage=None), metrics_json(), 0.9)
    sale = table_row(table, "MAE, sale hours")
    assert sale == ["MAE, sale hours", "2,000", DASH, DASH, NEUTRAL, ""]
    assert table_row(table, "interval coverage")[2:5] == [DASH, DASH, NEUTRAL]
    no_base, _ = metrics_table(metrics_json(), None, 0.9)
    assert table_row(no_base, "MASE") == ["MASE", DASH, "0.500", DASH, NEUTRAL, ""]


# --- 4b. the rows the gate judges ---------------------------------------------------------------

GATED_COLUMN = 5  # metric | base | PR | Δ | marker | gate


def _gated_rows(gate: GateConfig, pr: dict[str, Any], *, same_data: bool = True) -> dict[str, str]:
    """Label → gate cell of each row of the report's metrics table that has one."""
    base = metrics_json()
    verdict = apply_gate(pr, base, gate, [], same_data=same_data)
    report = render_markdown(report_inputs(pr_metrics=pr, base_metrics=base, verdict=verdict))
    table = report.split("## Metrics\n\n")[1].split("\n\n")[0]
    rows = [table_row(table, line.split("|")[1].strip()) for line in table.splitlines()[2:]]
    return {row[0]: row[GATED_COLUMN] for row in rows if row[GATED_COLUMN]}


RATIO, SALE = "vs seasonal naive (MASE ratio)", "MAE, sale hours"


@pytest.mark.parametrize(
    ("gate", "same_data", "marked"),
    [
        (GateConfig(), True, {"MASE", SALE, RATIO}),
        (GateConfig(must_beat_baseline=False), True, {"MASE", SALE}),
        # New data: the base's metrics were measured on other data, only seasonal naive is the bar.
        (GateConfig(), False, {RATIO}),
        (GateConfig(must_beat_baseline=False), False, set()),
    ],
    ids=["default", "no-baseline-check", "new-data", "nothing-judged"],
)
def test_the_gate_column_marks_exactly_the_rows_the_gate_judged(
    gate: GateConfig, same_data: bool, marked: set[str]
) -> None:
    assert set(_gated_rows(gate, metrics_json(mase=0.49), same_data=same_data)) == marked


def test_a_backtest_without_sale_hours_leaves_the_sale_row_unjudged() -> None:
    assert SALE not in _gated_rows(GATE, metrics_json(sale=None))


def test_the_gate_column_shows_the_configured_limits_and_which_failed() -> None:
    gate = GateConfig(max_mase_regression_pct=7.5, max_sale_error_regression_pct=12.0)
    cells = _gated_rows(gate, metrics_json(mase=0.55, sale=2100.0))  # +10 % MASE, +5 % sale
    assert cells["MASE"].startswith("❌")
    assert "+7.5 %" in cells["MASE"]
    assert cells[SALE].startswith("✅")
    assert "+12 %" in cells[SALE]
    assert cells[RATIO].startswith("✅")  # 0.55 still beats seasonal naive's 1.4
    worse_than_naive = _gated_rows(gate, metrics_json(mase=2.0))
    assert worse_than_naive[RATIO].startswith("❌")


def test_the_json_rows_carry_the_gate_too() -> None:
    pr = metrics_json(mase=0.6)
    verdict = apply_gate(pr, metrics_json(), GATE, [])
    rows = render_json(report_inputs(pr_metrics=pr, verdict=verdict))["metrics"]
    gated = {row["label"]: row["gate"] for row in rows if row["gate"] is not None}
    assert gated["MASE"]["passed"] is False
    assert set(gated) == {"MASE", SALE, RATIO}


# --- 2 + validation failure ---------------------------------------------------------------------


def test_failed_validation_replaces_sections_3_to_7_and_embeds_the_failure_table() -> None:
    failed = report_inputs(validation=FAILED, validation_md=FAILED_MD, verdict=None)
    report = render_markdown(failed)
    assert report.splitlines()[0] == f"**{VALIDATION_FAILED}**"
    assert "| `data/raw/traffic.csv` | `sessions` | greater_than_or_equal_to(0) |" in report
    assert "| File | Column | Check |" in report
    assert "## Data" in report
    assert "training did not run" in report
    for heading in SECTIONS[1:]:
        assert heading not in report
    assert "reproduce:" in report
    payload = render_json(report_inputs(validation=FAILED, verdict=None))
    assert payload["passed"] is False
    assert payload["headline"] == VALIDATION_FAILED


def test_data_section_says_whether_the_data_version_changed() -> None:
    assert "(unchanged)" in render_markdown(report_inputs())
    changed = render_markdown(report_inputs(data_version_base="d0.dir"))
    assert "changed from `d0.dir`" in changed


def test_files_table_compares_each_raw_file_with_the_base() -> None:
    longer = {**TRAFFIC_FILE, "md5": "bb", "rows": 72, "last": "2025-06-03 23:00"}
    pr = {"data/raw/traffic.csv": longer, "data/raw/new.csv": {"md5": "cc", "rows": 5}}
    base = {"files": {"data/raw/traffic.csv": TRAFFIC_FILE, "data/raw/gone.csv": {"rows": 9}}}
    table = files_table(pr, base)
    assert table_row(table, "`data/raw/traffic.csv`") == [
        "`data/raw/traffic.csv`",
        "72",
        "+24",
        "2025-06-01 00:00 → 2025-06-03 23:00",
        "changed",
    ]
    assert table_row(table, "`data/raw/new.csv`")[1:] == ["5", DASH, DASH, "new"]
    assert table_row(table, "`data/raw/gone.csv`")[1:] == [DASH, DASH, DASH, "removed"]
    same = files_table(
        {"data/raw/traffic.csv": TRAFFIC_FILE}, {"files": {"data/raw/traffic.csv": TRAFFIC_FILE}}
    )
    assert table_row(same, "`data/raw/traffic.csv`")[2:] == [
        "+0",
        "2025-06-01 00:00 → 2025-06-02 23:00",
        "unchanged",
    ]
    # A base from before per-file hashes were recorded: no comparison rather than a wrong one.
    assert table_row(files_table(pr, {"rows": {}}), "`data/raw/traffic.csv`")[4] == DASH


# --- 5. plots -----------------------------------------------------------------------------------


def _mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)


def test_mermaid_blocks_are_valid_looking_and_short() -> None:
    report = render_markdown(report_inputs())
    blocks = _mermaid_blocks(report)
    assert len(blocks) == 2
    for block in blocks:
        lines = block.splitlines()
        assert lines[0] == "xychart-beta"
        assert any(line.strip().startswith("x-axis [") for line in lines)
        for line in lines:
            if line.strip().startswith(("line [", "x-axis [")):
                assert 0 < line.count(",") + 1 <= MAX_POINTS
    forecast_lines = [line for line in blocks[0].splitlines() if "line [" in line]
    assert len(forecast_lines) == 3  # actual, PR, base (same hours)
    assert '"06-2' in blocks[0]
    assert "h" in blocks[0]


def test_long_lines_are_thinned_and_mismatched_base_is_left_out() -> None:
    long = xychart("t", [str(i) for i in range(500)], "y", [[float(i) for i in range(500)]], 1.0)
    values = re.search(r"line \[(.*)\]", long)
    assert values is not None
    assert len(values.group(1).split(",")) == MAX_POINTS
    other_hours = forecast_frame(folds=4)
    chart, legend = forecast_chart(forecast_frame(), other_hours)
    assert chart.count("line [") == 2
    assert "not drawn" in legend
    chart, _ = horizon_chart(horizon_frame(), None)
    assert chart.count("line [") == 1
    assert "[50, 50, 50" in chart


# --- 6. capacity --------------------------------------------------------------------------------


def test_capacity_section_numbers() -> None:
    impact = CapacityImpact(Capacity(10_000.0, 600), 0.6, 1.2e6, 1.5e6, "upper")
    assert impact.instances_pr == 200  # ceil(1.2e6 / (10_000 · 0.6))
    assert impact.instances_base == 250
    text = capacity_section(impact, "")
    assert "| instances at 60% CPU | 250 | 200 |" in text
    assert "**-50 instances**" in text
    assert capacity_section(None, "Skipped: no infrastructure table.") == (
        "Skipped: no infrastructure table."
    )
    payload = render_json(report_inputs(capacity=impact))
    assert payload["capacity"]["instances_pr"] == 200


# --- order, explain, footer ---------------------------------------------------------------------


def test_sections_come_in_order_with_explain_and_footer() -> None:
    report = render_markdown(report_inputs())
    positions = [report.index(f"\n{heading}\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert report.index("**✅") == 0
    assert report.index("\n---\n") > positions[-1]
    assert "1. b (MASE +3.00" in report
    assert "3. c (MASE +0.50" in report
    assert "4. " not in report.split("## Explainability")[1]
    assert "`git checkout abc1234 && make data && dvc repro`" in report
    footer = report.split("\n---\n")[1]
    assert "Data remote: `storage`" in footer
    assert footer.rstrip().splitlines()[-1].startswith("**Files**")


# --- integration: a temporary repository ------------------------------------------------------


S3_REMOTE = "s3://team-private-bucket/traffic-forecast"


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree as ``main``, and a branch ``pr`` that changes backtest.coverage."""
    repo = working_tree_repository(tmp_path_factory.mktemp("report") / "repo")
    git(repo, "checkout", "--quiet", "-b", "pr")
    params = repo / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert "  coverage: 0.9\n" in text
    params.write_text(text.replace("  coverage: 0.9\n", "  coverage: 0.8\n"), encoding="utf-8")
    git(repo, "commit", "--quiet", "-am", "backtest.coverage: 0.8")
    return repo


# What GitHub Actions sets, cleared so that a run is local unless a test says otherwise.
GITHUB_RUN = (
    "GITHUB_EVENT_PATH",
    "GITHUB_ACTIONS",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
)


def _project(
    repo: Path, *args: str, event: Path | None = None, actions: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PYTHONPATH": str(repo / "src"),
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    for name in GITHUB_RUN:
        env.pop(name, None)
    env.update(actions or {})
    if event is not None:
        env["GITHUB_EVENT_PATH"] = str(event)
    return subprocess.run(
        [sys.executable, "-m", "traffic_forecast.cli", *args],
        check=False,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_report_in_a_repository_against_a_base_branch(pr_repo: Path) -> None:
    # A run whose configured remote is an S3 bucket it had no credentials for.
    remote = pr_repo / "reports" / "remote.json"
    record = asdict(choose_remote("storage", S3_REMOTE, {}))
    remote.write_text(json.dumps(record), encoding="utf-8")
    try:
        done = _project(pr_repo, "report", "--base", "main")
    finally:
        remote.unlink()
    assert done.returncode == 0, done.stderr
    report = (pr_repo / "reports" / "report.md").read_text(encoding="utf-8")
    published = report + (pr_repo / "reports" / "report.json").read_text(encoding="utf-8")
    for private in (S3_REMOTE, "team-private-bucket", EMBEDDED_REMOTE, str(pr_repo)):
        assert private not in published, private
    assert "Data remote: `storage` (s3) is configured" in report
    assert "**Override label** `gate-override`: this run was not given" in report  # no event
    assert "actions/runs" not in report  # not in GitHub Actions: no link to a run
    assert table_row(report, "MASE")[5].startswith("✅ at most +2 % vs base")
    assert report.startswith("**✅ Gate passed")  # same metrics as the base: nothing worse
    assert "| `backtest.coverage` | `0.9` | `0.8` |" in report
    assert "| metric | base | PR | Δ | |" in report
    assert "| MASE |" in report
    assert "nominal 80%" in report
    assert f"vs base `main ({git(pr_repo, 'rev-parse', '--short', 'main')})`" in report
    positions = [report.index(f"\n{heading}\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert "Skipped: no infrastructure table" in report  # data/validated is not in git
    assert (pr_repo / "reports" / "report.json").is_file()


def _pull_request_event(path: Path, base_sha: str, labels: list[str]) -> Path:
    payload = {"pull_request": {"base": {"sha": base_sha}, "labels": [{"name": n} for n in labels]}}
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


@pytest.mark.slow
def test_base_and_labels_come_from_the_pull_request_event(pr_repo: Path, tmp_path: Path) -> None:
    metrics_path = pr_repo / "reports" / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    metrics["model"]["mase"] *= 1.2  # as if the PR's retrained model were 20 % worse
    metrics_path.write_text(json.dumps(metrics), encoding="utf-8")
    base_sha = git(pr_repo, "rev-parse", "main")
    try:
        plain = _pull_request_event(tmp_path / "plain.json", base_sha, ["docs"])
        actions = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/traffic-forecast",
            "GITHUB_RUN_ID": "42",
        }
        assert _project(pr_repo, "report", event=plain, actions=actions).returncode == 0
        report = (pr_repo / "reports" / "report.md").read_text(encoding="utf-8")
        assert "**Override label** `gate-override`: not applied." in report
        run = "https://github.com/acme/traffic-forecast/actions/runs/42"
        assert f"the artifact `pr-report` of [this workflow run]({run})" in report
        verdict = json.loads((pr_repo / "reports" / "report.json").read_text(encoding="utf-8"))
        assert verdict["passed"] is False
        assert verdict["headline"].startswith("❌ Gate failed: MASE +20.0 % vs base")
        assert verdict["base"] == base_sha[:7]
        gate = _project(pr_repo, "gate")
        assert gate.returncode == 1
        assert "❌ Gate failed" in gate.stderr

        override = _pull_request_event(tmp_path / "override.json", base_sha, ["gate-override"])
        assert _project(pr_repo, "report", event=override).returncode == 0
        verdict = json.loads((pr_repo / "reports" / "report.json").read_text(encoding="utf-8"))
        assert (verdict["passed"], verdict["overridden"]) == (True, True)
        report = (pr_repo / "reports" / "report.md").read_text(encoding="utf-8")
        assert report.startswith("**⚠️ Gate overridden by label: MASE +20.0 % vs base")
        assert "**Override label** `gate-override`: applied." in report
        assert _project(pr_repo, "gate").returncode == 0
    finally:
        git(pr_repo, "checkout", "--", "reports/metrics.json")


def test_base_metrics_from_dvc_hold_only_the_keys_the_base_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `dvc metrics diff` gives a key only the PR has with old None: a PR that starts choosing
    # among candidates must not make the single-model base look as if it had a `selection`.
    diff = {
        "model.mase": {"old": 0.5, "new": 0.385},
        "selection.chosen": {"old": None, "new": "ensemble"},
        "selection.candidates.theta.mase": {"old": None, "new": 0.83},
    }
    monkeypatch.setattr(gather, "_dvc", lambda *_: {"reports/metrics.json": diff})
    monkeypatch.setattr(gather, "git_show", lambda *_: pytest.fail("dvc had the base's metrics"))
    assert gather.base_metrics("main", PathsConfig()) == {"model": {"mase": 0.5}}


def test_pull_request_event_gives_the_base_commit_and_labels(tmp_path: Path) -> None:
    path = _pull_request_event(tmp_path / "event.json", "abc123", ["gate-override", "data"])
    assert pull_request_event(str(path)) == PullRequest("abc123", ["gate-override", "data"])
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main"}), encoding="utf-8")
    assert pull_request_event(str(push)) is None
    assert pull_request_event(str(tmp_path / "missing.json")) is None
    assert pull_request_event(None) is None
