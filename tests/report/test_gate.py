"""The PR gate: pass, fail on each threshold, and a reviewer's override."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from traffic_forecast.core.config import GateConfig
from traffic_forecast.report.gate import apply_gate
from traffic_forecast.report.gate import main as gate_main
from traffic_forecast.report.sections import METRIC_ROWS

GATE = GateConfig(max_mase_regression_pct=2.0, max_sale_error_regression_pct=5.0)


def _metrics(mase: float, sale_mae: float, baseline_mase: float = 1.4) -> dict[str, Any]:
    return {
        "model": {"mase": mase, "mae_sale_hours": sale_mae},
        "baseline": {"mase": baseline_mase},
    }


BASE = _metrics(0.500, 1000.0)


@pytest.mark.parametrize(
    ("pr", "passed", "failing"),
    [
        (_metrics(0.505, 1040.0), True, None),  # +1 % MASE, +4 % sale error: within limits
        (_metrics(0.515, 1000.0), False, "MASE +3.0 %"),
        (_metrics(0.500, 1060.0), False, "sale-hour MAE +6.0 %"),
        (_metrics(1.500, 1000.0, baseline_mase=1.4), False, "vs seasonal naive"),
    ],
    ids=["within-limits", "mase-regression", "sale-regression", "worse-than-baseline"],
)
def test_gate_checks_each_threshold(pr: dict[str, Any], passed: bool, failing: str | None) -> None:
    verdict = apply_gate(pr, BASE, GATE, labels=[])
    assert verdict.passed is passed
    assert verdict.overridden is False
    if failing is None:
        assert verdict.failures == []
        assert verdict.headline().startswith("✅")
    else:
        assert any(failing in text for text in verdict.failures), verdict.failures
        assert verdict.headline().startswith("❌")


def test_override_label_accepts_a_known_regression_and_says_so() -> None:
    regression = _metrics(0.600, 1000.0)
    verdict = apply_gate(regression, BASE, GATE, labels=["gate-override", "docs"])
    assert verdict.passed is True
    assert verdict.overridden is True
    assert verdict.headline().startswith("⚠️ Gate overridden")
    assert "MASE +20.0 %" in verdict.headline()


def test_other_labels_do_not_override() -> None:
    verdict = apply_gate(_metrics(0.600, 1000.0), BASE, GATE, labels=["needs-review"])
    assert verdict.passed is False


def test_without_a_base_only_the_baseline_is_checked() -> None:
    verdict = apply_gate(_metrics(0.9, 1e9), None, GATE, labels=[])
    assert verdict.passed is True
    assert len(verdict.checks) == 1


def test_a_backtest_without_sale_hours_skips_the_sale_check_instead_of_failing() -> None:
    no_sales = _metrics(0.5, 0.0)
    no_sales["model"]["mae_sale_hours"] = None  # what metrics.json holds then (JSON null)
    verdict = apply_gate(no_sales, no_sales, GATE, labels=[])
    assert verdict.passed is True
    assert not any("sale" in text for text, _ in verdict.checks)


@pytest.mark.parametrize(
    ("passed", "headline", "code"),
    [
        (True, "✅ Gate passed: MASE 0.49 vs seasonal naive 1.41", 0),
        (True, "⚠️ Gate overridden by label: MASE +20.0 % vs base", 0),
        (False, "❌ Gate failed: MASE +20.0 % vs base (limit +2 %)", 1),
        (False, "❌ Data validation failed: training did not run", 1),
    ],
    ids=["passed", "overridden", "failed", "validation-failed"],
)
def test_gate_command_exits_with_the_reports_verdict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, passed: bool, headline: str, code: int
) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"passed": passed, "headline": headline}), encoding="utf-8")
    with caplog.at_level(logging.INFO):
        assert gate_main(["--report", str(report)]) == code
    assert headline in caplog.text


def test_gate_command_without_a_report_says_what_to_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert gate_main(["--report", str(tmp_path / "none.json")]) == 1
    assert "make report" in caplog.text


def test_a_stale_dvc_lock_fails_the_gate_naming_the_stages() -> None:
    lock = {"current": False, "stale": ["train: changed params", "evaluate: changed params"]}
    verdict = apply_gate(_metrics(0.5, 1000.0), BASE, GATE, labels=[], lock=lock)
    assert verdict.passed is False
    assert "dvc.lock is stale for evaluate, train" in verdict.headline()
    current = apply_gate(_metrics(0.5, 1000.0), BASE, GATE, [], lock={"current": True, "stale": []})
    assert current.passed is True
    assert ("dvc.lock is current", True) in current.checks
    unchecked = GateConfig(require_current_lock=False)
    assert apply_gate(_metrics(0.5, 1000.0), BASE, unchecked, [], lock=lock).passed is True


def test_a_new_data_version_is_not_compared_with_the_base_metrics() -> None:
    worse_looking = _metrics(0.9, 5000.0)  # on harder, newer data: not a regression as such
    verdict = apply_gate(worse_looking, BASE, GATE, labels=[], same_data=False)
    assert verdict.passed is True
    assert any("not compared" in text for text, _ in verdict.checks)
    assert not any("vs base" in text for text, _ in verdict.checks)
    beaten = apply_gate(_metrics(1.5, 1000.0, baseline_mase=1.4), BASE, GATE, [], same_data=False)
    assert beaten.passed is False  # seasonal naive on the same folds still has to be beaten


def test_each_figure_the_gate_judges_is_a_row_of_the_report_and_agrees_with_its_check() -> None:
    # Every check on: each figure it judges must be a row of the metrics table, or the report
    # would leave a judged figure unmarked.
    pr = _metrics(0.600, 1000.0)  # +20 % MASE: fails; sale error unchanged: passes
    pr["mase_vs_baseline"] = 0.6 / 1.4
    verdict = apply_gate(pr, BASE, GATE, labels=[])
    rows = {row.path for row in METRIC_ROWS}
    assert {judged.path for judged in verdict.judged} <= rows
    assert len(verdict.judged) == sum(not text.startswith("dvc.lock") for text, _ in verdict.checks)
    by_path = {judged.path: judged.passed for judged in verdict.judged}
    assert by_path == {
        ("model", "mase"): False,
        ("model", "mae_sale_hours"): True,
        ("mase_vs_baseline",): True,
    }


def test_the_gate_judges_the_chosen_model_when_the_run_chose_among_candidates() -> None:
    # `model` holds the chosen candidate's figures: the gate reads them, never `selection`, and
    # compares them with the base's choice also when the choice changed.
    def auto(chosen_mase: float, chosen: str) -> dict[str, Any]:
        metrics = _metrics(chosen_mase, 1000.0)
        candidates = {"gradient_boosting": {"mase": 0.5}, "ensemble": {"mase": chosen_mase}}
        metrics["selection"] = {"chosen": chosen, "rule": "lowest MASE", "candidates": candidates}
        return metrics

    base = auto(0.500, "gradient_boosting")
    verdict = apply_gate(auto(0.490, "ensemble"), base, GATE, labels=[])
    assert verdict.passed
    assert verdict.checks[0][0] == "MASE 0.490 vs seasonal naive 1.400"
    worse = apply_gate(auto(0.515, "ensemble"), base, GATE, labels=[])
    assert worse.failures == ["MASE +3.0 % vs base (limit +2 %)"]
    assert apply_gate(_metrics(0.49, 1000.0), base, GATE, labels=[]).passed  # back to one model
