"""The statistics of the experiment's decision: a HAC Diebold-Mariano test, looked at once a day.

Pure functions of arrays, no I/O:

- `diebold_mariano`: the mean of a loss-differential series, its standard error from the
  Newey-West (Bartlett kernel) long-run variance, and the statistic referred to Student's t
  (carried to the normal scale as ``z``). The analysis applies it to daily loss differentials:
  see ``analysis.py`` for why days and not hourly origins.
- `upper_boundaries` / `daily_boundaries`: a one-sided group-sequential boundary, Lan-DeMets
  alpha spending with the O'Brien-Fleming-type function, computed exactly by the recursive
  numerical integration of Armitage, McPherson and Rowe (1969) on the Brownian-motion scale
  (Jennison & Turnbull 2000, ch. 19). Looking every day and stopping at the first crossing then
  promotes a challenger no better than the champion with probability at most alpha overall.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

FloatArray = npt.NDArray[np.float64]
SpendingFunction = Callable[[FloatArray, float], FloatArray]

_GRID_STEP = 0.01  # spacing of the integration grid on the Brownian scale (sd of one look ~ 0.2)
_GRID_FLOOR_SD = 8.0  # sub-density below -8 sd is below 1e-15: left out of the grid
_BOUNDARY_MAX = 40.0  # z above which no alpha is left to find (the root finder's bracket)


@dataclass(frozen=True)
class DieboldMariano:
    """The Diebold-Mariano test of a loss-differential series (positive: the second is better)."""

    mean: float
    se: float  # standard error of the mean: sqrt(HAC long-run variance / n)
    t: float | None  # mean / se; None when se is 0 (no variation to judge by)
    df: float  # the t reference's degrees of freedom
    z: float | None  # the normal score with the same tail probability as t under t(df)
    n: int
    lag: int  # the Bartlett kernel's truncation lag actually used (at most n - 1)


def bartlett_long_run_variance(x: FloatArray, lag: int) -> float:
    """Newey-West long-run variance: autocovariances up to ``lag``, weighted 1 - k / (lag + 1).

    Autocovariances use divisor n (not n - k), as Newey and West (1987): with the Bartlett
    weights this keeps the estimate non-negative.
    """
    n = len(x)
    centred = np.asarray(x, dtype=float) - float(np.mean(x))
    lag = max(0, min(lag, n - 1))
    total = float(centred @ centred) / n
    for k in range(1, lag + 1):
        weight = 1.0 - k / (lag + 1)
        total += 2.0 * weight * float(centred[k:] @ centred[:-k]) / n
    return max(total, 0.0)


def diebold_mariano(loss_differential: FloatArray, lag: int) -> DieboldMariano:
    """DM test of ``loss_differential`` with a Bartlett HAC variance truncated at ``lag``.

    Small-sample (fixed-smoothing) form, for the few observations of an experiment: the HAC
    variance is divided by its expected downward bias 1 - b + b^2 / 3, b = (lag + 1) / n
    (Kiefer & Vogelsang 2005; at lag 0 about the usual (n - 1) / n), and t is referred to
    Student's t with min(n - 1, 3 n / (2 (lag + 1))) degrees of freedom, the Bartlett
    kernel's (Sun 2014). ``z`` carries t's tail probability to the normal scale, where the
    group-sequential boundaries live.
    """
    d = np.asarray(loss_differential, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError(f"the Diebold-Mariano test needs at least 2 loss differentials, got {n}")
    used = max(0, min(lag, n - 1))
    b = (used + 1) / n
    variance = bartlett_long_run_variance(d, used) / (1 - b + b * b / 3)
    mean = float(np.mean(d))
    se = math.sqrt(variance / n)
    df = min(n - 1.0, 1.5 * n / (used + 1))
    t = mean / se if se > 0 else None
    z = None if t is None else normal_score(t, df)
    return DieboldMariano(mean=mean, se=se, t=t, df=df, z=z, n=n, lag=used)


def normal_score(t: float, df: float) -> float:
    """The z with the tail probability of ``t`` under Student's t(``df``), either tail."""
    if t >= 0:
        return float(stats.norm.isf(stats.t.sf(t, df)))
    return float(stats.norm.ppf(stats.t.cdf(t, df)))


def t_critical(boundary: float, df: float) -> float:
    """The t(``df``) value with the one-sided tail probability of the normal ``boundary``."""
    return float(stats.t.isf(stats.norm.sf(boundary), df))


def obrien_fleming_spending(fractions: FloatArray, alpha: float) -> FloatArray:
    """Lan-DeMets O'Brien-Fleming-type spending: alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    t = np.asarray(fractions, dtype=float)
    return np.asarray(2.0 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t)), dtype=float)


def upper_boundaries(
    fractions: FloatArray | list[float],
    alpha: float,
    spending: SpendingFunction = obrien_fleming_spending,
) -> FloatArray:
    """One-sided efficacy boundaries (z scale) at information ``fractions`` spending ``alpha``.

    At look k, under the null, the chance of crossing there first (no crossing before) equals
    ``spending(t_k) - spending(t_{k-1})``. The statistic is tracked as the Brownian motion
    S(t) = Z(t) sqrt(t), whose sub-density (paths not yet stopped) is carried from look to look
    on a grid by convolution with the Gaussian increment and Simpson weights. Any lower
    boundary is taken as non-binding: stopping early for the champion only lowers the chance of
    a false promotion.
    """
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or len(t) == 0 or t[0] <= 0 or t[-1] > 1 or np.any(np.diff(t) <= 0):
        raise ValueError(f"information fractions must increase within (0, 1], got {t.tolist()}")
    spent = np.diff(spending(t, alpha), prepend=0.0)
    bounds = np.empty(len(t))
    bounds[0] = float(stats.norm.isf(spent[0]))
    grid, density = _first_density(t[0], bounds[0])
    for k in range(1, len(t)):
        sd = math.sqrt(t[k] - t[k - 1])
        mass = density * _simpson_weights(grid)
        bounds[k] = _solve_boundary(grid, mass, t[k], sd, spent[k])
        grid, density = _carry(grid, mass, t[k], sd, bounds[k])
    return bounds


def _first_density(t: float, bound: float) -> tuple[FloatArray, FloatArray]:
    grid = _grid(t, bound * math.sqrt(t))
    return grid, np.asarray(stats.norm.pdf(grid, scale=math.sqrt(t)), dtype=float)


def _grid(t: float, top: float) -> FloatArray:
    bottom = -_GRID_FLOOR_SD * math.sqrt(t)
    intervals = 2 * math.ceil((top - bottom) / (2 * _GRID_STEP))  # even: Simpson's rule
    return np.linspace(bottom, top, intervals + 1)


def _simpson_weights(grid: FloatArray) -> FloatArray:
    step = (grid[-1] - grid[0]) / (len(grid) - 1)
    weights = np.ones(len(grid))
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return np.asarray(weights * step / 3.0, dtype=float)


def _solve_boundary(grid: FloatArray, mass: FloatArray, t: float, sd: float, spend: float) -> float:
    def excess(z: float) -> float:
        return float(mass @ stats.norm.sf((z * math.sqrt(t) - grid) / sd)) - spend

    if spend <= 0 or excess(_BOUNDARY_MAX) > 0:
        return _BOUNDARY_MAX
    return float(optimize.brentq(excess, -_BOUNDARY_MAX, _BOUNDARY_MAX, xtol=1e-10))


def _carry(
    grid: FloatArray, mass: FloatArray, t: float, sd: float, bound: float
) -> tuple[FloatArray, FloatArray]:
    """The sub-density at ``t`` of the paths below ``bound`` then and at every look before."""
    new_grid = _grid(t, bound * math.sqrt(t))
    kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / sd) / sd
    return new_grid, np.asarray(kernel @ mass, dtype=float)


@lru_cache(maxsize=32)
def daily_boundaries(alpha: float, min_days: int, max_days: int) -> dict[int, float]:
    """The boundary of each daily look, days ``min_days``..``max_days``, t = day / max_days.

    No look before ``min_days``: the first look spends everything the function allots up to
    then. Cached: the simulation asks for the same boundaries thousands of times.
    """
    days = list(range(min_days, max_days + 1))
    bounds = upper_boundaries([day / max_days for day in days], alpha)
    return {day: float(bound) for day, bound in zip(days, bounds, strict=True)}
