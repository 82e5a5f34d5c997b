"""The experiment's analysis for people (``reports/experiment.md``) and machines (its JSON).

Pure rendering of an `analysis.Analysis`; `write` is the only I/O, through atomic writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.experiment.analysis import CONTINUE, KEEP, PROMOTE, Analysis, ArmScore

HEADLINES = {
    PROMOTE: "✅ Promote the challenger",
    KEEP: "🛑 Keep the champion",
    CONTINUE: "⏳ Continue: not decided yet",
}
STEP_EVERY = 6  # the per-step table shows steps 1, 6, 12, ...: the shape, not every row


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _arm_rows(arms: tuple[ArmScore, ArmScore]) -> list[str]:
    rows = [
        "| arm | model | MAE | MASE | scored origins | origins answered | answers counted |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for arm in arms:
        rows.append(
            f"| {arm.arm} | `{arm.model}` | {_number(arm.mae)} | {_number(arm.mase, 3)} | "
            f"{arm.scored_origins} | {arm.origins} | {arm.answers} |"
        )
    return rows


def _step_rows(champion: ArmScore, challenger: ArmScore) -> list[str]:
    steps = len(champion.mae_by_step)
    if steps == 0:
        return ["No scored origin yet: no error per step."]
    shown = sorted({1, *range(STEP_EVERY, steps + 1, STEP_EVERY), steps})
    rows = [
        "| step (h ahead) | champion MAE | challenger MAE | champion MASE | challenger MASE |",
        "|---:|---:|---:|---:|---:|",
    ]
    for step in shown:
        mase = [
            _number(arm.mase_by_step[step - 1], 3) if arm.mase_by_step else "n/a"
            for arm in (champion, challenger)
        ]
        rows.append(
            f"| {step} | {_number(champion.mae_by_step[step - 1])} | "
            f"{_number(challenger.mae_by_step[step - 1])} | {mase[0]} | {mase[1]} |"
        )
    return rows


def _test_lines(analysis: Analysis) -> list[str]:
    verdict, cfg = analysis.verdict, analysis.settings
    test = verdict.test
    lines = [
        f"- Evidence: **{verdict.days:.1f} days** of scored forecasts ({analysis.scored_origins} "
        f"origins, {analysis.first_origin or 'n/a'} .. {analysis.last_origin or 'n/a'}); "
        f"decisions from day {cfg['min_days']}, the champion kept at day {cfg['max_days']}.",
    ]
    if test is None:
        lines.append("- Test: fewer than two whole days scored, no statistic yet.")
        return lines
    lines += [
        f"- MAE(challenger) - MAE(champion): **{_number(analysis.mae_difference)}**, "
        f"interval [{_number(analysis.ci_low)}, {_number(analysis.ci_high)}] "
        f"({analysis.ci_description}).",
        f"- Diebold-Mariano: z = **{_number(test.z)}** (t = {_number(test.t)}, "
        f"{test.df:.1f} df, {test.n} days, HAC lag {test.lag}) against the boundary "
        f"±**{verdict.boundary:.2f}** of day {verdict.look}.",
    ]
    return lines


def render_markdown(analysis: Analysis) -> str:
    """The report: the decision first, then the evidence, the rule and the guardrails."""
    verdict = analysis.verdict
    arms = (analysis.champion, analysis.challenger)
    lines = [
        f"# Experiment `{analysis.experiment}`: {HEADLINES[verdict.decision]}",
        "",
        f"**{verdict.decision}**: {verdict.reason}.",
        "",
        f"Mode: {analysis.mode}; status: {analysis.status}.",
        "",
        "## Accuracy on the hours that came",
        "",
        *_arm_rows(arms),
        "",
        f"MASE scale: {analysis.scale.description}"
        + (f" = {_number(analysis.scale.value)}." if analysis.scale.value is not None else "."),
        "",
        "### Error by step",
        "",
        *_step_rows(*arms),
        "",
        "## The test",
        "",
        *_test_lines(analysis),
        "",
        "## The rule",
        "",
        analysis.rule,
        "",
        "## Guardrails",
        "",
        f"Guardrails: {analysis.guardrail}.",
        "",
    ]
    return "\n".join(lines)


def render_json(analysis: Analysis) -> str:
    """The analysis as JSON text, keys sorted: equal analyses give equal bytes."""
    return json.dumps(analysis.as_json(), indent=2, sort_keys=True) + "\n"


def write(analysis: Analysis, markdown_path: Path, json_path: Path) -> None:
    """Write the report and its JSON, each atomically."""
    write_text_atomic(markdown_path, render_markdown(analysis))
    write_json_atomic(json_path, analysis.as_json())
