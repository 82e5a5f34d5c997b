"""Hand-made report inputs shared by the report tests: metrics, forecasts, a whole report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from traffic_forecast.core.config import GateConfig
from traffic_forecast.data.remote import EMBEDDED_REMOTE, choose_remote
from traffic_forecast.forecasting.capacity import Capacity
from traffic_forecast.report import ReportInputs
from traffic_forecast.report.gate import apply_gate
from traffic_forecast.report.notes import remote_line
from traffic_forecast.report.sections import CapacityImpact

GATE = GateConfig()
TRAFFIC_FILE = {"md5": "aa", "rows": 48, "first": "2025-06-01 00:00", "last": "2025-06-02 23:00"}
PASSED = {
    "passed": True,
    "rows": {"data/raw/traffic.csv": 48},
    "files": {"data/raw/traffic.csv": TRAFFIC_FILE},
    "failures": [],
    "notes": [],
}
FAILED_MD = """## Data validation

❌ **Failed**: 1 check failed on `data/raw/traffic.csv` (48 rows). Training did not run.

| File | Column | Check | Count | Sample rows (CSV line, value) |
|---|---|---|---:|---|
| `data/raw/traffic.csv` | `sessions` | greater_than_or_equal_to(0) | 1 | 7 (`-5`) |
"""
FAILED = {**PASSED, "passed": False, "failures": [{"file": "data/raw/traffic.csv"}]}


def metrics_json(
    mase: float = 0.5,
    smape: float = 6.0,
    rmse: float = 1000.0,
    sale: float | None = 2000.0,
    coverage: float | None = 0.86,
) -> dict[str, Any]:
    return {
        "model": {
            "mase": mase,
            "smape": smape,
            "rmse": rmse,
            "mae_peak_hours": 1500.0,
            "mae_sale_hours": sale,
            "interval_coverage": coverage,
        },
        "baseline": {"mase": 1.4},
        "mase_vs_baseline": mase / 1.4,
    }


RULE = (
    "lowest MASE; candidates within 1% of the best count as tied and the cheaper (earlier listed) "
    "wins; the ensemble is the most expensive"
)
CANDIDATES = {  # name → MASE, in the listed order: cheapest first, the ensemble last
    "gradient_boosting": 0.4947,
    "recursive_boosting": 0.5641,
    "mstl_ets": 0.7102,
    "theta": 0.8315,
    "seasonal_naive": 1.4,
    "ensemble": 0.385,
}
WEIGHTS = {"gradient_boosting": 0.417, "recursive_boosting": 0.494, "theta": 0.044}


def auto_metrics(
    candidates: dict[str, float] | None = None, chosen: str = "ensemble"
) -> dict[str, Any]:
    """``metrics.json`` of a ``model=auto`` run: ``model`` is the chosen candidate's figures."""
    mases = CANDIDATES if candidates is None else candidates
    metrics = metrics_json(mase=mases[chosen])
    listed: dict[str, dict[str, Any]] = {
        name: {
            "mase": mase,
            "mae": mase * 170_000,
            "interval_coverage": 0.89,
            "interval_width_rel": 0.21,
            "mase_vs_baseline": mase / 1.4,
        }
        for name, mase in mases.items()
    }
    if "ensemble" in listed:
        listed["ensemble"]["weights"] = WEIGHTS
    # as evaluate writes it: keys sorted (write_json_atomic), the listed order under "order"
    metrics["selection"] = {
        "chosen": chosen,
        "rule": RULE,
        "candidates": dict(sorted(listed.items())),
        "order": list(listed),
    }
    return metrics


def forecast_frame(folds: int = 3, horizon: int = 24, shift: float = 0.0) -> pd.DataFrame:
    stamps = pd.date_range("2025-06-09", periods=folds * 168, freq="h")
    rows = [
        {
            "fold": fold + 1,
            "timestamp": f"{stamps[fold * 168 + h]:%Y-%m-%d %H:%M}",
            "actual": 1e6 + 1e3 * h,
            "model": 1e6 + 1e3 * h + shift,
            "upper": 1.2e6 + 1e3 * h + shift,
        }
        for fold in range(folds)
        for h in range(horizon)
    ]
    return pd.DataFrame(rows)


def horizon_frame(scale: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"step": range(1, 25), "model_mae": [5e4 * scale + i for i in range(24)]})


def report_inputs(**changes: Any) -> ReportInputs:
    base = metrics_json()
    pr = metrics_json(mase=0.49)
    values: dict[str, Any] = {
        "base_ref": "main",
        "commit": "abc1234",
        "validation": PASSED,
        "data_version_pr": "d1.dir",
        "data_version_base": "d1.dir",
        "params_changed": {"backtest.coverage": (0.9, 0.8)},
        "pr_metrics": pr,
        "base_metrics": base,
        "verdict": apply_gate(pr, base, GATE, []),
        "forecast_pr": forecast_frame(),
        "forecast_base": forecast_frame(shift=1e4),
        "horizon_pr": horizon_frame(),
        "horizon_base": horizon_frame(1.1),
        "capacity": CapacityImpact(Capacity(10_000.0, 600), 0.6, 1.2e6, 1.5e6, "upper"),
        "explain": pd.DataFrame(
            {"feature": ["a", "b", "c", "d"], "importance": [0.1, 3.0, 0.5, 1.0]}
        ),
        "remote_note": remote_line(asdict(choose_remote("storage", EMBEDDED_REMOTE, {}))),
        "override_label": GATE.override_label,
        "labels": (),
    }
    return ReportInputs(**{**values, **changes})


def table_row(table: str, label: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``label``."""
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]
