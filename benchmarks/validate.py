"""Benchmark stage 1 (validate): the example data as a user runs it, then 10 million rows."""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import dask
import dask.bag as db
import numpy as np
import pandas as pd
import pandera

from traffic_forecast.core.config import DataConfig
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.data.tables import Failure
from traffic_forecast.data.validation import ValidationResult, read_raw, validate_raw

ROOT = Path(__file__).resolve().parents[1]
RAW_DIR = Path("data/raw")
EXAMPLE_FILES = ("traffic.csv", "sale_events.csv", "infrastructure.csv")
# datetime64[ns] ends at 2262-04-11: one series holds at most ~5.12M consecutive hours.
NS_SPAN_HOURS = int(
    (np.datetime64("2262-04-11") - np.datetime64("1677-09-22")) // np.timedelta64(1, "h")
)
SINGLE_START = "1678-01-01"
SERIES_START = "2020-01-01"
SERIAL_SHARE = 10  # the serial reference validates 1 series in this many
KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux

T = TypeVar("T")
Outcome = tuple[str, int, list[Failure]]  # file, data rows read, failures


@dataclass
class Figure:
    """One line of the printed table."""

    case: str
    rows: int
    seconds: float
    rss_mib: float
    result: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the large cases")
    parser.add_argument("--series", type=int, default=1000, help="series the rows are split in")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the best is shown")
    parser.add_argument(
        "--single-rows",
        type=int,
        default=5_000_000,
        help=f"hours of the one-series case (at most {NS_SPAN_HOURS:,}, the datetime64[ns] span)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    args = parser.parse_args(argv)
    if min(args.rows, args.series, args.repeat, args.single_rows, args.workers) < 1:
        parser.error("every count must be at least 1")
    if args.rows // args.series < 10 or args.rows // args.series > NS_SPAN_HOURS:
        parser.error(f"rows per series must be within 10..{NS_SPAN_HOURS:,}")
    if args.single_rows > NS_SPAN_HOURS:
        parser.error(f"--single-rows is at most {NS_SPAN_HOURS:,} (the datetime64[ns] span)")
    return args


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / KIB_PER_MIB


def in_fresh_process(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in a new interpreter, so the peak RSS it reports is its own.

    On Linux a child's ``ru_maxrss`` starts from its parent's RSS at the fork before exec, so
    the parent stays small: data is generated in processes of its own too.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, func, args))
    process.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:
        status, value = "error", "the process died without a result"
    process.join()
    if status != "ok":
        raise RuntimeError(f"{func.__name__} failed (exit code {process.exitcode}):\n{value}")
    result: T = value
    return result


def _child(send: Connection, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        send.send(("ok", func(*args)))
    except Exception:
        send.send(("error", traceback.format_exc()))


def csv_config(path: Path | str) -> DataConfig:
    """The settings a user gives to validate their own hourly CSV (``data=csv``)."""
    overrides = [
        "data=csv",
        f"data.traffic_file={path}",
        "data.timestamp_column=timestamp",
        "data.target_column=value",
        "data.hour_column=null",
        "data.event_columns=[]",
    ]
    return load_config(overrides, params_file=None, conf_dir=ROOT / "conf").data


def validate_timed(data: DataConfig) -> tuple[ValidationResult, float, float]:
    """Read + parse + validate as the stage does; the result, read seconds, validate seconds."""
    start = time.perf_counter()
    texts, read_failures = read_raw(data)
    read = time.perf_counter()
    result = validate_raw(data, texts, read_failures)
    return result, read - start, time.perf_counter() - read


def verdict(failures: list[Failure]) -> str:
    return "passed" if not failures else f"FAILED ({len(failures)} checks)"


# --- 1. the example data ---------------------------------------------------------------------


def stage_subprocess(work: Path, repeat: int) -> Figure:
    """``python -m traffic_forecast.pipeline.validate`` as a user runs it, outputs in ``work``."""
    reports, validated = work / "reports", work / "validated"
    command = [
        sys.executable,
        "-m",
        "traffic_forecast.pipeline.validate",
        f"paths.reports_dir={reports}",
        f"paths.validated_dir={validated}",
    ]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    best, rss, log = float("inf"), 0.0, work / "stage.log"
    for _ in range(repeat):
        with log.open("wb") as out:
            start = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
            _, status, usage = os.wait4(process.pid, 0)  # the rusage of this child alone
            best = min(best, time.perf_counter() - start)
        process.returncode = os.waitstatus_to_exitcode(status)
        rss = max(rss, usage.ru_maxrss / KIB_PER_MIB)
        if process.returncode != 0:
            sys.exit(f"the validate stage exited {process.returncode}:\n{log.read_text()}")
    report = json.loads((reports / "validation.json").read_text())
    rows = sum(report["rows"].values())
    result = "passed" if report["passed"] else f"FAILED ({len(report['failures'])} checks)"
    return Figure("stage subprocess (interpreter + config)", rows, best, rss, result)


def example_core(repeat: int) -> list[Figure]:
    """``validate_raw`` on the example files in one process: first call, then warm calls."""
    data = load_config(params_file=None, conf_dir=ROOT / "conf").data
    result, read, check = validate_timed(data)
    rows = sum(result.rows.values())
    figures = [Figure("core, first call", rows, read + check, peak_rss_mib(), "")]
    best = float("inf")
    for _ in range(repeat):
        result, read, check = validate_timed(data)
        best = min(best, read + check)
    figures.append(Figure("core, warm", rows, best, peak_rss_mib(), verdict(result.failures)))
    figures[0].result = figures[1].result
    return figures


# --- 2. ten million rows ---------------------------------------------------------------------


def hour_stamps(start: str, hours: int) -> list[str]:
    first = np.datetime64(start, "h")
    stamps = np.arange(first, first + hours, dtype="datetime64[h]")
    return list(np.char.replace(np.datetime_as_string(stamps, unit="s"), "T", " ").tolist())


def random_counts(rng: np.random.Generator, n: int) -> list[str]:
    return list(rng.integers(0, 100_000, n).astype(str).tolist())


def write_csv(path: Path, stamps: list[str], values: list[str]) -> None:
    rows = "\n".join(map(",".join, zip(stamps, values, strict=True)))
    path.write_text(f"timestamp,value\n{rows}\n", encoding="utf-8")


def write_single(path: Path, hours: int) -> None:
    write_csv(
        path, hour_stamps(SINGLE_START, hours), random_counts(np.random.default_rng(0), hours)
    )


def single_series(path: Path, repeat: int) -> tuple[Figure, str]:
    """One long series through ``read_raw`` + ``validate_raw``; the figure and a timing note."""
    data = csv_config(path)
    TrafficRaw.to_schema()  # its first build imports dask.dataframe (pandera); not counted
    baseline = peak_rss_mib()
    best, rows, failures = (float("inf"), 0.0, 0.0), 0, []
    for _ in range(repeat):
        result, read, check = validate_timed(data)
        best = min(best, (read + check, read, check))
        rows, failures = sum(result.rows.values()), result.failures
        del result  # free the frames before the next run
    figure = Figure("1 series, in-process", rows, best[0], peak_rss_mib(), verdict(failures))
    note = (
        f"1 series: read_raw {best[1]:.1f} s + validate_raw {best[2]:.1f} s; "
        f"RSS {baseline:.0f} MiB after imports"
    )
    return figure, note


def inject_bad_rows(stamps: list[str], values: list[str], kind: int) -> int:
    """Spoil a few rows of one series in place; how many rows were spoilt."""
    n = len(stamps)
    if kind == 0:
        values[n // 8] = "-5"  # target >= 0
        values[2 * n // 8] = "abc"  # parsable as a number
        values[3 * n // 8] = "inf"  # finite
    else:
        stamps[4 * n // 8] = stamps[4 * n // 8].replace("-", "-13-", 1)[:19]  # not a date
        stamps[6 * n // 8] = stamps[6 * n // 8][:14] + "30:00"  # not on the hour
        del stamps[5 * n // 8], values[5 * n // 8]  # a missing hour
    return 3


def write_series(folder: Path, series: int, hours: int) -> tuple[list[Path], list[Path], int]:
    """One CSV per series; the files, the spoilt files and how many rows were spoilt."""
    rng = np.random.default_rng(20240101)
    stamps = hour_stamps(SERIES_START, hours)
    spoilt_at = {1 % series: 0, series // 2: 1} if series > 1 else {0: 0}
    paths, spoilt, bad_rows = [], [], 0
    for i in range(series):
        path = folder / f"series_{i:05d}.csv"
        own_stamps, values = list(stamps), random_counts(rng, hours)
        if i in spoilt_at:
            bad_rows += inject_bad_rows(own_stamps, values, spoilt_at[i])
            spoilt.append(path)
        write_csv(path, own_stamps, values)
        paths.append(path)
    return paths, spoilt, bad_rows


def validate_file(data: DataConfig, path: str) -> Outcome:
    """One Dask task: the stage's own read and validation of one series file."""
    config = dataclasses.replace(data, traffic_file=path)
    texts, read_failures = read_raw(config)
    result = validate_raw(config, texts, read_failures)
    return path, sum(result.rows.values()), result.failures


def warm_worker() -> None:
    TrafficRaw.to_schema()  # imports what a task needs, as the first task would


def serial_series(paths: list[str]) -> Figure:
    """The same per-series validation in one process, one file after another."""
    data = csv_config(paths[0])
    TrafficRaw.to_schema()
    start = time.perf_counter()
    outcomes = [validate_file(data, path) for path in paths]
    seconds = time.perf_counter() - start
    rows = sum(rows for _, rows, _ in outcomes)
    failures = [f for _, _, found in outcomes for f in found]
    case = f"{len(paths)} series, serial"
    return Figure(case, rows, seconds, peak_rss_mib(), verdict(failures))


@dataclass
class DaskRun:
    """The Dask case: its table line and what explains it."""

    figure: Figure
    outcomes: list[Outcome]
    startup: float  # seconds to spawn the workers and import
    driver_rss_mib: float
    worker_cpu: float  # CPU seconds the workers used, startup included
    driver_cpu: float  # CPU seconds the scheduling process used while validating


def dask_series(paths: list[str], workers: int) -> DaskRun:
    """All series in parallel: a Dask bag on the processes scheduler, one task per chunk."""
    data = csv_config(paths[0])
    bag = db.from_sequence(paths, npartitions=min(len(paths), 8 * workers))
    tasks = bag.map(partial(validate_file, data))
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=warm_worker) as pool:
        # Workers start on demand: one submission each, all at once, starts them all.
        wait([pool.submit(os.getpid) for _ in range(workers)])
        started, driver = time.perf_counter(), time.process_time()
        outcomes: list[Outcome] = tasks.compute(scheduler="processes", pool=pool)
        done, driver = time.perf_counter(), time.process_time() - driver
    rows = sum(rows for _, rows, _ in outcomes)
    failures = [f for _, _, found in outcomes for f in found]
    case = f"{len(paths)} series, Dask processes x{workers}"
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, joined above
    figure = Figure(case, rows, done - start, usage.ru_maxrss / KIB_PER_MIB, verdict(failures))
    cpu = usage.ru_utime + usage.ru_stime
    return DaskRun(figure, outcomes, started - start, peak_rss_mib(), cpu, driver)


def failure_summary(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for path, _, failures in outcomes:
        if failures:
            checks = Counter({f"{f.column}/{f.check}": 0 for f in failures})
            for f in failures:
                checks[f"{f.column}/{f.check}"] += f.count
            found = ", ".join(f"{check} x{count}" for check, count in checks.items())
            lines.append(f"    {Path(path).name}: {found}")
    return lines


# --- output ----------------------------------------------------------------------------------


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())  # 1, 5 and 15 minutes


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def print_table(title: str, figures: list[Figure]) -> None:
    print(f"\n{title}")
    header = (
        f"  {'case':<40} {'rows':>12} {'wall s':>8} {'rows/s':>12} {'peak RSS MiB':>13}  result"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for f in figures:
        rate = f.rows / f.seconds if f.seconds > 0 else float("nan")
        print(
            f"  {f.case:<40} {f.rows:>12,} {f.seconds:>8.2f} {rate:>12,.0f} "
            f"{f.rss_mib:>13,.0f}  {f.result}"
        )


def print_dask_notes(run: DaskRun, serial: Figure, serial_files: int, workers: int) -> None:
    total = run.figure
    files = len(run.outcomes)
    alone = total.seconds - run.startup
    serial_all = serial.seconds / serial_files * files
    print(
        f"  serial: every {SERIAL_SHARE}th series in one process; "
        f"all {files:,} would take ~{serial_all:.0f} s"
    )
    print(
        f"  Dask: wall includes {run.startup:.1f} s to spawn {workers} workers and import; "
        f"validation alone {alone:.1f} s ({total.rows / alone:,.0f} rows/s, "
        f"{serial_all / alone:.2f}x serial)"
    )
    print(
        f"  Dask: workers used {run.worker_cpu:.0f} CPU-s in {total.seconds:.0f} s "
        f"({run.worker_cpu / total.seconds:.2f} of {workers} cores), driver "
        f"{run.driver_cpu:.1f} CPU-s"
    )
    print(f"  Dask: RSS is the largest worker; driver {run.driver_rss_mib:.0f} MiB")


def print_bad_rows(outcomes: list[Outcome], spoilt: list[Path], bad_rows: int) -> None:
    failed = [(path, failures) for path, _, failures in outcomes if failures]
    caught = {Path(path).name for path, _ in failed} == {p.name for p in spoilt}
    print(
        f"  bad rows: {bad_rows} injected in {len(spoilt)} series; "
        f"{len(failed)} series failed, {sum(len(f) for _, f in failed)} checks, "
        f"{sum(f.count for _, found in failed for f in found)} rows reported"
        f"{'' if caught else ' -- NOT the spoilt series!'}:"
    )
    for line in failure_summary(outcomes):
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    if not all((RAW_DIR / name).is_file() for name in EXAMPLE_FILES):
        print(f"{RAW_DIR}/ lacks {', '.join(EXAMPLE_FILES)}: run `make data` first")
        return 2
    print(
        f"validate benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, pandera {pandera.__version__}, dask {dask.__version__}; "
        f"best of {args.repeat}; load average {load_average()} at start"
    )
    with tempfile.TemporaryDirectory(prefix="validate-bench-") as tmp:
        work = Path(tmp)
        progress("example data: the stage in a subprocess")
        example = [stage_subprocess(work, args.repeat)]
        progress("example data: validate_raw in-process")
        example += in_fresh_process(example_core, args.repeat)
        print_table("1. Example data (data/raw, 3 files), stage 1 as a user runs it", example)
        print("  stage subprocess: wall from exec to exit; RSS of that process")
        print("  core: read_raw + validate_raw; the first call imports dask.dataframe (pandera)")

        single_rows = min(args.single_rows, args.rows)
        progress(f"generating 1 series of {single_rows:,} hours (not timed)")
        single_path = work / "single.csv"
        in_fresh_process(write_single, single_path, single_rows)
        progress("validating it")
        single, single_note = in_fresh_process(single_series, single_path, args.repeat)
        single_path.unlink()

        hours = args.rows // args.series
        folder = work / "series"
        folder.mkdir()
        progress(f"generating {args.series:,} series x {hours:,} hours (not timed)")
        paths, spoilt, bad_rows = in_fresh_process(write_series, folder, args.series, hours)
        names = [str(p) for p in paths]
        share = names[:: max(1, min(SERIAL_SHARE, args.series))]
        progress(f"validating {len(share):,} of them serially")
        serial = in_fresh_process(serial_series, share)
        progress(f"validating all {args.series:,} with Dask")
        run = in_fresh_process(dask_series, names, args.workers)

    print_table(f"2. {args.rows:,} hourly rows", [single, serial, run.figure])
    why = ""
    if args.rows > NS_SPAN_HOURS:
        why = (
            f"; datetime64[ns] spans {NS_SPAN_HOURS:,} hours, "
            f"so {args.rows:,} consecutive hours cannot be one series"
        )
    elif single_rows < args.rows:
        why = " (reduced with --single-rows)"
    print(f"  1 series: {single_rows:,} hours from {SINGLE_START}{why}")
    print(f"  {single_note}")
    print_dask_notes(run, serial, len(share), args.workers)
    print_bad_rows(run.outcomes, spoilt, bad_rows)
    print(f"\nload average {load_average()} at the end (other work on the machine skews figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
