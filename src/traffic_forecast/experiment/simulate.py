"""Simulated experiments with a known truth: how often the decision rule promotes, and when.

Each simulated experiment has hourly forecast origins o = 0, 1, ... for ``max_days`` days; from
each, both arms forecast steps s = 1..horizon, i.e. target hours t = o + s - 1. An arm's error is

    e(o, s) = g(s) * (sqrt(rho) * C(o, s) + sqrt(1 - rho) * U_arm(o, s)),
    X(o, s) = sqrt(1 - kappa) * x(o + s - 1) + sqrt(kappa) * w(o, s)   for X in C, U_champion, ...

with x an AR(1) over target hours (coefficient ``phi``, unit variance) and w independent noise,
all Gaussian; the challenger's error is then multiplied by ``mae_ratio``. Parameters
(`ErrorModel`) and why:

- ``phi = 0.9``: hourly traffic errors persist for hours (a busy afternoon is missed hour after
  hour); 0.9 gives a half-life of about 6.6 h and almost no memory left after a day (0.08).
- ``rho = 0.5``: both models miss the same surprises (a campaign, an outage), but not all of
  them; C is common to both arms, U their own, so their errors correlate at exactly ``rho``.
- ``kappa = 0.3``: the part of an error that belongs to one forecast (its origin's level
  estimate, its inputs), not to the target hour: forecasts of one hour from neighbouring origins
  correlate at 0.7, so the 24 answers per hour carry little more than one.
- ``growth = 1.0``: g(s) = 1 + growth (s - 1) / (horizon - 1), a day-ahead error twice the
  hour-ahead one, typical of hourly traffic forecasts.

The arms' MAE ratio is exactly ``mae_ratio`` (a scaled copy of the same error law). The rule is
run as the scheduled workflow runs it: one look per day, days min_days..max_days, with
`analysis.decide` on the days of forecasts scored by then, stopping at the first promote/keep.
`to_log` writes a simulated experiment as prediction-log entries and actuals, so a test can
check that `analysis.analyse` on the log reaches the same decision as this fast path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.experiment.analysis import CONTINUE, HOURS_PER_DAY, PROMOTE, Verdict, decide
from traffic_forecast.experiment.record import CHALLENGER, CHAMPION, Arm, Experiment
from traffic_forecast.experiment.sequential import FloatArray

_BATCH = 50  # experiments simulated at once: bounded memory for any n


@dataclass(frozen=True)
class ErrorModel:
    """How forecast errors behave (see the module docstring for why these values)."""

    phi: float = 0.9  # hour-to-hour persistence of the latent error
    rho: float = 0.5  # correlation of the two arms' errors
    kappa: float = 0.3  # share of an error's variance specific to its forecast (origin)
    growth: float = 1.0  # the last step's error scale is 1 + growth times the first's
    scale: float = 40.0  # the champion's first-step error sd (requests/hour): for the log only


@dataclass(frozen=True)
class SimulatedExperiment:
    """Both arms' errors (forecast - actual), shape (origins, horizon), origin o at hour o."""

    champion: FloatArray
    challenger: FloatArray

    def daily_differentials(self) -> FloatArray:
        """Per day of target hours: mean |champion's error| - |challenger's error| of its forecasts.

        As ``analysis.daily_differentials`` on the same forecasts: day b holds target hours
        24 b .. 24 b + 23, and only origins before the look forecast into the days before it,
        so the first k days are what the look of day k sees.
        """
        origins, horizon = self.champion.shape
        loss = np.abs(self.champion) - np.abs(self.challenger)
        day = (np.arange(origins)[:, None] + np.arange(horizon)[None, :]) // HOURS_PER_DAY
        whole = origins // HOURS_PER_DAY
        sums = np.bincount(day.ravel(), weights=loss.ravel(), minlength=whole + 1)
        counts = np.bincount(day.ravel(), minlength=whole + 1)
        return np.asarray(sums[:whole] / counts[:whole], dtype=float)


@dataclass(frozen=True)
class Outcome:
    """Where one simulated experiment stopped."""

    decision: str  # promote | keep champion
    day: int
    verdict: Verdict


@dataclass(frozen=True)
class Summary:
    """The decisions of ``n`` simulated experiments at one MAE ratio."""

    n: int
    mae_ratio: float
    promotions: int
    decisions: tuple[str, ...]
    days: tuple[int, ...]

    @property
    def promotion_rate(self) -> float:
        """Share promoted: the false-promotion rate at ratio 1, the power below it."""
        return self.promotions / self.n

    def days_quantile(self, q: float, decision: str | None = None) -> float | None:
        """The ``q`` quantile of the days to a decision (of one kind, if ``decision``)."""
        days = [d for d, k in zip(self.days, self.decisions, strict=True) if decision in (None, k)]
        return float(np.quantile(days, q)) if days else None


def simulate_errors(
    n: int, mae_ratio: float, cfg: ExperimentConfig, rng: np.random.Generator, model: ErrorModel
) -> list[SimulatedExperiment]:
    """``n`` experiments of ``max_days`` x 24 hourly origins each, both arms' errors."""
    origins = cfg.max_days * HOURS_PER_DAY
    step_scale = 1.0 + model.growth * np.arange(cfg.horizon) / max(cfg.horizon - 1, 1)
    common = _component(n, origins, cfg.horizon, rng, model)
    own = [_component(n, origins, cfg.horizon, rng, model) for _ in range(2)]
    shared = math.sqrt(model.rho) * common
    arms = [step_scale * (shared + math.sqrt(1 - model.rho) * part) for part in own]
    return [
        SimulatedExperiment(arms[0][i] * model.scale, arms[1][i] * model.scale * mae_ratio)
        for i in range(n)
    ]


def _component(
    n: int, origins: int, horizon: int, rng: np.random.Generator, model: ErrorModel
) -> FloatArray:
    """sqrt(1 - kappa) x(o + s - 1) + sqrt(kappa) w(o, s), shape (n, origins, horizon)."""
    innovations = rng.standard_normal((n, origins + horizon - 1))
    innovations[:, 0] /= math.sqrt(1 - model.phi**2)  # start in the stationary law
    latent = signal.lfilter([math.sqrt(1 - model.phi**2)], [1.0, -model.phi], innovations, axis=1)
    by_target = sliding_window_view(latent, horizon, axis=1)  # [i, o, s] = latent[i, o + s]
    noise = rng.standard_normal((n, origins, horizon))
    mixed = math.sqrt(1 - model.kappa) * by_target + math.sqrt(model.kappa) * noise
    return np.asarray(mixed, dtype=float)


def run_decision(daily: FloatArray, cfg: ExperimentConfig) -> Outcome:
    """The workflow's daily looks on one experiment, stopping at the first decision."""
    for day in range(cfg.min_days, cfg.max_days + 1):
        verdict = decide(daily[:day], float(day), cfg)
        if verdict.decision != CONTINUE:
            return Outcome(verdict.decision, day, verdict)
    raise AssertionError("the rule decides by max_days: the last look cannot continue")


def run_experiments(
    n: int,
    mae_ratio: float,
    cfg: ExperimentConfig,
    seed: int,
    model: ErrorModel | None = None,
) -> Summary:
    """Simulate ``n`` experiments (challenger MAE = ``mae_ratio`` x champion's) and decide each."""
    model = model or ErrorModel()
    rng = np.random.default_rng(seed)
    outcomes: list[Outcome] = []
    for start in range(0, n, _BATCH):
        batch = simulate_errors(min(_BATCH, n - start), mae_ratio, cfg, rng, model)
        outcomes += [run_decision(sim.daily_differentials(), cfg) for sim in batch]
    decisions = tuple(o.decision for o in outcomes)
    return Summary(
        n=n,
        mae_ratio=mae_ratio,
        promotions=decisions.count(PROMOTE),
        decisions=decisions,
        days=tuple(o.day for o in outcomes),
    )


def to_log(
    simulated: SimulatedExperiment,
    cfg: ExperimentConfig,
    experiment_id: str = "exp-sim",
    start: str = "2025-03-03T00:00",
    seed: int = 0,
) -> tuple[list[dict[str, Any]], pd.Series, Experiment]:
    """The prediction-log entries, the actuals and the experiment a simulated run would leave.

    Actuals: a daily and weekly traffic profile from ``scale_weeks`` weeks plus a season before
    ``start`` (for the MASE scale) to the last hour forecast. Each arm answers every origin with
    forecast = actual + its error; a shorter, earlier answer per origin and a what-if answer are
    logged too, to be left out by the analysis.
    """
    origins, horizon = simulated.champion.shape
    first = pd.Timestamp(start)
    history = (cfg.scale_weeks * 7 * HOURS_PER_DAY) + cfg.season
    hours = pd.date_range(
        first - pd.Timedelta(hours=history), periods=history + origins + horizon, freq="h"
    )
    position = np.arange(len(hours))
    daily, weekly = np.sin(2 * np.pi * position / 24), np.sin(2 * np.pi * position / (7 * 24))
    noise = np.random.default_rng(seed).normal(0.0, 30.0, len(hours))  # weeks differ: a MASE scale
    profile = 1000 + 400 * daily + 150 * weekly + noise
    actuals = pd.Series(profile, index=hours)
    experiment = Experiment(
        id=experiment_id,
        mode=cfg.mode,
        share=cfg.share,
        client_header=cfg.client_header,
        champion=Arm("blue", "traffic-forecast:champ", "traffic_forecast:champ"),
        challenger=Arm("green", "traffic-forecast:chall", "traffic_forecast:chall"),
        started_at=first.tz_localize(UTC).timestamp(),
    )
    entries: list[dict[str, Any]] = []
    for o in range(origins):
        origin = first + pd.Timedelta(hours=o)
        actual = profile[history + o : history + o + horizon]
        for arm, errors in ((CHAMPION, simulated.champion), (CHALLENGER, simulated.challenger)):
            value = (actual + errors[o]).tolist()
            entry = _entry(experiment, arm, origin, value)
            entries += [
                entry | {"value": value[: horizon // 2]},
                entry | {"what_if": True, "value": [0.0] * horizon},
                entry,
            ]
    return entries, actuals, experiment


def _entry(
    experiment: Experiment, arm: str, origin: pd.Timestamp, value: list[float]
) -> dict[str, Any]:
    served = origin.to_pydatetime().replace(tzinfo=UTC)
    return {
        "model_version": experiment.arm(arm).model,
        "origin": origin.isoformat(),
        "value": value,
        "lower": [v * 0.9 for v in value],
        "upper": [v * 1.1 for v in value],
        "coverage": 0.9,
        "what_if": False,
        "fallback": False,
        "time": datetime.fromtimestamp(served.timestamp(), UTC).isoformat(),
        "experiment": experiment.id,
        "arm": arm,
    }
