"""The pass/fail gate of a pull request: PR metrics against the base branch and the baseline.

Thresholds live in ``conf/gate/``. A reviewer can accept a known regression with the override
label; the verdict then says so instead of hiding it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traffic_forecast.core import command
from traffic_forecast.core.config import GateConfig
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.settings import load_config

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"  # written by `traffic-forecast report`


@dataclass(frozen=True)
class Judged:
    """A figure of ``metrics.json`` a gate check judged, its limit, and whether it held."""

    path: tuple[str, ...]  # where the figure is in metrics.json
    limit: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    """The gate's decision and every check behind it, in words a reviewer reads."""

    passed: bool
    overridden: bool
    checks: list[tuple[str, bool]] = field(default_factory=list)  # (description, passed)
    judged: list[Judged] = field(default_factory=list)  # the metrics those checks read

    @property
    def failures(self) -> list[str]:
        """Descriptions of the checks that failed."""
        return [text for text, ok in self.checks if not ok]

    def headline(self) -> str:
        """One line: passed, failed (and why), or failed but overridden."""
        if not self.failures:
            return "✅ Gate passed: " + "; ".join(text for text, _ in self.checks)
        why = "; ".join(self.failures)
        if self.overridden:
            return f"⚠️ Gate overridden by label: {why}"
        return f"❌ Gate failed: {why}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _change_pct(new: float, old: float) -> float:
    return (new - old) / old * 100 if old else float("inf") if new > old else 0.0


def apply_gate(
    pr: dict[str, Any],
    base: dict[str, Any] | None,
    gate: GateConfig,
    labels: list[str],
    lock: dict[str, Any] | None = None,
    *,
    same_data: bool = True,
) -> Verdict:
    """Check PR metrics (``metrics.json`` content) against the base branch's and the baseline.

    ``lock`` is what ``traffic-forecast check-lock`` recorded (``reports/lock.json``), if it ran.
    Without ``same_data`` (the PR changes the data version) the base's metrics were measured
    on other data: they are not compared, and seasonal naive on the same folds is the bar.
    """
    model = pr["model"]
    checks: list[tuple[str, bool]] = lock_checks(gate, lock)
    judged: list[Judged] = []
    if gate.must_beat_baseline:
        baseline_mase = pr["baseline"]["mase"]
        beats = model["mase"] < baseline_mase
        checks.append((f"MASE {model['mase']:.3f} vs seasonal naive {baseline_mase:.3f}", beats))
        # The metrics table shows this check as the ratio model/seasonal naive: below 1 beats it.
        judged.append(Judged(("mase_vs_baseline",), "below 1", beats))
    if base is not None and not same_data:
        checks.append(("new data version: metrics not compared with the base's (other data)", True))
    elif base is not None:
        mase_change = _change_pct(model["mase"], base["model"]["mase"])
        mase_limit = f"+{gate.max_mase_regression_pct:g} %"
        mase_ok = mase_change <= gate.max_mase_regression_pct
        checks.append((f"MASE {mase_change:+.1f} % vs base (limit {mase_limit})", mase_ok))
        judged.append(Judged(("model", "mase"), f"at most {mase_limit} vs base", mase_ok))
        new_sale, old_sale = model.get("mae_sale_hours"), base["model"].get("mae_sale_hours")
        if _is_number(new_sale) and _is_number(old_sale):  # no sale hour in a backtest: no check
            sale_change = _change_pct(new_sale, old_sale)
            sale_limit = f"+{gate.max_sale_error_regression_pct:g} %"
            sale_ok = sale_change <= gate.max_sale_error_regression_pct
            checks.append(
                (f"sale-hour MAE {sale_change:+.1f} % vs base (limit {sale_limit})", sale_ok)
            )
            judged.append(
                Judged(("model", "mae_sale_hours"), f"at most {sale_limit} vs base", sale_ok)
            )
    return decide(checks, judged, gate, labels)


def lock_checks(gate: GateConfig, lock: dict[str, Any] | None) -> list[tuple[str, bool]]:
    """Whether ``dvc.lock`` records the PR's own change, when the gate asks and it was checked."""
    if not gate.require_current_lock or lock is None:
        return []
    stages = sorted({entry.split(":")[0] for entry in lock.get("stale", [])})
    text = (
        "dvc.lock is current"
        if lock.get("current")
        else (f"dvc.lock is stale for {', '.join(stages)}: run `dvc repro`, commit dvc.lock")
    )
    return [(text, bool(lock.get("current")))]


def decide(
    checks: list[tuple[str, bool]], judged: list[Judged], gate: GateConfig, labels: list[str]
) -> Verdict:
    """The verdict of these checks: any failure fails the PR unless it has the override label."""
    failed = any(not ok for _, ok in checks)
    overridden = failed and gate.override_label in labels
    return Verdict(
        passed=not failed or overridden, overridden=overridden, checks=checks, judged=judged
    )


def _run(args: argparse.Namespace) -> int:
    path = args.report or Path(load_config(args.overrides).paths.reports_dir) / REPORT_JSON
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: run `make report` first")
    report = json.loads(path.read_text(encoding="utf-8"))
    if report.get("passed"):
        log.info("%s", report["headline"])
        return 0
    log.error("%s", report["headline"])
    return 1


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast gate``: the PR's pass/fail check, from the report it was given."""
    parser = command.parser(
        "gate", "Exit 0 when reports/report.json passed the PR gate (or was overridden), else 1."
    )
    parser.add_argument("--report", type=Path, default=None, help="default: reports/report.json")
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
