"""Champion vs challenger, scored on the hours that really came: the experiment's analysis.

The pure core `analyse` turns the prediction log's entries, the actuals and the experiment into
an `Analysis`: each arm's error, the paired test and the decision of the day's look. `decide`
holds the decision rule alone, on the daily loss differentials; the simulation
(``simulate.py``) calls the very same function, so its error rates are the rule's.

Pairing: per arm and forecast origin one answer is kept (the longest, and of those the last
logged); an origin is scored when both arms answered from it for steps 1..horizon and every
one of those hours has its actual. A forecast's loss differential is |champion's error| -
|challenger's error| (positive: the challenger was better).

The test runs on days, not on hourly origins. Forecasts from neighbouring origins share 23 of
their 24 target hours and errors persist for hours, so with a week of data there are only about
seven independent pieces of evidence; a Bartlett HAC variance with lag horizon - 1 over the
hourly origins then recovers about half the true variance, and in simulation
(``simulate.py``) promoted an equal challenger 16-23 % of the time instead of 5 %. Grouping
every scored forecast by the day (24 h from the first origin) of its target hour leaves days
that are nearly independent; their mean difference is tested by Diebold-Mariano with a
Bartlett HAC variance of lag 2 days (errors carry across midnight) in its small-sample form
(``sequential.diebold_mariano``): 5-6 % false promotions in simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.experiment.record import ARMS, CHALLENGER, CHAMPION, ENDED, Experiment
from traffic_forecast.experiment.sequential import (
    DieboldMariano,
    FloatArray,
    daily_boundaries,
    diebold_mariano,
    t_critical,
)

PROMOTE, KEEP, CONTINUE = "promote", "keep champion", "continue"
HOURS_PER_DAY = 24
_FIELDS = ["experiment", "arm", "model_version", "what_if", "fallback", "origin", "value"]


@dataclass(frozen=True)
class Verdict:
    """The decision of one look at the loss differentials so far."""

    decision: str  # promote | keep champion | continue
    reason: str
    days: float  # scored origins / 24
    look: int  # the daily look whose boundary applies (min_days..max_days)
    boundary: float  # promote at z >= boundary; keep the champion at z <= -boundary
    boundary_t: float | None  # the same boundary on the scale of t (the test's df)
    test: DieboldMariano | None  # on the daily differentials; None: fewer than 2 whole days


@dataclass(frozen=True)
class ArmScore:
    """One arm's realised accuracy on the scored origins."""

    arm: str
    model: str
    models_logged: tuple[str, ...]  # model_version values its counted answers carried
    answers: int  # answers counted (this experiment, neither what-if nor fallback)
    origins: int  # distinct origins it answered from
    scored_origins: int
    mae: float | None
    mase: float | None
    mae_by_step: tuple[float, ...]
    mase_by_step: tuple[float, ...]


@dataclass(frozen=True)
class Scale:
    """The MASE denominator: the seasonal naive's MAE over the weeks before the first origin."""

    value: float | None
    start: str | None  # first and last hour whose seasonal-naive error was used
    end: str | None
    hours: int
    description: str


@dataclass(frozen=True)
class Analysis:
    """Everything the report and the workflow need to state and act on the decision."""

    experiment: str
    mode: str
    status: str
    champion: ArmScore
    challenger: ArmScore
    scored_origins: int
    first_origin: str | None
    last_origin: str | None
    scale: Scale
    mae_difference: float | None  # challenger - champion: negative when the challenger is better
    ci_low: float | None
    ci_high: float | None
    ci_description: str
    verdict: Verdict
    guardrail: str
    rule: str
    settings: dict[str, float | int]

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types; non-finite numbers become null."""
        plain: dict[str, Any] = _plain(asdict(self))
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


DAY_LAG = 2  # errors persist across midnight: a day's differential leans on the days before


def decide(
    daily: FloatArray, days: float, cfg: ExperimentConfig, breach: str | None = None
) -> Verdict:
    """The day's decision from the daily loss differentials (positive: challenger better).

    ``days``: scored origins / 24, which picks the look; ``breach``: why a guardrail ended the
    experiment, if one did: the champion stays at once.
    """
    bounds = daily_boundaries(cfg.alpha, cfg.min_days, cfg.max_days)
    look = min(max(math.floor(days), cfg.min_days), cfg.max_days)
    boundary = bounds[look]
    test = diebold_mariano(daily, DAY_LAG) if len(daily) > 1 else None
    boundary_t = None if test is None else t_critical(boundary, test.df)
    decision, reason = _rule(test, days, look=look, boundary=boundary, cfg=cfg, breach=breach)
    return Verdict(decision, reason, days, look, boundary, boundary_t, test)


def _rule(
    test: DieboldMariano | None,
    days: float,
    *,
    look: int,
    boundary: float,
    cfg: ExperimentConfig,
    breach: str | None,
) -> tuple[str, str]:
    if breach is not None:
        return KEEP, f"a guardrail ended the experiment: {breach}"
    if days < cfg.min_days:
        return CONTINUE, f"{days:.1f} days of scored forecasts, fewer than min_days={cfg.min_days}"
    z = None if test is None else test.z
    if z is not None and z >= boundary:
        return PROMOTE, f"challenger better: z = {z:.2f} >= boundary {boundary:.2f} on day {look}"
    if z is not None and z <= -boundary:
        return KEEP, f"challenger worse: z = {z:.2f} <= -{boundary:.2f} on day {look}"
    shown = "n/a" if z is None else f"{z:.2f}"
    if days >= cfg.max_days:
        return KEEP, f"no promotion by max_days={cfg.max_days}: z = {shown} < {boundary:.2f}"
    return CONTINUE, f"z = {shown} within ±{boundary:.2f} on day {look}: not yet decided"


def from_their_arm(entries: list[dict[str, Any]], experiment: Experiment) -> list[dict[str, Any]]:
    """The entries whose model is their arm's.

    A request the router sent to the challenger while it was down was answered (and logged) by
    the champion, under the challenger's arm.
    """
    models = {arm: experiment.arm(arm).model for arm in ARMS}
    return [e for e in entries if models.get(str(e.get("arm"))) == e.get("model_version")]


def counted_answers(entries: list[dict[str, Any]], experiment_id: str) -> pd.DataFrame:
    """The experiment's answers that count, in log order: neither what-if nor fallback.

    Columns: arm, model_version, origin (UTC-naive), length, order (position in the log), value.
    """
    frame = pd.DataFrame(entries, columns=_FIELDS)
    frame["order"] = np.arange(len(frame))
    counted = (
        frame["experiment"].eq(experiment_id)
        & frame["arm"].isin(ARMS)
        & ~frame["what_if"].eq(True)
        & ~frame["fallback"].eq(True)
        & frame["value"].map(lambda v: isinstance(v, list) and len(v) > 0)
    )
    frame = frame[counted]
    origin = pd.to_datetime(frame["origin"], format="ISO8601", utc=True, errors="coerce")
    frame = frame.assign(
        origin=origin.dt.tz_convert(None).astype("datetime64[ns]"),
        length=frame["value"].map(len),
    )
    return frame[frame["origin"].notna()].drop(columns=["experiment", "what_if", "fallback"])


def one_per_origin(answers: pd.DataFrame) -> pd.DataFrame:
    """Per arm and origin the answer kept: the longest, and of those the last logged."""
    ordered = answers.sort_values(["arm", "origin", "length", "order"], kind="stable")
    return ordered.drop_duplicates(["arm", "origin"], keep="last")


def paired_errors(
    entries: list[dict[str, Any]], actuals: pd.Series, experiment_id: str, horizon: int
) -> pd.DataFrame:
    """Both arms' forecasts and errors (forecast - actual) for each scored origin and step.

    Columns: origin, step (1..horizon), hour, actual, champion, challenger, error_champion,
    error_challenger; sorted by origin then step.
    """
    kept = one_per_origin(counted_answers(entries, experiment_id))
    kept = kept[kept["length"] >= horizon]
    by_arm = {arm: kept[kept["arm"] == arm].set_index("origin")["value"] for arm in ARMS}
    origins = by_arm[CHAMPION].index.intersection(by_arm[CHALLENGER].index).sort_values()
    steps = np.arange(horizon)
    hours = (origins.to_numpy()[:, None] + steps.astype("timedelta64[h]")).ravel()
    known = actuals.reindex(pd.DatetimeIndex(hours)).to_numpy(dtype=float)
    actual = known.reshape(len(origins), horizon)
    forecast = {arm: _matrix(by_arm[arm].loc[origins], horizon) for arm in ARMS}
    scored = np.isfinite(actual).all(axis=1)
    for values in forecast.values():
        scored &= np.isfinite(values).all(axis=1)
    n = int(scored.sum())
    frame = pd.DataFrame(
        {
            "origin": np.repeat(origins.to_numpy()[scored], horizon),
            "step": np.tile(steps + 1, n),
            "hour": hours.reshape(len(origins), horizon)[scored].ravel(),
            "actual": actual[scored].ravel(),
            CHAMPION: forecast[CHAMPION][scored].ravel(),
            CHALLENGER: forecast[CHALLENGER][scored].ravel(),
        }
    )
    for arm in ARMS:
        frame[f"error_{arm}"] = frame[arm] - frame["actual"]
    return frame


def _matrix(values: pd.Series, horizon: int) -> FloatArray:
    rows = [np.asarray(v[:horizon], dtype=float) for v in values.tolist()]
    return np.vstack(rows) if rows else np.empty((0, horizon))


def daily_differentials(paired: pd.DataFrame) -> FloatArray:
    """Per whole day since the first scored origin: mean loss differential of its hours' forecasts.

    Day b holds the target hours first origin + 24 b .. + 24 b + 23. It is whole once the
    origin of its last hour is scored; later days wait for the next look. Days without a
    scored forecast (the service was down) are left out.
    """
    if paired.empty:
        return np.empty(0)
    first, last = paired["origin"].min(), paired["origin"].max()
    whole = ((last - first) // pd.Timedelta(hours=1) + 1) // HOURS_PER_DAY
    day = (paired["hour"] - first) // pd.Timedelta(hours=HOURS_PER_DAY)
    loss = paired["error_champion"].abs() - paired["error_challenger"].abs()
    means = loss.groupby(day, sort=True).mean()
    return np.asarray(means[means.index < whole].to_numpy(dtype=float), dtype=float)


def mase_scale(actuals: pd.Series, first_origin: pd.Timestamp, cfg: ExperimentConfig) -> Scale:
    """The seasonal naive's MAE over the ``scale_weeks`` weeks before ``first_origin``."""
    hours = pd.date_range(
        end=first_origin - pd.Timedelta(hours=1), periods=cfg.scale_weeks * 7 * 24, freq="h"
    )
    now = actuals.reindex(hours).to_numpy(dtype=float)
    before = actuals.reindex(hours - pd.Timedelta(hours=cfg.season)).to_numpy(dtype=float)
    errors = np.abs(now - before)
    used = hours[np.isfinite(errors)]
    what = f"seasonal naive ({cfg.season} h) MAE of the actuals over the {cfg.scale_weeks} weeks"
    if len(used) == 0 or float(np.nanmean(errors)) <= 0:
        return Scale(None, None, None, 0, f"{what} before the first origin: not enough history")
    value = float(np.nanmean(errors))
    start, end = used[0].isoformat(), used[-1].isoformat()
    return Scale(value, start, end, len(used), f"{what} before the first origin ({start}..{end})")


def arm_score(
    arm: str, experiment: Experiment, answers: pd.DataFrame, paired: pd.DataFrame, scale: Scale
) -> ArmScore:
    """One arm's answers counted and its MAE/MASE, overall and per step, on the scored origins."""
    own = answers[answers["arm"] == arm]
    errors = paired[f"error_{arm}"].abs()
    by_step = errors.groupby(paired["step"], sort=True).mean()
    mae = float(errors.mean()) if len(errors) else None
    divisor = scale.value
    return ArmScore(
        arm=arm,
        model=experiment.arm(arm).model,
        models_logged=tuple(sorted(own["model_version"].dropna().astype(str).unique())),
        answers=len(own),
        origins=int(own["origin"].nunique()),
        scored_origins=int(paired["origin"].nunique()),
        mae=mae,
        mase=None if mae is None or divisor is None else mae / divisor,
        mae_by_step=tuple(float(v) for v in by_step),
        mase_by_step=() if divisor is None else tuple(float(v) / divisor for v in by_step),
    )


def guardrail_breach(experiment: Experiment) -> str | None:
    """Why a guardrail ended the experiment, or None while none has."""
    if experiment.breach is None and experiment.status != ENDED:
        return None
    if experiment.end_reason:
        return experiment.end_reason
    return str(experiment.breach) if experiment.breach is not None else "ended by a guardrail"


def guardrail_state(experiment: Experiment) -> str:
    """The guardrails' state in words, for the report."""
    breach = guardrail_breach(experiment)
    if breach is not None:
        return f"breached after {experiment.checks} checks passed: {breach}"
    return f"no breach ({experiment.checks} checks passed, status {experiment.status})"


def rule_in_words(cfg: ExperimentConfig) -> str:
    """The pre-declared decision rule, as the report states it."""
    return (
        "Every forecast both arms made from a scored origin (steps 1.."
        f"{cfg.horizon}) gives a loss differential |champion's error| - |challenger's error|; "
        "they are averaged per day of the hours forecast (24 h from the first scored origin). "
        "The mean of the whole days is tested by a one-sided Diebold-Mariano test, Newey-West "
        f"(Bartlett) HAC variance with lag {DAY_LAG} days, bias-corrected and referred to "
        "Student's t (fixed-smoothing, Kiefer-Vogelsang and Sun), carried to the normal scale "
        "as z. One look a day, days "
        f"{cfg.min_days} to {cfg.max_days} (days = scored origins / 24), against a "
        "group-sequential boundary: Lan-DeMets alpha spending, O'Brien-Fleming type, "
        f"alpha(t) = 2 - 2 Phi(z_(1-a/2) / sqrt(t)), t = day / {cfg.max_days}, one-sided "
        f"alpha {cfg.alpha} over all looks, boundaries by recursive numerical integration. The "
        "challenger is promoted when z reaches the day's boundary; the champion is kept when z "
        f"falls to minus the boundary, when day {cfg.max_days} passes without a promotion, or at "
        f"once when a guardrail is breached. No decision before day {cfg.min_days}."
    )


def analyse(
    entries: list[dict[str, Any]],
    actuals: pd.Series,
    experiment: Experiment,
    cfg: ExperimentConfig,
) -> Analysis:
    """The experiment's analysis and today's decision from the log entries and the actuals."""
    entries = from_their_arm(entries, experiment)
    answers = counted_answers(entries, experiment.id)
    paired = paired_errors(entries, actuals, experiment.id, cfg.horizon)
    origins = pd.DatetimeIndex(paired["origin"].unique())
    scale = (
        mase_scale(actuals, origins[0], cfg)
        if len(origins)
        else Scale(None, None, None, 0, "no scored origin yet")
    )
    days = len(origins) / HOURS_PER_DAY
    verdict = decide(daily_differentials(paired), days, cfg, guardrail_breach(experiment))
    difference, low, high = _difference(verdict)
    return Analysis(
        experiment=experiment.id,
        mode=experiment.mode,
        status=experiment.status,
        champion=arm_score(CHAMPION, experiment, answers, paired, scale),
        challenger=arm_score(CHALLENGER, experiment, answers, paired, scale),
        scored_origins=len(origins),
        first_origin=origins[0].isoformat() if len(origins) else None,
        last_origin=origins[-1].isoformat() if len(origins) else None,
        scale=scale,
        mae_difference=difference,
        ci_low=low,
        ci_high=high,
        ci_description=(
            "mean over the whole days of MAE(challenger) - MAE(champion), with its repeated "
            f"confidence interval: ± the boundary of day {verdict.look} in HAC standard errors "
            "(on the t scale); it holds at every look at once with probability at least "
            f"{1 - 2 * cfg.alpha:.0%}, and excludes 0 exactly when the rule decides"
        ),
        verdict=verdict,
        guardrail=guardrail_state(experiment),
        rule=rule_in_words(cfg),
        settings={
            "alpha": cfg.alpha,
            "min_days": cfg.min_days,
            "max_days": cfg.max_days,
            "horizon": cfg.horizon,
            "hac_lag_days": DAY_LAG,
            "season": cfg.season,
            "scale_weeks": cfg.scale_weeks,
        },
    )


def _difference(verdict: Verdict) -> tuple[float | None, float | None, float | None]:
    """MAE(challenger) - MAE(champion) over the whole days and its repeated confidence interval."""
    if verdict.test is None or verdict.boundary_t is None:
        return None, None, None
    difference = -verdict.test.mean
    half = verdict.boundary_t * verdict.test.se
    return difference, difference - half, difference + half
