"""The serving benchmark's figures: wrk's report read, rows printed, targets judged.

Every figure may be missing (a contender that answered nothing, a /metrics that could not be
read): ratios are then n/a or 0 and the target MISSED, never a division by zero.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_RATIO_TARGET, CAPACITY_RATIO_TARGET, COVERAGE_RATIO_TARGET = 0.7, 0.5, 0.9
WHAT_IF_TARGET_PER_WORKER, P99_TARGET_MS = 300.0, 25.0
FALLBACK_REASONS = ("budget", "error")  # telemetry.py's labels of the fallback counter
LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
NAN = float("nan")
COLUMNS = (
    f"{'round':6}{'kind':10}{'target':29}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    f"{'non-2xx':>9}{'errors':>8}{'fallbacks':>11}"
)


@dataclass(frozen=True)
class Load:
    """wrk's figures for one run; for the service, also the fallbacks it counted."""

    requests_per_s: float
    p50_ms: float  # nan when nothing was answered
    p99_ms: float
    non_2xx: int
    socket_errors: int
    fallbacks: dict[str, int] | None = None  # by reason; None: not counted (bare, or unreadable)
    problem: str | None = None  # why wrk gave no figures


@dataclass(frozen=True)
class Round:
    """One kind in one round: the service's run and the bare app's just after."""

    number: int
    kind: str
    service: Load
    bare: Load

    @property
    def ratio(self) -> float | None:
        """Service / bare requests per second; None when the bare app answered nothing."""
        return _ratio(self.service.requests_per_s, self.bare.requests_per_s)


@dataclass(frozen=True)
class Verdict:
    """One target: the figure measured, the target, and whether it was met."""

    kind: str
    figure: str
    target: str
    met: bool


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def parse_wrk(out: str) -> Load:
    """The figures of wrk's ``--latency`` report; zeros (and nan latency) where it has none."""
    latency = {q: float(v) * UNITS_MS[u] for q, v, u in LATENCY.findall(out)}
    rate, non_2xx, errors = RATE.search(out), NON_2XX.search(out), SOCKET_ERRORS.search(out)
    requests_per_s = float(rate.group(1)) if rate else 0.0
    answered = requests_per_s > 0
    return Load(
        requests_per_s,
        latency.get("50", NAN) if answered else NAN,
        latency.get("99", NAN) if answered else NAN,
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(count) for count in errors.groups()) if errors else 0,
    )


# -- rows, printed as they are measured ----------------------------------------------------------


def row(number: str, kind: str, target: str, load: Load, *, counted: bool = False) -> str:
    """One run's line under `COLUMNS`; ``counted``: the run's fallbacks were asked for."""
    fallbacks = "-"
    if counted:
        fallbacks = "?" if load.fallbacks is None else str(sum(load.fallbacks.values()))
    line = (
        f"{number:6}{kind:10}{target:29}{load.requests_per_s:>9.0f}{load.p50_ms:>9.2f}"
        f"{load.p99_ms:>9.2f}{load.non_2xx:>9}{load.socket_errors:>8}{fallbacks:>11}"
    )
    return line if load.problem is None else f"{line}  ({load.problem})"


# -- the targets ----------------------------------------------------------------------------------


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _of(rounds: list[Round], kind: str) -> list[Round]:
    return [measured for measured in rounds if measured.kind == kind]


def _total(loads: list[Load]) -> dict[str, int] | None:
    """Fallbacks summed over the runs, by reason; None unless every run was counted."""
    counted = [load.fallbacks for load in loads]
    if not counted or any(counts is None for counts in counted):
        return None
    return {
        reason: sum(counts.get(reason, 0) for counts in counted if counts is not None)
        for reason in FALLBACK_REASONS
    }


def _at_least(kind: str, what: str, values: list[float | None], target: float) -> Verdict:
    median = _median(values)
    rounds = ", ".join(_shown(value) for value in values) or "none measured"
    figure = f"{what} {_shown(median)} (rounds: {rounds})"
    return Verdict(kind, figure, f">= {target:g}", median is not None and median >= target)


def ratio_verdict(rounds: list[Round], kind: str, target: float) -> Verdict:
    return _at_least(kind, "service / bare", [r.ratio for r in _of(rounds, kind)], target)


def coverage_verdict(rounds: list[Round]) -> Verdict:
    """An arbitrary coverage against the default one, in the same round."""
    default = {r.number: r.service.requests_per_s for r in _of(rounds, "default")}
    if not default:
        figure = "service coverage / default n/a (default not measured)"
        return Verdict("coverage", figure, f">= {COVERAGE_RATIO_TARGET:g}", False)
    ratios = [
        _ratio(r.service.requests_per_s, default[r.number])
        for r in _of(rounds, "coverage")
        if r.number in default
    ]
    return _at_least("coverage", "service coverage / default", ratios, COVERAGE_RATIO_TARGET)


def what_if_verdicts(rounds: list[Round], workers: int) -> list[Verdict]:
    measured = _of(rounds, "what-if")
    per_worker: list[float | None] = [r.service.requests_per_s / workers for r in measured]
    speed = _at_least("what-if", "req/s per worker", per_worker, WHAT_IF_TARGET_PER_WORKER)
    total = _total([r.service for r in measured])
    if total is None:
        return [speed, Verdict("what-if", "budget fallbacks not counted", "0", False)]
    figure = f"budget fallbacks {total['budget']} (and {total['error']} after a model error)"
    return [speed, Verdict("what-if", figure, "0", total["budget"] == 0)]


def p99_verdict(rounds: list[Round], kind: str) -> Verdict:
    """Met when every round answered and the median p99 is within the target."""
    values = [r.service.p99_ms for r in _of(rounds, kind)]
    answered = [value for value in values if not math.isnan(value)]
    median = statistics.median(answered) if answered else None
    shown = ", ".join(f"{value:.2f}" for value in values) or "none measured"
    figure = f"service p99 {'n/a' if median is None else f'{median:.2f}'} ms (rounds: {shown})"
    met = median is not None and len(answered) == len(values) and median <= P99_TARGET_MS
    return Verdict(kind, figure, f"<= {P99_TARGET_MS:g} ms", met)


def verdicts(rounds: list[Round], kinds: list[str], workers: int) -> list[Verdict]:
    checks: dict[str, Callable[[], list[Verdict]]] = {
        "default": lambda: [ratio_verdict(rounds, "default", DEFAULT_RATIO_TARGET)],
        "coverage": lambda: [coverage_verdict(rounds)],
        "what-if": lambda: what_if_verdicts(rounds, workers),
        "capacity": lambda: [ratio_verdict(rounds, "capacity", CAPACITY_RATIO_TARGET)],
    }
    found: list[Verdict] = []
    for kind in kinds:
        found += [*checks[kind](), p99_verdict(rounds, kind)]
    return found


# -- the summary ----------------------------------------------------------------------------------


def _medians_row(rounds: list[Round], kind: str) -> str:
    measured = _of(rounds, kind)
    service = _median([r.service.requests_per_s for r in measured])
    bare = _median([r.bare.requests_per_s for r in measured])
    ratio = _median([r.ratio for r in measured])
    total = _total([r.service for r in measured])
    fallbacks = "?" if total is None else ", ".join(str(total[r]) for r in FALLBACK_REASONS)
    return (
        f"{kind:10}{'n/a' if service is None else f'{service:.0f}':>14}"
        f"{'n/a' if bare is None else f'{bare:.0f}':>12}{_shown(ratio):>14}{fallbacks:>27}"
    )


def summary(rounds: list[Round], naive: Load | None, kinds: list[str], workers: int) -> str:
    """Medians per kind, the naive reference, then each target: met or MISSED."""
    header = f"{'kind':10}{'service req/s':>14}{'bare req/s':>12}{'service/bare':>14}"
    lines = ["", "medians over the rounds:", header + f"{'fallbacks (budget, error)':>27}"]
    lines += [_medians_row(rounds, kind) for kind in kinds]
    default = _median([r.service.requests_per_s for r in _of(rounds, "default")])
    if naive is not None and default is not None:
        times = _ratio(default, naive.requests_per_s)
        lines.append(f"default service / naive: {'n/a' if times is None else f'{times:.0f}x'}")
    lines += ["", "targets (the service; medians over the rounds):"]
    for verdict in verdicts(rounds, kinds, workers):
        met = "met" if verdict.met else "MISSED"
        lines.append(f"{verdict.kind:10}{verdict.figure}: target {verdict.target}, {met}")
    return "\n".join(lines)
