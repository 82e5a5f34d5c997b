"""Benchmark ``model=auto`` on the example data and on real hourly data the team did not tune to.

For each data set (the simulated example; UCI bike sharing from ``../shared/data`` when it is
there), the validate and features stages run into a temporary folder, then the evaluate
stage's selection: every candidate of ``conf/model/auto.yaml`` backtested on the same 26
weekly folds, 24 h ahead, and their stacked ensemble. Printed per candidate: MASE, its ratio
to weekly seasonal naive, 90 % interval coverage and relative width, backtest seconds. Then the
issue's targets: the chosen model's MASE at most 0.95x the best single candidate and 0.75x
seasonal naive, its coverage within 87-93 %.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DATA_SETS = {"example": None, "bike_sharing": SHARED_DATA / "bike-sharing" / "hour.csv"}
BEST_SINGLE_RATIO = 0.95
NAIVE_RATIO = 0.75
COVERAGE_RANGE = (0.87, 0.93)
NAIVE = "seasonal_naive"


def evaluate_auto(data: str, folder: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The selection record of ``model=auto`` on ``data``, and each candidate's seconds."""
    # Imported here: `--help` answers without loading sktime.
    from traffic_forecast.core.settings import load_config  # noqa: PLC0415
    from traffic_forecast.pipeline import evaluate, features, outputs, validate  # noqa: PLC0415

    overrides = [f"data={data}", "model=auto"] + [
        f"paths.{name}_dir={folder / name}" for name in ("validated", "features", "reports")
    ]
    if data == "example":  # the simulator's tables, written where this config reads them
        from dataclasses import asdict  # noqa: PLC0415

        from traffic_forecast.data.simulate import (  # noqa: PLC0415
            SimulationConfig,
            simulate,
            write_raw_tables,
        )

        raw = folder / "raw"
        overrides += [
            f"data.{name}_file={raw / name}.csv"
            for name in ("traffic", "sale_events", "infrastructure")
        ]
        simulator = load_config(overrides, params_file=None).data.simulator
        write_raw_tables(simulate(SimulationConfig(**asdict(simulator))), raw)
    cfg = load_config(overrides, params_file=None)
    if not validate.run(cfg).passed:
        sys.exit(f"{data}: validation failed, see {folder / 'reports'}")
    features.run(cfg)
    history, _ = outputs.read_features(cfg.paths)
    selection = evaluate.select(cfg, history)
    baseline = evaluate.run_backtest(
        cfg.baseline, history, cfg.backtest, setting="baseline", intervals=False
    )
    sales = evaluate.sale_hours(history)
    naive = evaluate.summarise(baseline.folds, sales)
    seconds = {name: run.seconds for name, run in selection.runs.items()}
    return evaluate.selection_payload(selection, naive, sales, cfg), seconds


def report(data: str, record: dict[str, Any], seconds: dict[str, float]) -> list[str]:
    """The candidate table of one data set and its verdicts; returns the failed targets."""
    candidates = record["candidates"]
    chosen = record["chosen"]
    print(f"\n{data}: model=auto chose {chosen}")
    print(f"  {'candidate':<20} {'MASE':>7} {'vs naive':>9} {'coverage':>9} {'width':>7} {'s':>7}")
    for name, row in candidates.items():
        if "excluded" in row:
            print(f"  {name:<20} left out: {row['excluded']}")
            continue
        mark = "  <- chosen" if name == chosen else ""
        print(
            f"  {name:<20} {row['mase']:>7.3f} {row['mase_vs_baseline']:>9.3f} "
            f"{_pct(row['interval_coverage']):>9} {_pct(row['interval_width_rel']):>7} "
            f"{seconds.get(name, 0.0):>7.1f}{mark}"
        )
    weights = candidates.get("ensemble", {}).get("weights", {})
    if weights:
        print("  ensemble weights: " + ", ".join(f"{k} {v:.3f}" for k, v in weights.items()))
    singles = {k: v["mase"] for k, v in candidates.items() if k != "ensemble" and "mase" in v}
    best_single = min(singles, key=lambda k: singles[k])
    mase, coverage = candidates[chosen]["mase"], candidates[chosen]["interval_coverage"]
    checks = {
        f"MASE <= {BEST_SINGLE_RATIO}x best single ({best_single})": (
            mase / singles[best_single],
            mase <= BEST_SINGLE_RATIO * singles[best_single],
        ),
        f"MASE <= {NAIVE_RATIO}x seasonal naive": (
            mase / singles[NAIVE],
            mase <= NAIVE_RATIO * singles[NAIVE],
        ),
        "coverage in 87-93 %": (coverage, COVERAGE_RANGE[0] <= coverage <= COVERAGE_RANGE[1]),
    }
    failed = []
    for what, (value, passed) in checks.items():
        print(f"  {what:<48} {value:>7.3f}  {'ok' if passed else 'MISSED'}")
        if not passed:
            failed.append(f"{data}: {what}")
    return failed


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", choices=sorted(DATA_SETS), nargs="*", default=list(DATA_SETS))
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.simplefilter("ignore")  # library notices would bury the table
    print(f"model candidates benchmark: {os.cpu_count()} CPUs, 26 weekly folds, 24 h ahead")
    failed: list[str] = []
    for data in args.data:
        source = DATA_SETS[data]
        if source is not None and not source.is_file():
            print(f"\n{data}: skipped, {source} is absent")
            continue
        with tempfile.TemporaryDirectory(prefix="models-bench-") as tmp:
            started = time.perf_counter()
            record, seconds = evaluate_auto(data, Path(tmp))
            failed += report(data, record, seconds)
            print(f"  (selection in {time.perf_counter() - started:.0f} s with validate, features)")
    print("\nall targets met" if not failed else "\nmissed: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
