"""The PR report's fleet section: aggregate, distribution of the ratio, worst series, the gate.

Shown only when the PR has fleet metrics (`outputs.FLEET_METRICS`); the figures come from
`traffic_forecast.report.fleet`, this module only lays them out (Markdown, and JSON for tools).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pandas as pd

from traffic_forecast.core.config import GateConfig
from traffic_forecast.report.charts import BASE_MODEL, PR_MODEL, Series, bar_chart
from traffic_forecast.report.fleet import (
    QUANTILES,
    RATIO,
    Comparison,
    FleetAggregate,
    FleetCheck,
    aggregate,
    bin_labels,
    compare,
    fleet_checks,
    ratio_histogram,
    ratio_quantiles,
    worst_series,
)
from traffic_forecast.report.fleet import S as Columns
from traffic_forecast.report.sections import DASH

WORSE_MARK = "🔴 worse"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _cell(value: Any, form: str) -> str:
    number = _number(value)
    return DASH if number is None else form.format(number)


def _code(text: str) -> str:
    # Series ids, regions and services come from the data: keep a backtick or pipe in its cell.
    return "`" + str(text).replace("`", "'").replace("|", "\\|") + "`"


# label, figure of the aggregate, format, change in points (not in % of itself), fleet check key
_ROWS: tuple[tuple[str, Callable[[FleetAggregate], float | None], str, bool, str], ...] = (
    ("MASE, mean over series", lambda a: a.mase, "{:.3f}", False, "mase"),
    ("MASE, traffic-weighted", lambda a: a.mase_weighted, "{:.3f}", False, ""),
    ("seasonal naive MASE, mean", lambda a: a.baseline_mase, "{:.3f}", False, ""),
    ("vs seasonal naive (MASE ratio)", lambda a: a.ratio, "{:.3f}", False, "ratio"),
    ("vs seasonal naive, traffic-weighted", lambda a: a.ratio_weighted, "{:.3f}", False, ""),
    ("series beating seasonal naive", lambda a: a.share_beating, "{:.1%}", True, ""),
)


def _change(new: float | None, old: float | None, points: bool) -> str:
    if new is None or old is None:
        return DASH
    if points:
        return f"{(new - old) * 100:+.1f} pp"
    return DASH if old == 0 else f"{(new - old) / abs(old) * 100:+.1f} %"


def _gate_cell(check: FleetCheck | None) -> str:
    return "" if check is None else f"{'✅' if check.passed else '❌'} {check.limit}"


def _aggregate_table(
    ours: FleetAggregate,
    theirs: FleetAggregate | None,
    found: Comparison | None,
    checks: dict[str, FleetCheck],
    tolerance_pct: float,
) -> str:
    base_series = DASH if theirs is None else f"{theirs.series:,}"
    lines = [
        "| fleet | base | PR | Δ | gate |",
        "|---|---:|---:|---:|---|",
        f"| series | {base_series} | {ours.series:,} | | |",
    ]
    for label, figure, form, points, key in _ROWS:
        new, old = figure(ours), (figure(theirs) if theirs else None)
        cells = [_cell(old, form), _cell(new, form), _change(new, old, points)]
        lines.append(f"| {label} | {' | '.join(cells)} | {_gate_cell(checks.get(key))} |")
    if found is not None and found.compared:
        worse = f"{found.worse} of {found.compared} ({found.share_worse:.1%})"
        gate = _gate_cell(checks.get("share_worse"))
        lines.append(f"| series worse than base by > {tolerance_pct:g} % | | {worse} | | {gate} |")
    return "\n".join(lines)


def _distribution(pr: pd.DataFrame, base: pd.DataFrame | None) -> str:
    header = " | ".join(QUANTILES)
    lines = [f"| ratio | {header} |", "|---|" + "---:|" * len(QUANTILES)]
    for side, frame in (("base", base), ("PR", pr)):
        if frame is not None:
            cells = " | ".join(f"{q:.3f}" for q in ratio_quantiles(frame).values())
            lines.append(f"| {side} | {cells} |")
    labels = bin_labels()
    counts = ratio_histogram(pr)
    histogram = [
        "| ratio bin | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| PR series | " + " | ".join(str(n) for n in counts) + " |",
    ]
    if base is not None:
        histogram.append("| base series | " + " | ".join(map(str, ratio_histogram(base))) + " |")
    bars = Series("PR series per bin", PR_MODEL, [float(n) for n in counts])
    line = None if base is None else Series("base", BASE_MODEL, ratio_histogram(base))
    chart, key = bar_chart("Series by MASE ratio to seasonal naive", labels, "series", bars, line)
    return "\n".join([*lines, "", *histogram, "", chart, key])


def _worst_table(worst: pd.DataFrame, compared: bool) -> str:
    lines = [
        "| # | series | region | service | MASE | ratio | MAE | base ratio | Δ MASE | |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for rank, row in enumerate(worst.to_dict("records"), start=1):
        change = _number(row.get("change_pct"))
        note = WORSE_MARK if row.get("worse") else ("new" if compared and change is None else "")
        cells = [
            str(rank),
            _code(row[Columns.series_id]),
            _code(row[Columns.region]),
            _code(row[Columns.service]),
            _cell(row[Columns.mase], "{:.3f}"),
            _cell(row[RATIO], "{:.3f}"),
            _cell(row[Columns.mae], "{:,.0f}"),
            _cell(row.get("base_ratio"), "{:.3f}"),
            DASH if change is None else f"{change:+.1f} %",
            note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _changes_note(found: Comparison | None) -> str:
    if found is None:
        return "The base has no fleet metrics: nothing compared with it."
    notes = []
    if found.new:
        notes.append(f"{found.new} series only on this PR (new)")
    if found.dropped:
        shown = ", ".join(_code(s) for s in found.dropped[:10])
        more = f" and {len(found.dropped) - 10} more" if len(found.dropped) > 10 else ""
        notes.append(f"{len(found.dropped)} series only on the base: {shown}{more}")
    return ("; ".join(notes) + ".") if notes else ""


def fleet_section(
    pr: pd.DataFrame | None,
    base: pd.DataFrame | None,
    gate_cfg: GateConfig,
    *,
    same_data: bool = True,
) -> str | None:
    """The fleet section's Markdown, or None when the PR has no fleet metrics."""
    if pr is None or pr.empty:
        return None
    base = None if base is None or base.empty else base
    checks = {c.key: c for c in fleet_checks(pr, base, gate_cfg, same_data=same_data)}
    found = None if base is None else compare(pr, base, gate_cfg.fleet_series_tolerance_pct)
    worst = worst_series(found.table if found else pr)
    intro = (
        f"{len(pr):,} series, each backtested on the same folds as its seasonal naive baseline "
        "(`reports/fleet_metrics.csv`). Ratio: a series' MASE over its seasonal naive MASE, "
        "below 1 beats it. The fleet ratio is mean MASE over mean seasonal naive MASE; the "
        "traffic-weighted figures weigh each series by its mean traffic."
    )
    if base is not None and not same_data:
        intro += " New data version: the gate does not compare with the base's fleet (other data)."
    parts = [
        intro,
        _aggregate_table(
            aggregate(pr),
            None if base is None else aggregate(base),
            found,
            checks,
            gate_cfg.fleet_series_tolerance_pct,
        ),
        "**Per-series MASE ratio to seasonal naive**",
        _distribution(pr, base),
        f"**The {len(worst)} worst series** (highest ratio, then highest MAE)",
        _worst_table(worst, compared=found is not None),
        _changes_note(found),
    ]
    return "\n\n".join(part for part in parts if part)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    keep = [Columns.series_id, Columns.region, Columns.service, Columns.mase, RATIO, Columns.mae]
    extra = [c for c in ("base_ratio", "change_pct", "worse") if c in frame]
    return [
        {str(k): (_number(v) if isinstance(v, float) else v) for k, v in row.items()}
        for row in frame[keep + extra].to_dict("records")
    ]


def fleet_json(
    pr: pd.DataFrame | None,
    base: pd.DataFrame | None,
    gate_cfg: GateConfig,
    *,
    same_data: bool = True,
) -> dict[str, Any] | None:
    """The numbers behind :func:`fleet_section`, for tools; None without fleet metrics."""
    if pr is None or pr.empty:
        return None
    base = None if base is None or base.empty else base
    found = None if base is None else compare(pr, base, gate_cfg.fleet_series_tolerance_pct)
    checks = fleet_checks(pr, base, gate_cfg, same_data=same_data)
    return {
        "aggregate": {
            "pr": asdict(aggregate(pr)),
            "base": None if base is None else asdict(aggregate(base)),
        },
        "ratio_quantiles": {
            "pr": ratio_quantiles(pr),
            "base": None if base is None else ratio_quantiles(base),
        },
        "ratio_histogram": {
            "bins": bin_labels(),
            "pr": ratio_histogram(pr),
            "base": None if base is None else ratio_histogram(base),
        },
        "worst": _records(worst_series(found.table if found else pr)),
        "vs_base": None
        if found is None
        else {
            "compared": found.compared,
            "worse": found.worse,
            "share_worse": found.share_worse,
            "tolerance_pct": gate_cfg.fleet_series_tolerance_pct,
            "new": found.new,
            "dropped": found.dropped,
        },
        "checks": [{"text": c.text, "passed": c.passed} for c in checks],
    }
