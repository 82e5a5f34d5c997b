"""Assemble the PR report, in its fixed section order, from gathered plain data (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from traffic_forecast.core.config import GateConfig
from traffic_forecast.report.candidates import candidates_json, candidates_section
from traffic_forecast.report.charts import forecast_chart, horizon_chart
from traffic_forecast.report.fleet_section import fleet_json, fleet_section
from traffic_forecast.report.gate import Verdict
from traffic_forecast.report.notes import footer, override_line
from traffic_forecast.report.redact import redact, redact_json
from traffic_forecast.report.sections import (
    CapacityImpact,
    capacity_section,
    data_section,
    explain_section,
    leaf_changes,
    metrics_table,
    params_table,
    verdict_line,
)

SECTIONS = (
    "## Data",
    "## Params",
    "## Metrics",
    "## Plots",
    "## Capacity impact",
    "## Explainability",
)
# Only when the PR or the base chose among candidates (`model=auto`): right after the metrics
# of the chosen model, before the plots of it.
CANDIDATES = "## Model candidates"
# Only when the PR has per-series fleet metrics: after the metrics (and candidates) if any.
FLEET = "## Fleet"
SKIPPED = (
    "Params, metrics, plots, capacity and explainability are left out: data validation failed, "
    "so training did not run. Fix the data (table above) and push again."
)


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows, already read from the PR's and the base's files."""

    base_ref: str
    commit: str
    validation: dict[str, Any]
    validation_md: str = ""
    data_version_pr: str = "unknown"
    data_version_base: str | None = None
    base_validation: dict[str, Any] | None = None  # the base's reports/validation.json
    params_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    pr_metrics: dict[str, Any] | None = None
    base_metrics: dict[str, Any] | None = None
    nominal_coverage: float = 0.9
    verdict: Verdict | None = None
    forecast_pr: pd.DataFrame | None = None
    forecast_base: pd.DataFrame | None = None
    horizon_pr: pd.DataFrame | None = None
    horizon_base: pd.DataFrame | None = None
    capacity: CapacityImpact | None = None
    capacity_reason: str = "Capacity impact not computed."
    explain: pd.DataFrame | None = None
    fleet_pr: pd.DataFrame | None = None  # `report.fleet.parse_fleet_metrics` of each side
    fleet_base: pd.DataFrame | None = None
    gate: GateConfig = field(default_factory=GateConfig)  # the fleet section shows its limits
    remote_note: str | None = None  # the remote's name and kind of store, never its URL
    override_label: str | None = None  # the PR label that overrides a failed gate
    labels: tuple[str, ...] | None = None  # the PR's labels; None: not known to this run
    run_url: str | None = None  # the workflow run's page, where its artifacts are
    private: Mapping[str, str] = field(default_factory=dict)  # never printed: value → stand-in

    @property
    def validation_passed(self) -> bool:
        """True when ``reports/validation.json`` says the data passed."""
        return bool(self.validation.get("passed", False))

    @property
    def same_data(self) -> bool:
        """False when the PR changes the data version: the gate then skips base comparisons."""
        return self.data_version_base in {None, self.data_version_pr}


def _plots(inputs: ReportInputs) -> str:
    parts: list[str] = []
    if inputs.forecast_pr is not None and not inputs.forecast_pr.empty:
        chart, legend = forecast_chart(inputs.forecast_pr, inputs.forecast_base)
        parts += [chart, legend, ""]
    if inputs.horizon_pr is not None and not inputs.horizon_pr.empty:
        chart, legend = horizon_chart(inputs.horizon_pr, inputs.horizon_base)
        parts += [chart, legend, ""]
    if not parts:
        parts = ["No plot data in `reports/plots/`.", ""]
    parts.append("PNG versions of these plots, and more: **Files** at the end.")
    return "\n".join(parts)


def render_markdown(inputs: ReportInputs) -> str:
    """The whole report: verdict, data, params, metrics, candidates, plots, capacity, footer."""
    out = [f"**{verdict_line(inputs.verdict, inputs.validation_passed)}**", ""]
    if inputs.override_label:
        label, labels = inputs.override_label, inputs.labels
        out += [override_line(inputs.verdict, inputs.validation_passed, label, labels), ""]
    out += [
        f"PR `{inputs.commit}` vs base `{inputs.base_ref}`",
        "",
        SECTIONS[0],
        "",
        data_section(
            inputs.data_version_pr,
            inputs.data_version_base,
            inputs.validation,
            inputs.validation_md,
            inputs.base_validation,
        ),
        "",
    ]
    fleet = _fleet(inputs)
    if inputs.validation_passed and inputs.pr_metrics is None and fleet is not None:
        # Fleet mode without a single-series model: its params, then the fleet.
        out += [SECTIONS[1], "", params_table(inputs.params_changed), "", FLEET, "", fleet, ""]
    elif not inputs.validation_passed or inputs.pr_metrics is None:
        reason = SKIPPED if not inputs.validation_passed else "No `reports/metrics.json`."
        out += [reason, ""]
    else:
        table, _ = _metrics(inputs, inputs.pr_metrics)
        bodies = (
            params_table(inputs.params_changed),
            table,
            _plots(inputs),
            capacity_section(inputs.capacity, inputs.capacity_reason),
            explain_section(inputs.explain),
        )
        candidates = candidates_section(inputs.pr_metrics, inputs.base_metrics)
        for heading, body in zip(SECTIONS[1:], bodies, strict=True):
            out += [heading, "", body, ""]
            if heading == SECTIONS[2] and candidates is not None:  # after "## Metrics"
                out += [CANDIDATES, "", candidates, ""]
            if heading == SECTIONS[2] and fleet is not None:
                out += [FLEET, "", fleet, ""]
    out.append(footer(inputs.commit, inputs.data_version_pr, inputs.remote_note, inputs.run_url))
    return redact("\n".join(out) + "\n", inputs.private)


def _fleet(inputs: ReportInputs) -> str | None:
    if not inputs.validation_passed:
        return None
    return fleet_section(
        inputs.fleet_pr, inputs.fleet_base, inputs.gate, same_data=inputs.same_data
    )


def _metrics(inputs: ReportInputs, pr: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    judged = [] if inputs.verdict is None else inputs.verdict.judged
    return metrics_table(pr, inputs.base_metrics, inputs.nominal_coverage, judged)


def render_json(inputs: ReportInputs) -> dict[str, Any]:
    """The verdict and the numbers behind the report, for tools."""
    verdict = inputs.verdict
    payload: dict[str, Any] = {
        "base": inputs.base_ref,
        "commit": inputs.commit,
        "headline": verdict_line(verdict, inputs.validation_passed),
        "passed": inputs.validation_passed and verdict is not None and verdict.passed,
        "overridden": verdict is not None and verdict.overridden,
        "override_label": inputs.override_label,
        "checks": [] if verdict is None else [list(c) for c in verdict.checks],
        "validation_passed": inputs.validation_passed,
        "data_version": {"pr": inputs.data_version_pr, "base": inputs.data_version_base},
        "params_changed": {
            k: {"base": old, "pr": new}
            for k, (old, new) in leaf_changes(inputs.params_changed).items()
        },
        "metrics": [],
        "candidates": None,  # None: neither side chose among candidate models
        "fleet": None,  # None: no per-series fleet metrics on the PR
        "capacity": None,
    }
    if inputs.validation_passed and inputs.pr_metrics is not None:
        payload["metrics"] = _metrics(inputs, inputs.pr_metrics)[1]
        payload["candidates"] = candidates_json(inputs.pr_metrics, inputs.base_metrics)
    if inputs.validation_passed:
        payload["fleet"] = fleet_json(
            inputs.fleet_pr, inputs.fleet_base, inputs.gate, same_data=inputs.same_data
        )
    if inputs.capacity is not None:
        impact = inputs.capacity
        payload["capacity"] = {
            "sessions_per_instance": impact.capacity.sessions_per_instance,
            "target_utilisation": impact.target_utilisation,
            "peak_pr": impact.peak_pr,
            "peak_base": impact.peak_base,
            "instances_pr": impact.instances_pr,
            "instances_base": impact.instances_base,
        }
    return dict(redact_json(payload, inputs.private))
