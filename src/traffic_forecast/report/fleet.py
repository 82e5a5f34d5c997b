"""Fleet mode's figures and gate: per-series backtest metrics, aggregated and compared with base.

The fleet evaluate step writes ``reports/fleet_metrics.csv`` (`outputs.FLEET_METRICS`), one row
per series, in the shape of `FleetSeriesMetrics`. Everything here is pure: frames in, figures out.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
from pandera.typing import Series

from traffic_forecast.core.config import GateConfig
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.report.gate import Verdict, decide

RATIO = "ratio"  # derived: a series' MASE over its seasonal naive MASE; below 1 beats it
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9, "max": 1.0}
# Bins of the ratio histogram, [low, high): finer around 1, where a series turns worse than naive.
RATIO_EDGES = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
WORST_SHOWN = 10
# Figures the gate compares with a limit are rounded: float noise must not decide a boundary.
ROUND_DIGITS = 9
MAX_FAILURES_SHOWN = 10  # schema failures listed in the error message


class FleetSeriesMetrics(pa.DataFrameModel):
    """``reports/fleet_metrics.csv``: one series' backtest, its model against seasonal naive.

    Both MASE figures are scored on the same folds of the same series with the same in-sample
    scale, so their ratio is the model's MAE over seasonal naive's.
    """

    series_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    region: Series[str]
    service: Series[str]
    mase: Series[float] = pa.Field(ge=0.0)
    baseline_mase: Series[float] = pa.Field(gt=0.0)
    mae: Series[float] = pa.Field(ge=0.0)
    actual_mean: Series[float] = pa.Field(ge=0.0)  # mean hourly traffic: the series' weight

    @pa.check("mase", "baseline_mase", "mae", "actual_mean", name="finite")
    @classmethod
    def finite(cls, values: pd.Series) -> pd.Series:
        """No infinities (NaN is refused by the columns being non-nullable)."""
        return pd.Series(np.isfinite(values.to_numpy(dtype=float)), index=values.index)

    class Config:
        """Columns typed from CSV text; an unknown column is an error, not silently ignored."""

        strict = True
        coerce = True


S = FleetSeriesMetrics  # short for the column names


def parse_fleet_metrics(text: str, source: str) -> pd.DataFrame:
    """The per-series table of a ``fleet_metrics.csv`` text, checked against its contract.

    Raises `PipelineInputError` naming ``source`` and every failed check (lazily collected).
    """
    frame = pd.read_csv(io.StringIO(text), dtype={S.series_id: str, S.region: str, S.service: str})
    try:
        checked = FleetSeriesMetrics.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(MAX_FAILURES_SHOWN)
        found = "; ".join(
            f"column {row.column}, check {row.check}, value {row.failure_case!r}"
            for row in cases.itertuples()
        )
        raise PipelineInputError(
            f"{source} breaks the fleet metrics contract ({len(exc.failure_cases)} failures: "
            f"{found}): rerun the fleet evaluate stage"
        ) from exc
    if checked.empty:
        raise PipelineInputError(f"{source} has no series: rerun the fleet evaluate stage")
    return with_ratio(checked)


def with_ratio(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with each series' MASE ratio to seasonal naive (`RATIO`)."""
    return frame.assign(**{RATIO: frame[S.mase] / frame[S.baseline_mase]})


@dataclass(frozen=True)
class FleetAggregate:
    """The fleet's figures: each series counts once, or weighted by its traffic."""

    series: int
    mase: float  # mean of the series' MASE
    mase_weighted: float | None  # weighted by mean traffic; None when every series had none
    baseline_mase: float
    ratio: float  # mean MASE over mean seasonal naive MASE: what the gate judges
    ratio_weighted: float | None
    share_beating: float  # share of series with a MASE below their seasonal naive's


def _weighted(values: pd.Series, weights: pd.Series) -> float | None:
    total = float(weights.sum())
    return float((values * weights).sum()) / total if total > 0 else None


def aggregate(frame: pd.DataFrame) -> FleetAggregate:
    """The fleet's figures from its per-series table (non-empty, `FleetSeriesMetrics`)."""
    weights = frame[S.actual_mean]
    mase, naive = float(frame[S.mase].mean()), float(frame[S.baseline_mase].mean())
    mase_w, naive_w = _weighted(frame[S.mase], weights), _weighted(frame[S.baseline_mase], weights)
    return FleetAggregate(
        series=len(frame),
        mase=mase,
        mase_weighted=mase_w,
        baseline_mase=naive,
        ratio=mase / naive,
        ratio_weighted=None if mase_w is None or not naive_w else mase_w / naive_w,
        share_beating=float((frame[S.mase] < frame[S.baseline_mase]).mean()),
    )


def ratio_quantiles(frame: pd.DataFrame) -> dict[str, float]:
    """p10, p50, p90 and max of the per-series ratio (linear interpolation between series)."""
    ratios = frame[RATIO]
    return {name: float(ratios.quantile(q)) for name, q in QUANTILES.items()}


def bin_labels() -> list[str]:
    """The histogram's bins as text: ``0-0.5``, ``0.5-0.75``, …, ``1.5+``."""
    lows = (0.0, *RATIO_EDGES)
    return [f"{lo:g}-{hi:g}" for lo, hi in zip(lows, RATIO_EDGES, strict=False)] + [
        f"{RATIO_EDGES[-1]:g}+"
    ]


def ratio_histogram(frame: pd.DataFrame) -> list[int]:
    """Series per bin of `bin_labels`; a ratio on an edge counts in the bin above it."""
    positions = np.searchsorted(RATIO_EDGES, frame[RATIO].to_numpy(dtype=float), side="right")
    return [int(n) for n in np.bincount(positions, minlength=len(RATIO_EDGES) + 1)]


def _pct(new: float, old: float) -> float:
    if old == 0:
        return math.inf if new > 0 else 0.0
    return round((new - old) / old * 100, ROUND_DIGITS)


@dataclass(frozen=True)
class Comparison:
    """The PR's series against the same series on the base."""

    table: pd.DataFrame  # the PR's rows, with base_mase, base_ratio, change_pct, worse (or NaN)
    compared: int  # series on both sides
    worse: int  # of those, series whose MASE rose by more than the tolerance
    new: int  # series only the PR has
    dropped: list[str]  # series only the base has

    @property
    def share_worse(self) -> float:
        """Share of the compared series that got worse (0 when none could be compared)."""
        return self.worse / self.compared if self.compared else 0.0


def compare(pr: pd.DataFrame, base: pd.DataFrame | None, tolerance_pct: float) -> Comparison:
    """Each PR series' MASE change vs the base; worse when it rose more than ``tolerance_pct``."""
    theirs = pd.DataFrame(columns=[S.series_id, "base_mase", "base_ratio"])
    if base is not None:
        theirs = base[[S.series_id, S.mase, RATIO]].set_axis(
            [S.series_id, "base_mase", "base_ratio"], axis=1
        )
    table = pr.merge(theirs, on=S.series_id, how="left")
    on_base = table["base_mase"].notna()
    changes = [
        _pct(new, old) if both else math.nan
        for new, old, both in zip(table[S.mase], table["base_mase"], on_base, strict=True)
    ]
    table = table.assign(change_pct=changes, worse=[c > tolerance_pct for c in changes])
    dropped = sorted(set(theirs[S.series_id]) - set(pr[S.series_id]))
    return Comparison(
        table=table,
        compared=int(on_base.sum()),
        worse=int(table["worse"].sum()),
        new=int((~on_base).sum()),
        dropped=[str(series) for series in dropped],
    )


def worst_series(table: pd.DataFrame, count: int = WORST_SHOWN) -> pd.DataFrame:
    """The ``count`` worst series: highest ratio first, then highest MAE, then by id."""
    ordered = table.sort_values(
        [RATIO, S.mae, S.series_id], ascending=[False, False, True], kind="mergesort"
    )
    return ordered.head(count).reset_index(drop=True)


@dataclass(frozen=True)
class FleetCheck:
    """One fleet gate check: what it judged (a row of the fleet table), its text and result."""

    key: str  # "ratio", "mase" or "share_worse"
    limit: str
    text: str
    passed: bool


def fleet_checks(
    pr: pd.DataFrame, base: pd.DataFrame | None, gate: GateConfig, *, same_data: bool = True
) -> list[FleetCheck]:
    """The gate on the fleet: its ratio to naive, its MASE vs base, the share of series worse.

    Against the base only when it has fleet metrics on the same data, as for a single series.
    """
    ours = aggregate(pr)
    limit = f"below {gate.fleet_max_mase_ratio:g}"
    checks = [
        FleetCheck(
            "ratio",
            limit,
            f"fleet MASE ratio to seasonal naive {ours.ratio:.3f} ({limit})",
            round(ours.ratio, ROUND_DIGITS) < gate.fleet_max_mase_ratio,
        )
    ]
    if base is None or not same_data:
        return checks
    change = _pct(ours.mase, aggregate(base).mase)
    mase_limit = f"at most +{gate.max_mase_regression_pct:g} % vs base"
    checks.append(
        FleetCheck(
            "mase",
            mase_limit,
            f"fleet MASE {change:+.1f} % vs base ({mase_limit.removesuffix(' vs base')})",
            change <= gate.max_mase_regression_pct,
        )
    )
    found = compare(pr, base, gate.fleet_series_tolerance_pct)
    share_limit = f"at most {gate.fleet_max_share_worse * 100:g} %"
    # Compared as counts: 5 of 50 is exactly 10 %, whatever the float 0.1 * 50 rounds to.
    allowed = round(gate.fleet_max_share_worse * found.compared, ROUND_DIGITS)
    checks.append(
        FleetCheck(
            "share_worse",
            share_limit,
            f"{found.worse} of {found.compared} series worse by more than "
            f"{gate.fleet_series_tolerance_pct:g} % vs base ({share_limit})",
            found.worse <= allowed,
        )
    )
    return checks


def fleet_verdict(
    single: Verdict | None,
    checks: list[FleetCheck],
    gate: GateConfig,
    labels: list[str],
    lock_checks: Sequence[tuple[str, bool]] = (),
) -> Verdict:
    """The single-series verdict (if metrics.json was judged) with the fleet checks after it.

    Without one, ``lock_checks`` (`gate.lock_checks`) stand in for the checks it would have run.
    """
    before = list(single.checks) if single is not None else list(lock_checks)
    judged = list(single.judged) if single is not None else []
    return decide(before + [(c.text, c.passed) for c in checks], judged, gate, labels)
