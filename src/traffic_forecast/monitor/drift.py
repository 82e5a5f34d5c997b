"""Drift and decay, as pure functions of series: what changed in the inputs, how the model fares.

Data drift is a change in what the model is given (traffic level, its weekly profile, the sale
kinds, the capacity of an instance). Concept drift is the model's error rising while the
inputs look as they did in training: the relation between them moved. Each check compares a
recent window with a reference window from the end of the training data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from traffic_forecast.core.config import MonitorConfig

WEEK = 168


@dataclass(frozen=True)
class Check:
    """One comparison: its figure, its limit, and whether it is breached."""

    name: str
    kind: str  # data (an input moved) or quality (the model's error)
    value: float | None
    limit: float
    breached: bool
    text: str


@dataclass(frozen=True)
class Quality:
    """The live model's realised error on the hours it forecast and that have actuals."""

    hours: int
    mae: float | None
    mape: float | None
    coverage: float | None  # share of actuals inside the prediction interval
    by_day: list[dict[str, Any]] = field(default_factory=list)
    by_hour_of_week: list[float | None] = field(default_factory=list)  # MAE per hour of week


@dataclass(frozen=True)
class Verdict:
    """All checks, and what they add up to."""

    checks: list[Check]
    quality: Quality
    data_drift: bool
    degraded: bool
    concept_drift: bool
    cadence_due: bool
    new_sale_kinds: list[str]

    @property
    def breached(self) -> list[Check]:
        """The checks over their limits."""
        return [c for c in self.checks if c.breached]

    @property
    def retrain(self) -> bool:
        """Whether to propose a retrain: drift, decay, or the cadence."""
        return self.data_drift or self.degraded or self.cadence_due

    @property
    def reasons(self) -> list[str]:
        """Why a retrain is proposed, in words."""
        reasons = [c.text for c in self.breached]
        if self.cadence_due:
            reasons.append("the retraining cadence is due")
        return reasons

    def headline(self) -> str:
        """One line for the report and the alert."""
        if self.concept_drift:
            return "🔴 Concept drift: the error rose while the inputs look as in training"
        if self.data_drift and self.degraded:
            return "🔴 Data drift, and the model's error rose with it"
        if self.data_drift:
            return "🟠 Data drift: the inputs moved; the error has not risen (yet)"
        if self.degraded:
            return "🔴 The model's error rose"
        if self.cadence_due:
            return "🟢 No drift; a scheduled retrain is due"
        return "🟢 No drift, no decay"

    def as_json(self) -> dict[str, Any]:
        """Everything, for tools (the retrain step reads ``retrain`` and ``reasons``)."""
        return {
            "headline": self.headline(),
            "data_drift": self.data_drift,
            "degraded": self.degraded,
            "concept_drift": self.concept_drift,
            "cadence_due": self.cadence_due,
            "retrain": self.retrain,
            "reasons": self.reasons,
            "new_sale_kinds": self.new_sale_kinds,
            "checks": [asdict(c) for c in self.checks],
            "quality": asdict(self.quality),
        }


def weekly_profile(series: pd.Series) -> pd.Series:
    """Mean per hour of week, divided by the overall mean: the shape, without the level."""
    stamps = pd.DatetimeIndex(series.index)
    profile = series.groupby(stamps.dayofweek * 24 + stamps.hour).mean()
    return profile.reindex(range(WEEK)) / series.mean()


def _shift_check(name: str, text: str, recent: float, reference: float, limit: float) -> Check:
    """``recent`` against ``reference`` in percent, breached beyond ±``limit``.

    ``text`` says what moved, with ``{change}`` where the change goes.
    """
    change = (recent / reference - 1) * 100
    return Check(
        name,
        "data",
        float(change),
        limit,
        bool(abs(change) > limit),
        text.format(change=f"{change:+.1f} %") + f" (limit ±{limit:g} %)",
    )


def level_check(reference: pd.Series, recent: pd.Series, cfg: MonitorConfig) -> Check:
    """Mean level of the recent window against the reference window."""
    text = "traffic level {change} vs the end of training"
    return _shift_check("level", text, recent.mean(), reference.mean(), cfg.level_shift_pct)


def profile_check(reference: pd.Series, recent: pd.Series, cfg: MonitorConfig) -> Check:
    """Mean absolute difference of the two normalised weekly profiles."""
    shift = float(np.nanmean(np.abs(weekly_profile(recent) - weekly_profile(reference))))
    limit = cfg.profile_shift
    return Check(
        "profile",
        "data",
        shift,
        limit,
        shift > limit,
        f"weekly profile moved by {shift:.3f} of the mean (limit {limit:g})",
    )


def kinds_check(known: list[str], seen: list[str]) -> tuple[Check, list[str]]:
    """Sale kinds in the new sale calendar that the model was not trained on."""
    new = sorted(set(seen) - set(known))
    text = f"new sale kinds: {', '.join(new)}" if new else "no new sale kind"
    return Check("sale_kinds", "data", float(len(new)), 0.0, bool(new), text), new


def capacity_check(
    reference: float | None, recent: float | None, cfg: MonitorConfig
) -> Check | None:
    """Per-instance capacity learnt on the recent window against the one serving uses."""
    if reference is None or recent is None:
        return None
    text = "sessions per instance {change} vs training"
    return _shift_check("capacity", text, recent, reference, cfg.capacity_shift_pct)


def quality(forecast: pd.DataFrame, actuals: pd.Series) -> Quality:
    """Error of ``forecast`` (index: hour; columns value, lower, upper) on the actual hours."""
    common = forecast.index.intersection(actuals.index)
    if len(common) == 0:
        return Quality(0, None, None, None)
    actual, ours = actuals[common], forecast.loc[common]
    errors = (ours["value"] - actual).abs()
    inside = (actual >= ours["lower"]) & (actual <= ours["upper"])
    stamps = pd.DatetimeIndex(common)
    by_day = [
        {"day": f"{day:%Y-%m-%d}", "mae": float(group.mean()), "hours": len(group)}
        for day, group in errors.groupby(stamps.normalize())
    ]
    by_how = errors.groupby(stamps.dayofweek * 24 + stamps.hour).mean().reindex(range(WEEK))
    return Quality(
        len(common),
        float(errors.mean()),
        float((errors / actual.clip(lower=1.0)).mean() * 100),
        float(inside.mean()),
        by_day,
        [None if np.isnan(v) else float(v) for v in by_how],
    )


def quality_checks(
    measured: Quality, backtest_mae: float, nominal: float, cfg: MonitorConfig
) -> list[Check]:
    """Realised error against the backtest's, and interval coverage against its nominal."""
    if measured.mae is None or measured.hours < cfg.min_hours:
        return []
    increase = (measured.mae / backtest_mae - 1) * 100
    checks = [
        Check(
            "error",
            "quality",
            float(increase),
            cfg.error_increase_pct,
            increase > cfg.error_increase_pct,
            f"MAE {measured.mae:,.0f} on {measured.hours} h is {increase:+.0f} % vs the backtest's "
            f"{backtest_mae:,.0f} (limit +{cfg.error_increase_pct:g} %)",
        )
    ]
    if measured.coverage is not None:
        drop = (nominal - measured.coverage) * 100
        checks.append(
            Check(
                "coverage",
                "quality",
                float(drop),
                cfg.coverage_drop_pp,
                drop > cfg.coverage_drop_pp,
                f"interval coverage {measured.coverage:.0%} vs nominal {nominal:.0%} "
                f"(limit -{cfg.coverage_drop_pp:g} pp)",
            )
        )
    return checks


def decide(
    data_checks: list[Check],
    quality_checks_: list[Check],
    measured: Quality,
    new_kinds: list[str],
    cadence_due: bool,
) -> Verdict:
    """Data drift, decay, and concept drift (decay while no data check fired)."""
    data_drift = any(c.breached for c in data_checks)
    degraded = any(c.breached for c in quality_checks_)
    return Verdict(
        [*data_checks, *quality_checks_],
        measured,
        data_drift,
        degraded,
        degraded and not data_drift,
        cadence_due,
        new_kinds,
    )
