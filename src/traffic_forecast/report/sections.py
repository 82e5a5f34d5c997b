"""Markdown for each section of the PR report, from plain dicts and frames (no I/O)."""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from traffic_forecast.forecasting.capacity import Capacity
from traffic_forecast.report.gate import Judged, Verdict

VALIDATION_FAILED = "❌ Data validation failed: training did not run"
NEUTRAL_PCT = 0.5  # |Δ| below this (in %, or percentage points for coverage) is noise: ⚪
DASH = "\u2013"  # en dash: a missing value
BETTER, WORSE, NEUTRAL = "🟢 better", "🔴 worse", "⚪"


@dataclass(frozen=True)
class MetricRow:
    """One compared metric: where it sits in ``metrics.json`` and how to read it."""

    label: str
    path: tuple[str, ...]
    form: str
    coverage: bool = False  # better when closer to the nominal coverage, not lower
    points: bool = False  # a share: its change in percentage points, not in % of itself
    marked: bool = True  # False: no better/worse, the change alone says nothing


METRIC_ROWS = (
    MetricRow("MASE", ("model", "mase"), "{:.3f}"),
    MetricRow("sMAPE %", ("model", "smape"), "{:.2f}"),
    MetricRow("RMSE", ("model", "rmse"), "{:,.0f}"),
    MetricRow("MAE, peak hours", ("model", "mae_peak_hours"), "{:,.0f}"),
    MetricRow("MAE, sale hours", ("model", "mae_sale_hours"), "{:,.0f}"),
    MetricRow(
        "interval coverage", ("model", "interval_coverage"), "{:.1%}", coverage=True, points=True
    ),
    # Narrower is better only at the same coverage: shown next to it, unmarked.
    MetricRow(
        "interval width / actual",
        ("model", "interval_width_rel"),
        "{:.1%}",
        points=True,
        marked=False,
    ),
    MetricRow("vs seasonal naive (MASE ratio)", ("mase_vs_baseline",), "{:.3f}"),
)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _lookup(metrics: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    node: Any = metrics
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return finite_number(node)


def verdict_line(verdict: Verdict | None, validation_passed: bool) -> str:
    """The report's first line: the gate's headline, or that validation stopped the run."""
    if not validation_passed or verdict is None:
        return VALIDATION_FAILED
    return verdict.headline()


def compare_metric(
    row: MetricRow, pr: dict[str, Any], base: dict[str, Any] | None, nominal_coverage: float
) -> dict[str, Any]:
    """Base and PR values of one metric, its change and a marker (see `NEUTRAL_PCT`)."""
    new, old = _lookup(pr, row.path), _lookup(base, row.path)
    delta: float | None = None
    marker = NEUTRAL if row.marked else ""
    if new is not None and old is not None:
        if row.points:
            delta = (new - old) * 100
        else:
            delta = (new - old) / abs(old) * 100 if old else (0.0 if new == old else math.inf)
        gain = -delta
        if row.coverage:
            gain = (abs(old - nominal_coverage) - abs(new - nominal_coverage)) * 100
        if row.marked and abs(gain) >= NEUTRAL_PCT:
            marker = BETTER if gain > 0 else WORSE
    return {"label": row.label, "base": old, "pr": new, "delta": delta, "marker": marker}


def _gate_cell(judged: Judged | None) -> str:
    if judged is None:
        return ""
    return f"{'✅' if judged.passed else '❌'} {judged.limit}"


def metrics_table(
    pr: dict[str, Any],
    base: dict[str, Any] | None,
    nominal_coverage: float,
    judged: Sequence[Judged] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """The metrics table (metric | base | PR | Δ | marker | gate) and its rows as data.

    ``judged`` (the verdict's) fills the gate column: the rows the gate checked, and their limits.
    """
    by_path = {j.path: j for j in judged}
    rows = [compare_metric(row, pr, base, nominal_coverage) for row in METRIC_ROWS]
    lines = ["| metric | base | PR | Δ | | gate |", "|---|---:|---:|---:|---|---|"]
    for spec, row in zip(METRIC_ROWS, rows, strict=True):
        cells = [DASH if row[k] is None else spec.form.format(row[k]) for k in ("base", "pr")]
        delta = row["delta"]
        unit = " pp" if spec.points else " %"
        shown = DASH if delta is None else f"{delta:+.1f}{unit}"
        gate = by_path.get(spec.path)
        row["gate"] = None if gate is None else {"limit": gate.limit, "passed": gate.passed}
        lines.append(
            f"| {spec.label} | {cells[0]} | {cells[1]} | {shown} | {row['marker']} | "
            f"{_gate_cell(gate)} |"
        )
    gated = (
        "**gate**: the rows the pass/fail gate judged in this run, with their limits "
        "(`conf/gate/`); the other rows are context."
        if by_path
        else "**gate**: the gate judged no row of this table in this run."
    )
    note = (
        f"\nLower is better; coverage is better closer to the nominal {nominal_coverage:.0%}. "
        f"⚪: a change under {NEUTRAL_PCT:g} % (pp for coverage). Interval width (mean of "
        "(upper - lower) / actual) is unmarked: narrower is better only at the same coverage. "
        f"{gated} The base is not retrained: its numbers are its committed "
        "`reports/metrics.json`."
    )
    return "\n".join(lines) + "\n" + note, rows


def _cell(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, dict | list):
        return f"`{json.dumps(value, sort_keys=True)}`"
    return f"`{value}`"


def _literal(value: Any) -> Any:
    # `dvc params diff` gives a changed list (a model's `steps`) as its Python repr.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(f"{prefix}.{key}", item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(f"{prefix}[{i}]", item)
    else:
        yield prefix, value


def leaf_changes(changed: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """Changed keys down to the values that changed: ``…steps[3].forecaster.lags: 24 → 2``."""
    leaves: dict[str, tuple[Any, Any]] = {}
    for key, (old, new) in changed.items():
        before, after = dict(_leaves(key, _literal(old))), dict(_leaves(key, _literal(new)))
        for leaf in sorted(set(before) | set(after)):
            pair = (before.get(leaf), after.get(leaf))
            if pair[0] != pair[1]:
                leaves[leaf] = pair
    return leaves


def params_table(changed: dict[str, tuple[Any, Any]]) -> str:
    """Changed parameters as key | base | PR; a sentence when nothing changed."""
    moved = leaf_changes(changed)
    if not moved:
        return "No parameter changed."
    lines = ["| key | base | PR |", "|---|---|---|"]
    lines += [f"| `{k}` | {_cell(old)} | {_cell(new)} |" for k, (old, new) in sorted(moved.items())]
    return "\n".join(lines)


def failure_table(validation_md: str) -> str:
    """The table part of ``reports/validation.md`` (its lines starting with ``|``)."""
    return "\n".join(line for line in validation_md.splitlines() if line.startswith("|"))


def _file_change(pr: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    if pr is None:
        return "removed"
    if base is None:
        return "new"
    return "unchanged" if pr.get("md5") == base.get("md5") else "changed"


def _rows_delta(pr: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    new, old = (finite_number((side or {}).get("rows")) for side in (pr, base))
    if new is None or old is None:
        return DASH
    return f"{new - old:+,.0f}"


def files_table(pr: dict[str, Any], base: dict[str, Any] | None) -> str:
    """Per raw file: rows, rows vs base, the hours it covers, and whether it changed."""
    base_files = (base or {}).get("files", {})
    lines = ["| file | rows | Δ rows | hours | vs base |", "|---|---:|---:|---|---|"]
    for file in sorted(set(pr) | set(base_files)):
        ours, theirs = pr.get(file), base_files.get(file)
        rows = finite_number((ours or {}).get("rows"))
        hours = f"{ours['first']} → {ours['last']}" if ours and "first" in ours else DASH
        change = _file_change(ours, theirs) if base_files else DASH
        lines.append(
            f"| `{file}` | {DASH if rows is None else f'{rows:,.0f}'} | "
            f"{_rows_delta(ours, theirs)} | {hours} | {change} |"
        )
    return "\n".join(lines)


def data_section(
    version_pr: str,
    version_base: str | None,
    validation: dict[str, Any],
    validation_md: str,
    base_validation: dict[str, Any] | None,
) -> str:
    """Data version PR vs base, each file's rows and hours vs base, and the validation result."""
    if version_base is None:
        state = "base has no `data.dvc`"
    else:
        state = "unchanged" if version_base == version_pr else f"changed from `{version_base}`"
    lines = [f"- version: `{version_pr}` ({state})"]
    passed = bool(validation.get("passed", False))
    if passed:
        lines.append("- validation: ✅ passed")
    else:
        count = len(validation.get("failures", []))
        lines.append(f"- validation: ❌ failed ({count} check{'s' * (count != 1)})")
    lines += [f"- {note}" for note in validation.get("notes", [])]
    files = validation.get("files") or {
        f: {"rows": n} for f, n in validation.get("rows", {}).items()
    }
    if files:
        lines += ["", files_table(files, base_validation)]
    table = "" if passed else failure_table(validation_md)
    return "\n".join(lines + (["", table] if table else []))


@dataclass(frozen=True)
class CapacityImpact:
    """Instances needed at the forecast's peak hour, PR vs base."""

    capacity: Capacity
    target_utilisation: float
    peak_pr: float
    peak_base: float | None
    column: str  # the forecast column the peak was taken from (upper, or model)

    @property
    def instances_pr(self) -> int:
        """Instances for the PR's peak."""
        return int(self.capacity.instances_needed([self.peak_pr], self.target_utilisation)[0])

    @property
    def instances_base(self) -> int | None:
        """Instances for the base's peak (None without a base forecast)."""
        if self.peak_base is None:
            return None
        return int(self.capacity.instances_needed([self.peak_base], self.target_utilisation)[0])


def capacity_section(impact: CapacityImpact | None, reason: str) -> str:
    """Instances at the peak hour, PR vs base, or ``reason`` why it cannot be computed."""
    if impact is None:
        return reason
    base = impact.instances_base
    lines = [
        "| | base | PR |",
        "|---|---:|---:|",
        f"| peak `{impact.column}` (sessions/h) | "
        f"{DASH if impact.peak_base is None else f'{impact.peak_base:,.0f}'} | "
        f"{impact.peak_pr:,.0f} |",
        f"| instances at {impact.target_utilisation:.0%} CPU | "
        f"{DASH if base is None else base} | {impact.instances_pr} |",
    ]
    diff = DASH if base is None else f"{impact.instances_pr - base:+d}"
    lines += [
        "",
        f"Difference: **{diff} instances**. One instance serves "
        f"{impact.capacity.sessions_per_instance:,.0f} sessions/h at 100 % CPU "
        f"(median of {impact.capacity.hours} busy hours).",
    ]
    return "\n".join(lines)


def explain_section(explain: pd.DataFrame | None, top: int = 3) -> str:
    """The ``top`` feature groups by permutation importance."""
    if explain is None or explain.empty:
        return "No `reports/explain.csv`: the explain stage has not run."
    ranked = explain.sort_values("importance", ascending=False).head(top)
    return "\n".join(
        f"{i}. {row.feature} (MASE +{row.importance:.2f} when shuffled)"
        for i, row in enumerate(ranked.itertuples(), start=1)
    )
