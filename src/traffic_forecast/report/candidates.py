"""The model-candidate table: each model ``model=auto`` backtested on the same folds, PR vs base.

``reports/metrics.json`` has a ``selection`` section only when the run chose among candidates;
its ``model`` section is always the chosen model's, and that is what the gate judges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traffic_forecast.report.sections import DASH, finite_number

ADDED, REMOVED = "added", "removed"
MAX_REASON = 160  # characters of why a candidate was left out, in its table cell


@dataclass(frozen=True)
class Selection:
    """The ``selection`` section of one side's ``metrics.json``."""

    chosen: str | None
    rule: str | None
    candidates: dict[str, dict[str, Any]]  # name → its metrics, in listed order (cheapest first)


@dataclass(frozen=True)
class CandidateRow:
    """One candidate as the PR and the base backtested it (None: that side did not)."""

    name: str
    pr: dict[str, Any] | None
    base: dict[str, Any] | None
    chosen: bool
    chosen_on_base: bool
    change: str | None  # ADDED, REMOVED, or None (on both sides, or nothing to compare with)


@dataclass(frozen=True)
class Column:
    """A per-candidate figure of the PR: its key in the candidate's metrics and its format."""

    label: str
    key: str
    form: str


COLUMNS = (
    Column("MASE", "mase", "{:.3f}"),
    Column("vs seasonal naive", "mase_vs_baseline", "{:.3f}"),
    Column("MAE", "mae", "{:,.0f}"),
    Column("interval coverage", "interval_coverage", "{:.1%}"),
    Column("interval width / actual", "interval_width_rel", "{:.1%}"),
)


def _text(value: Any) -> str | None:
    # One line: the rule goes into a sentence, and a newline would end it (or a table) early.
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def selection_of(metrics: Mapping[str, Any] | None) -> Selection | None:
    """The ``selection`` section of ``metrics``, or None for a single model (or no metrics)."""
    section = (metrics or {}).get("selection")
    if not isinstance(section, dict):
        return None
    raw = section.get("candidates")
    candidates = {
        str(name): dict(figures)
        for name, figures in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(figures, dict)
    }
    # metrics.json is written with sorted keys: "order" keeps the listed (cost) order
    order = [name for name in section.get("order") or [] if name in candidates]
    candidates = {name: candidates[name] for name in order} | candidates
    return Selection(_text(section.get("chosen")), _text(section.get("rule")), candidates)


def _listed_order(ours: list[str], theirs: list[str]) -> list[str]:
    # A candidate only the base had goes before the next one both sides have, so the rows keep
    # the cost order (cheapest first, the ensemble last) of both sides.
    order = list(ours)
    for at, name in enumerate(theirs):
        if name in ours:
            continue
        after = [later for later in theirs[at + 1 :] if later in ours]
        order.insert(order.index(after[0]) if after else len(order), name)
    return order


def candidate_rows(pr: Selection | None, base: Selection | None) -> list[CandidateRow]:
    """The PR's candidates in their listed order, with those only the base had among them.

    A candidate is ``added`` or ``removed`` only when both sides chose among candidates: against a
    single-model base (or no base) every candidate would be "added", which says nothing.
    """
    ours = pr.candidates if pr else {}
    theirs = base.candidates if base else {}
    compared = pr is not None and base is not None
    rows = []
    for name in _listed_order(list(ours), list(theirs)):
        change = None
        if compared and name not in theirs:
            change = ADDED
        elif compared and name not in ours:
            change = REMOVED
        rows.append(
            CandidateRow(
                name=name,
                pr=ours.get(name),
                base=theirs.get(name),
                chosen=pr is not None and name == pr.chosen,
                chosen_on_base=base is not None and name == base.chosen,
                change=change,
            )
        )
    return rows


def _plain(text: str) -> str:
    # Text from metrics.json in a table cell: one line, no pipe to end the cell, not a page long.
    line = " ".join(text.split()).replace("|", "\\|")
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1].rstrip() + "…"


def _code(name: str) -> str:
    # Names come from the config: keep a stray backtick or pipe from breaking the table.
    return "`" + name.replace("`", "'").replace("|", "\\|") + "`"


def _figure(figures: Mapping[str, Any] | None, key: str, form: str) -> str:
    value = finite_number((figures or {}).get(key))
    return DASH if value is None else form.format(value)


def mase_change_pct(row: CandidateRow) -> float | None:
    """The candidate's MASE change vs the base, in %, or None unless both sides have a MASE."""
    new, old = (finite_number((side or {}).get("mase")) for side in (row.pr, row.base))
    if new is None or old is None or old == 0:
        return None
    return (new - old) / abs(old) * 100


def _weights(figures: Mapping[str, Any] | None) -> str | None:
    weights = (figures or {}).get("weights")
    if not isinstance(weights, dict):
        return None
    numbers = {str(name): finite_number(value) for name, value in weights.items()}
    # A zero weight is a candidate the ensemble leaves out: listing it would only add length.
    shown = [f"{_code(name)} {w:.2f}" for name, w in numbers.items() if w]
    return "weights " + ", ".join(shown) if shown else None


def _notes(row: CandidateRow, base_chose_other: bool) -> str:
    notes = []
    if row.chosen:
        notes.append("✅ chosen")
    if row.chosen_on_base and base_chose_other:
        notes.append("chosen on base")
    if row.change:
        notes.append(f"**{row.change}**")
    for side, figures in (("", row.pr), ("on base ", row.base)):
        reason = (figures or {}).get("excluded")
        if isinstance(reason, str):  # the evaluate stage could not backtest it on that data
            notes.append(f"left out {side}({_plain(reason)})")
    weights = _weights(row.pr if row.pr is not None else row.base)
    if weights:
        notes.append(weights)
    return " · ".join(notes)


def _table(rows: list[CandidateRow], base_chose_other: bool) -> str:
    labels = [column.label for column in COLUMNS]
    lines = [
        f"| candidate | {' | '.join(labels)} | base MASE | Δ MASE | |",
        "|---|" + "---:|" * (len(COLUMNS) + 2) + "---|",
    ]
    for row in rows:
        name = f"**{_code(row.name)}**" if row.chosen else _code(row.name)
        cells = [_figure(row.pr, column.key, column.form) for column in COLUMNS]
        change = mase_change_pct(row)
        cells += [
            _figure(row.base, "mase", "{:.3f}"),
            DASH if change is None else f"{change:+.1f} %",
        ]
        lines.append(f"| {name} | {' | '.join(cells)} | {_notes(row, base_chose_other)} |")
    return "\n".join(lines)


def _sentence(text: str | None) -> str:
    return f"{(text or '').rstrip('. ')}."


def _rule(pr: Selection | None, base: Selection | None) -> str:
    if pr is None:
        return f"The base's selection rule: {_sentence(base.rule)}" if base and base.rule else ""
    if pr.rule is None:
        return "Selection rule: not recorded in `reports/metrics.json`."
    changed = base is not None and base.rule is not None and base.rule != pr.rule
    return f"Selection rule: {_sentence(pr.rule)}" + (
        f" (Base: {_sentence(base.rule)})" if base and changed else ""
    )


def _gate(pr: Selection | None, base: Selection | None, has_base: bool) -> str:
    base_choice = _code(base.chosen) if base and base.chosen else "its chosen model"
    if pr is None:
        return (
            "This PR runs a single model (no `selection` in its `reports/metrics.json`): the rows "
            "are the base's candidates, not backtested here. The gate judges this PR's model; any "
            f"check against the base compares it with the base's choice, {base_choice}."
        )
    chosen = _code(pr.chosen) if pr.chosen else "(not named)"
    text = (
        f"The gate judges the chosen model, {chosen}, and no other candidate: its figures are "
        "the rows of **Metrics** (`model` in `reports/metrics.json`)."
    )
    if base is None:
        return (
            f"{text} The base ran a single model: the gate compares with it." if has_base else text
        )
    if base.chosen == pr.chosen:
        return text
    return (
        f"{text} **The chosen model changed**: the base chose {base_choice}, so the base column of "
        f"**Metrics**, and any gate check against the base, compares {chosen} with {base_choice}."
    )


def candidates_section(
    pr_metrics: Mapping[str, Any] | None, base_metrics: Mapping[str, Any] | None
) -> str | None:
    """The candidate table, the selection rule and what the gate judges; None for single models.

    Shown when either side chose among candidates, so a PR that starts or stops doing so (or
    changes the candidate list) shows it.
    """
    pr, base = selection_of(pr_metrics), selection_of(base_metrics)
    if pr is None and base is None:
        return None
    rows = candidate_rows(pr, base)
    base_chose_other = base is not None and (pr is None or base.chosen != pr.chosen)
    intro = (
        "Every candidate is backtested on the same folds as the baseline; Δ MASE is against the "
        "same candidate on the base."
    )
    gate = _gate(pr, base, has_base=base_metrics is not None)
    parts = (intro, _rule(pr, base), _table(rows, base_chose_other), gate)
    return "\n\n".join(part for part in parts if part)


def candidates_json(
    pr_metrics: Mapping[str, Any] | None, base_metrics: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The numbers behind :func:`candidates_section`, for tools; None for single models."""
    pr, base = selection_of(pr_metrics), selection_of(base_metrics)
    if pr is None and base is None:
        return None
    return {
        "chosen": {"pr": pr.chosen if pr else None, "base": base.chosen if base else None},
        "rule": pr.rule if pr else None,
        "candidates": [
            {
                "name": row.name,
                "pr": row.pr,
                "base": row.base,
                "chosen": row.chosen,
                "chosen_on_base": row.chosen_on_base,
                "change": row.change,
                "mase_change_pct": mase_change_pct(row),
            }
            for row in candidate_rows(pr, base)
        ],
    }
