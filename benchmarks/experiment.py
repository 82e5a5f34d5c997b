"""Benchmark the experiment's decision rule on simulated experiments with a known truth.

Printed: the false-promotion rate (equal models) over 200 and 1,000 experiments, with its 99 %
binomial bound; the power curve (challenger MAE 0.9, 0.95, 0.97 x the champion's) with the
median and 90th-percentile days to a decision and to a promotion; the same at longer
``max_days``; and the time taken. The errors are ``simulate.ErrorModel``'s (see its module
docstring); ``--phi`` and ``--rho`` change the two that matter most. ``--quick``: 200 runs each.
"""

from __future__ import annotations

import argparse
import sys
import time

from scipy import stats

from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.experiment.analysis import PROMOTE
from traffic_forecast.experiment.simulate import ErrorModel, Summary, run_experiments

RATIOS = (0.9, 0.95, 0.97)
POWER_TARGET = 0.8  # at a 10 % better MAE (issue 18)


def _days(summary: Summary, decision: str | None = None) -> str:
    median, p90 = (summary.days_quantile(q, decision) for q in (0.5, 0.9))
    return "-" if median is None or p90 is None else f"{median:>5.1f} {p90:>5.1f}"


def _row(label: str, summary: Summary, seconds: float) -> None:
    print(
        f"  {label:<26} {summary.n:>6} {summary.promotion_rate:>8.1%} "
        f"{_days(summary):>11} {_days(summary, PROMOTE):>11} {seconds:>7.1f}"
    )


def _run(n: int, ratio: float, cfg: ExperimentConfig, seed: int, model: ErrorModel) -> None:
    started = time.perf_counter()
    summary = run_experiments(n, ratio, cfg, seed, model)
    label = f"ratio {ratio:.2f}, max_days {cfg.max_days}"
    _row(label, summary, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 experiments per row")
    parser.add_argument("--phi", type=float, default=ErrorModel.phi, help="error persistence")
    parser.add_argument("--rho", type=float, default=ErrorModel.rho, help="arms' error corr.")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--max-days", type=int, nargs="*", default=[28, 56, 98])
    args = parser.parse_args(argv)
    model = ErrorModel(phi=args.phi, rho=args.rho)
    cfg = ExperimentConfig()
    sizes = [200] if args.quick else [200, 1000]
    n = 200 if args.quick else 1000
    print(
        f"experiment decision rule: alpha {cfg.alpha}, days {cfg.min_days}..{cfg.max_days}, {model}"
    )
    header = f"{'runs':>6} {'promoted':>8} {'days p50 p90':>11} {'promo p50 p90':>11} {'s':>7}"
    print(f"  {'':<26} {header}")
    print("false promotions (equal models):")
    for size in sizes:
        _run(size, 1.0, cfg, args.seed, model)
        bound = stats.binom.ppf(0.99, size, cfg.alpha) / size
        print(f"  {'':<26} 99 % binomial bound at alpha: {bound:.1%}")
    print("power (challenger MAE = ratio x champion's):")
    for max_days in args.max_days:
        longer = ExperimentConfig(max_days=max_days)
        for ratio in RATIOS:
            _run(n, ratio, longer, args.seed + 1, model)
        if max_days != cfg.max_days:
            _run(n, 1.0, longer, args.seed + 2, model)
    print(f"target: power >= {POWER_TARGET:.0%} at ratio 0.90 within max_days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
