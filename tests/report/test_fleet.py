"""The PR report in fleet mode: per-series metrics aggregated, their spread, the worst, the gate."""

from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd
import pytest

from tests.report.samples import FAILED, GATE, auto_metrics, metrics_json, report_inputs
from traffic_forecast.core.config import GateConfig
from traffic_forecast.core.errors import ConfigError, PipelineInputError
from traffic_forecast.report import render_json, render_markdown
from traffic_forecast.report.fleet import (
    aggregate,
    bin_labels,
    fleet_checks,
    fleet_verdict,
    parse_fleet_metrics,
    ratio_histogram,
    ratio_quantiles,
    worst_series,
)
from traffic_forecast.report.fleet_section import fleet_json, fleet_section
from traffic_forecast.report.gate import apply_gate, lock_checks
from traffic_forecast.report.render import CANDIDATES, FLEET, SECTIONS
from traffic_forecast.report.sections import DASH

SERIES = 50
REGIONS = ("eu", "us", "ap", "sa", "af")


def fleet(
    mases: list[float],
    baselines: list[float] | None = None,
    traffic: list[float] | None = None,
    maes: list[float] | None = None,
) -> pd.DataFrame:
    """A per-series table as the report reads it (through the contract): series s00, s01 …."""
    count = len(mases)
    frame = pd.DataFrame(
        {
            "series_id": [f"s{i:02d}" for i in range(count)],
            "region": [REGIONS[i % len(REGIONS)] for i in range(count)],
            "service": [f"svc{i // len(REGIONS)}" for i in range(count)],
            "mase": mases,
            "baseline_mase": baselines or [1.0] * count,
            "mae": maes or [100.0 * m for m in mases],
            "actual_mean": traffic or [1000.0] * count,
        }
    )
    return parse_fleet_metrics(frame.to_csv(index=False), "reports/fleet_metrics.csv")


def _worst_ids(section: str) -> list[str]:
    table = section.split("worst series**")[1]
    return re.findall(r"^\| \d+ \| `(s\d+)`", table, flags=re.MULTILINE)


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"mase": -0.1}, "mase"),
        ({"baseline_mase": 0.0}, "baseline_mase"),
        ({"series_id": "s01"}, "series_id"),  # a duplicate id
        ({"actual_mean": float("inf")}, "actual_mean"),
    ],
    ids=["negative-mase", "zero-naive", "duplicate-id", "infinite-traffic"],
)
def test_a_table_breaking_the_contract_is_refused_naming_file_and_column(
    change: dict[str, object], named: str
) -> None:
    frame = fleet([0.5, 0.6, 0.7]).drop(columns="ratio")
    for column, value in change.items():
        frame.loc[0, column] = value
    with pytest.raises(PipelineInputError, match=rf"fleet\.csv.*column {named}\b"):
        parse_fleet_metrics(frame.to_csv(index=False), "fleet.csv")


def test_a_missing_or_unknown_column_and_an_empty_table_are_refused() -> None:
    frame = fleet([0.5, 0.6]).drop(columns="ratio")
    with pytest.raises(PipelineInputError, match="actual_mean"):
        parse_fleet_metrics(frame.drop(columns="actual_mean").to_csv(index=False), "f.csv")
    with pytest.raises(PipelineInputError, match="smape"):
        parse_fleet_metrics(frame.assign(smape=1.0).to_csv(index=False), "f.csv")
    with pytest.raises(PipelineInputError, match="no series"):
        parse_fleet_metrics(frame.head(0).to_csv(index=False), "f.csv")


# --- aggregates and distribution --------------------------------------------------------------


def test_aggregates_by_hand() -> None:
    # a beats naive (0.5 vs 1), b does not (1.5 vs 1), c does (1 vs 2) but carries no traffic
    figures = aggregate(fleet([0.5, 1.5, 1.0], [1.0, 1.0, 2.0], traffic=[100.0, 300.0, 0.0]))
    assert figures.series == 3
    assert figures.mase == pytest.approx(1.0)
    assert figures.baseline_mase == pytest.approx(4 / 3)
    assert figures.ratio == pytest.approx(0.75)
    assert figures.mase_weighted == pytest.approx((0.5 * 100 + 1.5 * 300) / 400)  # 1.25
    assert figures.ratio_weighted == pytest.approx(1.25)  # naive weighted: 1.0
    assert figures.share_beating == pytest.approx(2 / 3)


def test_weighted_figures_are_left_out_when_no_series_has_traffic() -> None:
    figures = aggregate(fleet([0.5, 1.5], traffic=[0.0, 0.0]))
    assert figures.mase_weighted is None
    assert figures.ratio_weighted is None
    section = fleet_section(fleet([0.5, 1.5], traffic=[0.0, 0.0]), None, GATE) or ""
    assert f"| MASE, traffic-weighted | {DASH} | {DASH} | {DASH} |  |" in section
    assert f"| MASE, mean over series | {DASH} | 1.000 | {DASH} |  |" in section


def test_ratio_quantiles_and_histogram_of_fifty_series() -> None:
    table = fleet([i / 10 for i in range(1, SERIES + 1)])  # ratios 0.1, 0.2, … 5.0
    assert ratio_quantiles(table) == pytest.approx(
        {"p10": 0.59, "p50": 2.55, "p90": 4.51, "max": 5.0}
    )
    # a ratio on an edge (0.5, 0.9, 1.0, 1.1, 1.5) counts in the bin above it
    assert dict(zip(bin_labels(), ratio_histogram(table), strict=True)) == {
        "0-0.5": 4,
        "0.5-0.75": 3,
        "0.75-0.9": 1,
        "0.9-1": 1,
        "1-1.1": 1,
        "1.1-1.25": 2,
        "1.25-1.5": 2,
        "1.5+": 36,
    }


def test_the_section_shows_the_quantiles_and_a_mermaid_bar_chart() -> None:
    section = fleet_section(fleet([i / 10 for i in range(1, SERIES + 1)]), None, GATE) or ""
    assert "| PR | 0.590 | 2.550 | 4.510 | 5.000 |" in section
    chart = re.search(r"```mermaid\n(.*?)```", section, flags=re.DOTALL)
    assert chart is not None
    assert "xychart-beta" in chart.group(1)
    assert "    bar [4, 3, 1, 1, 1, 2, 2, 36]" in chart.group(1)
    assert "line" not in chart.group(1)  # no base to draw


# --- the worst series -------------------------------------------------------------------------


def test_the_ten_worst_are_picked_by_ratio_then_mae() -> None:
    mases = [0.5 + (i % 7) / 100 for i in range(SERIES)]  # all beat naive
    mases[3], mases[41], mases[17] = 2.0, 2.0, 3.0  # 3 worst; 3 and 41 tie on the ratio
    maes = [100.0] * SERIES
    maes[41] = 500.0  # so 41 comes before 3
    for i in (10, 20, 30, 40, 44, 48, 49):
        mases[i] = 1.0 + i / 1000  # then these, higher id higher ratio
    table = fleet(mases, maes=maes)
    worst = worst_series(table)
    assert worst["series_id"].tolist() == [
        "s17", "s41", "s03", "s49", "s48", "s44", "s40", "s30", "s20", "s10",
    ]  # fmt: skip
    section = fleet_section(table, None, GATE) or ""
    assert _worst_ids(section) == worst["series_id"].tolist()
    assert f"| 1 | `s17` | `ap` | `svc3` | 3.000 | 3.000 | 100 | {DASH} | {DASH} |  |" in section


def test_vs_base_each_series_shows_its_change_and_whether_it_got_worse() -> None:
    base = fleet([1.0] * 5)
    pr = fleet([1.2, 1.05, 0.9, 1.0, 1.0, 0.5])  # s05 is new; s00 +20 %, s01 +5 % (allowed)
    section = fleet_section(pr, base, GATE) or ""
    assert (
        "| 1 | `s00` | `eu` | `svc0` | 1.200 | 1.200 | 120 | 1.000 | +20.0 % | 🔴 worse |"
        in section
    )
    assert "| 2 | `s01` | `us` | `svc0` | 1.050 | 1.050 | 105 | 1.000 | +5.0 % |  |" in section
    assert f"| 6 | `s05` | `eu` | `svc1` | 0.500 | 0.500 | 50 | {DASH} | {DASH} | new |" in section
    assert "| series worse than base by > 5 % | | 1 of 5 (20.0%) | | ❌ at most 10 % |" in section
    assert "1 series only on this PR (new)." in section
    dropped = fleet_section(fleet([1.0] * 3), base, GATE) or ""
    assert "2 series only on the base: `s03`, `s04`." in dropped


# --- the gate ---------------------------------------------------------------------------------


def _passed(checks: list[object]) -> dict[str, bool]:
    return {c.key: c.passed for c in checks}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mase", "passed"),
    [(0.999, True), (1.0, False), (1.2, False)],
    ids=["just-below", "equal-to-naive", "worse-than-naive"],
)
def test_the_gate_fails_when_the_fleet_ratio_is_not_below_its_limit(
    mase: float, passed: bool
) -> None:
    # half the series well below naive, half above: only the aggregate ratio counts
    pr = fleet([mase - 0.3] * 25 + [mase + 0.3] * 25)
    assert _passed(fleet_checks(pr, None, GATE)) == {"ratio": passed}
    looser = replace(GATE, fleet_max_mase_ratio=1.25)
    assert _passed(fleet_checks(pr, None, looser)) == {"ratio": True}


@pytest.mark.parametrize(
    ("pr_mase", "passed"),
    [(1.02, True), (1.021, False)],
    ids=["at-the-tolerance", "beyond-it"],
)
def test_the_gate_fails_when_the_fleet_mase_got_worse_than_base_beyond_tolerance(
    pr_mase: float, passed: bool
) -> None:
    base = fleet([1.0] * SERIES, [2.0] * SERIES)
    pr = fleet([pr_mase] * SERIES, [2.0] * SERIES)  # every series +2 %: none beyond 5 %
    assert _passed(fleet_checks(pr, base, GATE)) == {
        "ratio": True,
        "mase": passed,
        "share_worse": True,
    }


@pytest.mark.parametrize(
    ("beyond", "passed"), [(0, True), (5, True), (6, False)], ids=["none", "ten-pct", "twelve-pct"]
)
def test_the_gate_fails_when_too_many_series_got_worse(beyond: int, passed: bool) -> None:
    # 10 series exactly at the 5 % tolerance (not worse), `beyond` series at +6 % (worse)
    mases = [1.06] * beyond + [1.05] * 10 + [1.0] * (SERIES - 10 - beyond)
    base = fleet([1.0] * SERIES, [2.0] * SERIES)
    checks = fleet_checks(fleet(mases, [2.0] * SERIES), base, GATE)
    assert _passed(checks) == {"ratio": True, "mase": True, "share_worse": passed}
    share = next(c for c in checks if c.key == "share_worse")
    assert (
        share.text == f"{beyond} of {SERIES} series worse by more than 5 % vs base (at most 10 %)"
    )


def test_without_base_fleet_or_on_new_data_only_the_ratio_is_judged() -> None:
    worse = fleet([0.9] * SERIES)
    base = fleet([0.5] * SERIES)
    assert _passed(fleet_checks(worse, base, GATE)) == {
        "ratio": True,
        "mase": False,
        "share_worse": False,
    }
    assert _passed(fleet_checks(worse, base, GATE, same_data=False)) == {"ratio": True}
    assert _passed(fleet_checks(worse, None, GATE)) == {"ratio": True}


def test_the_fleet_checks_join_the_verdict_and_the_label_overrides_them() -> None:
    failing = fleet_checks(fleet([1.1] * SERIES), None, GATE)
    alone = fleet_verdict(None, failing, GATE, [], lock_checks(GATE, {"current": True}))
    assert not alone.passed
    assert alone.checks[0] == ("dvc.lock is current", True)
    assert alone.headline().startswith("❌ Gate failed: fleet MASE ratio to seasonal naive 1.100")
    overridden = fleet_verdict(None, failing, GATE, [GATE.override_label])
    assert overridden.passed
    assert overridden.overridden
    single = apply_gate(metrics_json(0.49), metrics_json(), GATE, [])
    both = fleet_verdict(single, failing, GATE, [])
    assert both.checks[: len(single.checks)] == single.checks
    assert both.judged == single.judged
    assert not both.passed


@pytest.mark.parametrize(
    "setting",
    [
        {"fleet_max_share_worse": 1.5},
        {"fleet_max_share_worse": -0.1},
        {"fleet_series_tolerance_pct": -1.0},
        {"fleet_max_mase_ratio": 0.0},
    ],
    ids=["share-above-1", "share-negative", "tolerance-negative", "ratio-zero"],
)
def test_a_fleet_setting_out_of_range_is_refused_by_name(setting: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=f"gate.{next(iter(setting))}="):
        GateConfig(**setting)  # type: ignore[arg-type]


# --- the report -------------------------------------------------------------------------------


def test_no_fleet_metrics_no_fleet_section() -> None:
    assert fleet_section(None, fleet([1.0]), GATE) is None
    assert fleet_json(None, None, GATE) is None
    inputs = report_inputs()
    assert FLEET not in render_markdown(inputs)
    assert render_json(inputs)["fleet"] is None


def test_the_fleet_section_comes_after_metrics_and_candidates_before_plots() -> None:
    pr, base = fleet([0.5] * SERIES), fleet([0.5] * SERIES)
    inputs = report_inputs(pr_metrics=auto_metrics(), fleet_pr=pr, fleet_base=base)
    report = render_markdown(inputs)
    at = [report.index(f"\n{h}\n") for h in (SECTIONS[2], CANDIDATES, FLEET, SECTIONS[3])]
    assert at == sorted(at)
    payload = render_json(inputs)["fleet"]
    assert payload["aggregate"]["pr"]["ratio"] == pytest.approx(0.5)
    assert payload["vs_base"] == {
        "compared": SERIES,
        "worse": 0,
        "share_worse": 0.0,
        "tolerance_pct": 5.0,
        "new": 0,
        "dropped": [],
    }
    assert [c["passed"] for c in payload["checks"]] == [True, True, True]
    assert len(payload["worst"]) == 10


def test_a_fleet_only_run_shows_params_and_the_fleet_and_its_verdict() -> None:
    pr = fleet([1.1] * SERIES)
    verdict = fleet_verdict(None, fleet_checks(pr, None, GATE), GATE, [])
    inputs = report_inputs(pr_metrics=None, base_metrics=None, fleet_pr=pr, verdict=verdict)
    report = render_markdown(inputs)
    assert report.startswith("**❌ Gate failed: fleet MASE ratio to seasonal naive 1.100")
    assert f"\n{SECTIONS[1]}\n" in report
    assert f"\n{FLEET}\n" in report
    assert "No `reports/metrics.json`" not in report
    assert SECTIONS[2] not in report
    assert "The base has no fleet metrics: nothing compared with it." in report


def test_failed_validation_hides_the_fleet() -> None:
    inputs = report_inputs(validation=FAILED, fleet_pr=fleet([0.5]))
    assert FLEET not in render_markdown(inputs)
    assert render_json(inputs)["fleet"] is None
