"""The experiment report renders every decision, with the evidence and the rule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.experiment.analysis import CONTINUE, KEEP, PROMOTE, Analysis, analyse
from traffic_forecast.experiment.report import HEADLINES, render_markdown, write
from traffic_forecast.experiment.simulate import ErrorModel, simulate_errors, to_log

CFG = ExperimentConfig()


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    sim = simulate_errors(1, 0.9, CFG, np.random.default_rng(8), ErrorModel())[0]
    entries, actuals, experiment = to_log(sim, CFG)
    return analyse(entries, actuals, experiment, CFG)


@pytest.mark.parametrize("decision", [PROMOTE, KEEP, CONTINUE], ids=["promote", "keep", "continue"])
def test_every_decision_renders(analysis: Analysis, decision: str) -> None:
    verdict = dataclasses.replace(analysis.verdict, decision=decision, reason="because")
    text = render_markdown(dataclasses.replace(analysis, verdict=verdict))
    assert text.startswith(f"# Experiment `exp-sim`: {HEADLINES[decision]}")
    assert f"**{decision}**: because." in text
    for part in ("| champion |", "| challenger |", "| 24 |", "Diebold-Mariano", "## The rule"):
        assert part in text
    assert f"days {CFG.min_days} to {CFG.max_days}" in text
    assert "Guardrails: no breach" in text


def test_a_report_before_any_scored_day_says_so(analysis: Analysis) -> None:
    verdict = dataclasses.replace(analysis.verdict, test=None, boundary_t=None)
    text = render_markdown(dataclasses.replace(analysis, verdict=verdict))
    assert "no statistic yet" in text


def test_write_puts_the_report_and_its_json(analysis: Analysis, tmp_path: Path) -> None:
    write(analysis, tmp_path / "experiment.md", tmp_path / "experiment.json")
    assert (tmp_path / "experiment.md").read_text(encoding="utf-8") == render_markdown(analysis)
    saved = json.loads((tmp_path / "experiment.json").read_text(encoding="utf-8"))
    assert saved == analysis.as_json()
    assert saved["verdict"]["decision"] == analysis.verdict.decision
