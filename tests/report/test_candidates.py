"""The model-candidate section of the PR report (``model=auto``), from hand-made metrics."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.report.samples import (
    CANDIDATES,
    GATE,
    RULE,
    auto_metrics,
    metrics_json,
    report_inputs,
    table_row,
)
from traffic_forecast.report import render_json, render_markdown
from traffic_forecast.report.candidates import candidates_section
from traffic_forecast.report.gate import apply_gate
from traffic_forecast.report.render import CANDIDATES as HEADING
from traffic_forecast.report.render import SECTIONS
from traffic_forecast.report.sections import DASH

NOTE = 8  # candidate | MASE | ratio | MAE | coverage | width | base MASE | Δ MASE | note


def _section(pr: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    section = candidates_section(pr, base)
    assert section is not None
    return section


def _rows(section: str) -> list[list[str]]:
    """The cells of each body row of the table; an escaped pipe stays in its cell."""
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])] for line in lines]


def _row(section: str, name: str) -> list[str]:
    """The cells of the row of candidate ``name`` (shown in code, in bold when chosen)."""
    return next(row for row in _rows(section) if row[0].strip("*") == f"`{name}`")


def _names(section: str) -> list[str]:
    return [row[0].strip("*`") for row in _rows(section)]


def _without(name: str, **mases: float) -> dict[str, float]:
    return {k: mases.get(k, v) for k, v in CANDIDATES.items() if k != name}


def test_each_candidate_is_a_row_against_the_same_candidate_on_the_base() -> None:
    base = auto_metrics({**CANDIDATES, "ensemble": 0.400})
    section = _section(auto_metrics(), base)
    assert _names(section) == list(CANDIDATES)  # listed order: cheapest first, ensemble last
    assert _row(section, "gradient_boosting") == [
        "`gradient_boosting`",
        "0.495",
        "0.353",
        "84,099",
        "89.0%",
        "21.0%",
        "0.495",
        "+0.0 %",
        "",
    ]
    ensemble = _row(section, "ensemble")
    assert ensemble[0] == "**`ensemble`**"  # the chosen one, in bold
    assert ensemble[1] == "0.385"
    assert ensemble[6:8] == ["0.400", "-3.8 %"]
    assert ensemble[NOTE].startswith("✅ chosen · weights `gradient_boosting` 0.42, ")
    assert "`theta` 0.04" in ensemble[NOTE]
    assert f"Selection rule: {RULE}." in section
    assert "The gate judges the chosen model, `ensemble`, and no other candidate" in section
    assert "changed" not in section
    assert "added" not in section
    assert "removed" not in section


@pytest.mark.parametrize(
    ("base", "says"),
    [(None, ""), (metrics_json(), "The base ran a single model: the gate compares with it.")],
    ids=["no-base-metrics", "single-model-base"],
)
def test_without_a_base_selection_nothing_is_compared_or_marked_added(
    base: dict[str, Any] | None, says: str
) -> None:
    section = _section(auto_metrics(), base)
    assert _names(section) == list(CANDIDATES)
    for name in CANDIDATES:
        row = _row(section, name)
        assert row[1] != DASH
        assert row[6:8] == [DASH, DASH]
        assert "added" not in row[NOTE]
    assert section.rstrip().endswith(says)
    assert "chosen on base" not in section


def test_a_changed_candidate_list_shows_added_and_removed_rows_in_listed_order() -> None:
    base = auto_metrics(_without("mstl_ets"))
    pr = auto_metrics(_without("theta"))
    section = _section(pr, base)
    assert _names(section) == [
        "gradient_boosting",
        "recursive_boosting",
        "mstl_ets",
        "theta",  # before the next candidate both sides list, not after the ensemble
        "seasonal_naive",
        "ensemble",
    ]
    added = _row(section, "mstl_ets")
    assert added[NOTE] == "**added**"
    assert added[6:8] == [DASH, DASH]
    removed = _row(section, "theta")
    assert removed[NOTE] == "**removed**"
    assert removed[1:7] == [DASH] * 5 + ["0.832"]
    payload = render_json(report_inputs(pr_metrics=pr, base_metrics=base))["candidates"]
    changes = {row["name"]: row["change"] for row in payload["candidates"]}
    assert changes["mstl_ets"] == "added"
    assert changes["theta"] == "removed"
    assert changes["ensemble"] is None


def test_a_changed_choice_is_marked_on_both_rows_and_said_in_words() -> None:
    base = auto_metrics(chosen="gradient_boosting")
    section = _section(auto_metrics(), base)
    assert _row(section, "gradient_boosting")[NOTE] == "chosen on base"
    assert _row(section, "ensemble")[NOTE].startswith("✅ chosen")
    assert (
        "**The chosen model changed**: the base chose `gradient_boosting`, so the base column "
        "of **Metrics**, and any gate check against the base, compares `ensemble` with "
        "`gradient_boosting`."
    ) in section
    payload = render_json(report_inputs(pr_metrics=auto_metrics(), base_metrics=base))
    assert payload["candidates"]["chosen"] == {"pr": "ensemble", "base": "gradient_boosting"}


def test_a_pr_back_to_a_single_model_shows_the_bases_candidates() -> None:
    section = _section(metrics_json(), auto_metrics(chosen="theta"))
    assert _names(section) == list(CANDIDATES)
    theta = _row(section, "theta")
    assert theta[1:7] == [DASH] * 5 + ["0.832"]
    assert theta[NOTE] == "chosen on base"
    assert f"The base's selection rule: {RULE}." in section
    assert "This PR runs a single model" in section
    assert "compares it with the base's choice, `theta`" in section


def test_single_models_on_both_sides_have_no_candidate_section() -> None:
    assert candidates_section(metrics_json(), metrics_json()) is None
    assert candidates_section(metrics_json(), None) is None
    report = render_markdown(report_inputs())
    assert HEADING not in report
    assert render_json(report_inputs())["candidates"] is None


def test_the_section_comes_right_after_the_metrics_of_the_chosen_model() -> None:
    pr, base = auto_metrics(), auto_metrics(chosen="gradient_boosting")
    verdict = apply_gate(pr, base, GATE, [])
    report = render_markdown(report_inputs(pr_metrics=pr, base_metrics=base, verdict=verdict))
    metrics, plots = (report.index(f"\n{heading}\n") for heading in SECTIONS[2:4])
    assert metrics < report.index(f"\n{HEADING}\n") < plots
    # The Metrics table is the chosen model's: the ensemble now, gradient boosting on the base.
    assert table_row(report, "MASE")[1:3] == ["0.495", "0.385"]


def test_missing_figures_odd_names_and_a_multiline_rule_do_not_break_the_table() -> None:
    pr = metrics_json()
    pr["selection"] = {
        "chosen": "a|b",
        "rule": "lowest MASE;\nties: the cheaper.",
        "candidates": {
            "a|b": {"mase": 0.5, "mae": None, "interval_coverage": float("nan")},
            "bare": {},
            "not-figures": [1, 2],
            "ensemble": {"mase": 0.4, "weights": {"a|b": 0.5, "bare": None}},
        },
    }
    section = _section(pr, None)
    assert "Selection rule: lowest MASE; ties: the cheaper." in section  # one line, one stop
    assert _names(section) == ["a\\|b", "bare", "ensemble"]
    assert {len(row) for row in _rows(section)} == {9}  # no pipe leaked out of its cell
    assert _row(section, "a\\|b")[:4] == ["**`a\\|b`**", "0.500", DASH, DASH]
    assert _row(section, "bare")[1:] == [DASH] * 7 + [""]
    assert _row(section, "ensemble")[NOTE] == "weights `a\\|b` 0.50"


def test_a_candidate_left_out_on_this_data_says_why() -> None:
    # The evaluate stage records a candidate it could not backtest as {"excluded": reason}.
    pr = auto_metrics()
    why = "model.candidates.mstl_ets: multiplicative form | needs hours > 0;\nuse additive " * 5
    pr["selection"]["candidates"]["mstl_ets"] = {"excluded": why}
    row = _row(_section(pr, auto_metrics()), "mstl_ets")
    assert row[1:8] == [DASH] * 5 + ["0.710", DASH]
    assert row[NOTE].startswith("left out (model.candidates.mstl_ets: multiplicative form \\| ")
    assert row[NOTE].endswith("…)")
    assert len(row[NOTE]) < 200
