"""Benchmark fleet mode on Spark: validation, global and local batch forecasts, scaling, memory.

Every figure comes from a fleet of N simulated series x 1 year hourly (8,760 rows a series),
written as the fleet store writes it (Parquet, one file per series and month). Each measured job
runs in its own process with its own Spark session (``local[k]``, a driver memory setting), and
the process tree's resident memory is sampled while it runs: the driver JVM (which in local mode
also runs the tasks) and the Python workers Spark starts for ``applyInPandas``.

Printed, side by side with the issue's targets:

1. 1,000 series: validation; ``global`` (one GBT) fit + 168 h batch forecast of every series;
   ``local`` (a forecaster per series) fit + 168 h batch forecast; both published as a run;
2. the same local work as a single-process pandas loop (no Spark), and the ratio (on 200
   series by default: the loop alone would take about half an hour on 1,000);
3. ``local[2]`` vs ``local[1]`` on the local batch forecast (speed-up);
4. validation and the global fit + forecast at 100, 1,000 and 5,000 series, with a
   least-squares line through the times (seconds per 1,000 series, R^2);
5. out of core: validation and a local batch forecast (seasonal naive) of a fleet at least 3x
   the driver's memory setting, with the peak memory of the driver and the workers.

``--quick`` runs every part at small sizes (a smoke test of the script, minutes); ``--only
global,local`` runs some parts. The full run takes about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parents[1]
YEAR = {"start": "2024-01-01", "end": "2024-12-30 23:00"}  # 365 days: 8,760 hours
# Series = regions x services; Spark's trees need max_bins >= the services of a region.
GLOBAL_MAX_BINS = 128
SERIES_PER_CHUNK = 1000  # written 1,000 series at a time: bounded memory for any fleet size
VALIDATE_TARGET_S, GLOBAL_TARGET_S, LOCAL_TARGET_S = 60.0, 300.0, 900.0
SPEEDUP_TARGET, OUT_OF_CORE_FACTOR = 1.6, 3.0
RESULT = "RESULT "
TWO_CORES = {"master": "local[2]", "driver_memory": "4g"}  # the targets' setting
SAMPLE_S = 0.25


# --- the fleet on disk -------------------------------------------------------------------


def write_benchmark_fleet(folder: Path, series: int) -> dict[str, Any]:
    """``series`` series x 1 year under ``folder/raw`` and the sale calendar; sizes written."""
    from traffic_forecast.core.config import FleetConfig  # noqa: PLC0415
    from traffic_forecast.core.io import write_parquet_atomic  # noqa: PLC0415
    from traffic_forecast.data.fleet_files import (  # noqa: PLC0415
        FLEET_SCHEMA,
        MONTH_FORMAT,
        PARTITION_COLUMNS,
    )
    from traffic_forecast.data.simulate import SimulationConfig, simulate  # noqa: PLC0415
    from traffic_forecast.data.simulate.fleet import split_site_total  # noqa: PLC0415

    started = time.perf_counter()
    day_after = "2024-12-31"
    site = simulate(SimulationConfig(**YEAR, drift_start=day_after, drift_end=day_after))
    region_count = 10 if series < 1000 else 25 if series < 5000 else 50
    regions = {f"r{r:02d}": (2 * r) % 24 - 11 for r in range(region_count)}
    services_per_region = max(1, series // region_count)
    per_chunk = max(1, SERIES_PER_CHUNK // region_count)
    raw, in_memory = folder / "raw", 0
    for chunk, first in enumerate(range(0, services_per_region, per_chunk)):
        last = min(services_per_region, first + per_chunk)
        fleet = FleetConfig(
            regions=regions, services=[f"svc{s:04d}" for s in range(first, last)], seed=chunk
        )
        frame = split_site_total(site.traffic, fleet)
        frame["month"] = frame["timestamp"].dt.strftime(MONTH_FORMAT)
        table = pa.Table.from_pandas(frame, schema=FLEET_SCHEMA, preserve_index=False)
        in_memory += table.nbytes
        ds.write_dataset(
            table.replace_schema_metadata(None),
            raw,
            format="parquet",
            partitioning=ds.partitioning(
                pa.schema([FLEET_SCHEMA.field(name) for name in PARTITION_COLUMNS]), flavor="hive"
            ),
            basename_template=f"part-{chunk}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
        )
    write_parquet_atomic(site.sale_events, folder / "sale_events.parquet")
    files = list(raw.rglob("*.parquet"))
    return {
        "series": region_count * services_per_region,
        "rows": region_count * services_per_region * len(site.traffic),
        "files": len(files),
        "parquet_mb": sum(f.stat().st_size for f in files) / 2**20,
        "arrow_mb": in_memory / 2**20,
        "seconds": time.perf_counter() - started,
    }


# --- the measured jobs (each in its own process) --------------------------------------------


def _config(model: str, fleet_model: str, folder: Path) -> Any:
    from traffic_forecast.core.settings import load_config  # noqa: PLC0415

    return load_config(
        [
            "data=fleet",
            f"model={model}",
            f"data.fleet.model={fleet_model}",
            f"data.fleet.raw_dir={folder / 'raw'}",
            f"data.fleet.validated_dir={folder / 'validated'}",
            f"data.fleet.sale_events_file={folder / 'sale_events.parquet'}",
            f"data.fleet.predictions_dir={folder / 'predictions'}",
            f"data.fleet.global_model.max_bins={GLOBAL_MAX_BINS}",
        ],
        params_file=None,
    )


def _spark(args: argparse.Namespace, folder: Path) -> Any:
    from traffic_forecast.core.config import SparkConfig  # noqa: PLC0415
    from traffic_forecast.fleet.spark import session  # noqa: PLC0415

    return session(
        SparkConfig(
            master=args.master,
            driver_memory=args.driver_memory,
            shuffle_partitions=args.shuffle_partitions,
            local_dir=str(folder / "spark"),
        )
    )


def run_job(args: argparse.Namespace) -> dict[str, Any]:
    """One job in this process: ``validate``, ``forecast`` (Spark) or ``loop`` (pandas)."""
    import pandas as pd  # noqa: PLC0415

    from traffic_forecast.data.fleet_files import read_fleet  # noqa: PLC0415
    from traffic_forecast.fleet.batch import Lineage, publish  # noqa: PLC0415
    from traffic_forecast.fleet.cli import read_sale_calendar, series_job  # noqa: PLC0415
    from traffic_forecast.fleet.series import SERIES_ID, series_forecast  # noqa: PLC0415
    from traffic_forecast.fleet.train import fleet_forecasts  # noqa: PLC0415
    from traffic_forecast.fleet.validation import validate_and_publish  # noqa: PLC0415

    folder = Path(args.folder)
    cfg = _config(args.model, args.fleet_model, folder)
    lineage = Lineage(model_version=args.model, data_version="benchmark", config_hash="-")
    if args.job == "loop":  # the same work as the local mode's, one series after another
        started = time.perf_counter()
        calendar = read_sale_calendar(cfg)
        frame = pd.read_parquet(folder / "validated")
        job = series_job(cfg).in_task()
        parts = [
            series_forecast(rows.drop(columns="month"), calendar, job)
            for _, rows in frame.groupby(SERIES_ID, sort=True, observed=True)
        ]
        pd.concat(parts, ignore_index=True).to_parquet(folder / "loop_forecasts.parquet")
        return {"seconds": time.perf_counter() - started, "rows": sum(map(len, parts))}
    spark = _spark(args, folder)
    spark.range(1).count()  # the session is up: its start-up is not the job's time
    started = time.perf_counter()
    if args.job == "validate":
        result = validate_and_publish(
            spark, folder / "raw", folder / "validated", folder / "reports"
        )
        out = {"passed": result.passed, "series": result.series}
    else:
        calendar = read_sale_calendar(cfg)
        frame = read_fleet(spark, folder / "validated")
        forecasts = fleet_forecasts(frame, calendar, cfg.data.fleet, series_job(cfg))
        run = publish(
            forecasts, folder / "predictions", f"{args.fleet_model}-{args.model}", lineage
        )
        out = {"rows": run.rows, "series": run.series}
    out["seconds"] = time.perf_counter() - started
    spark.stop()
    return out


@dataclass(frozen=True)
class Measured:
    """A job's own time (session start-up excluded), its result and peak memory (MiB)."""

    seconds: float
    result: dict[str, Any]
    peak_jvm_mb: float
    peak_workers_mb: float
    peak_total_mb: float


def measure(folder: Path, job: str, **options: str) -> Measured:
    """Run ``job`` in a child process; sample its process tree's memory while it runs."""
    command = [sys.executable, __file__, "job", job, "--folder", str(folder)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", value]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(child.pid)
    peak_jvm = peak_workers = peak_total = 0.0
    while child.poll() is None:
        jvm = workers = 0.0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for process in tree:
            try:
                rss = process.memory_info().rss / 2**20
                name = process.name()
            except psutil.NoSuchProcess:
                continue
            if name == "java":
                jvm += rss
            elif process.pid != root.pid:
                workers += rss
        driver = _rss(root)
        peak_jvm, peak_workers = max(peak_jvm, jvm), max(peak_workers, workers)
        peak_total = max(peak_total, jvm + workers + driver)
        time.sleep(SAMPLE_S)
    stdout, stderr = child.communicate()
    lines = [line for line in stdout.decode().splitlines() if line.startswith(RESULT)]
    if child.returncode != 0 or not lines:
        raise SystemExit(f"{job} {options} failed ({child.returncode}):\n{stderr.decode()[-3000:]}")
    result = json.loads(lines[-1][len(RESULT) :])
    return Measured(result["seconds"], result, peak_jvm, peak_workers, peak_total)


def _rss(process: psutil.Process) -> float:
    try:
        return float(process.memory_info().rss) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


# --- the report --------------------------------------------------------------------------------


def linear_fit(sizes: list[int], seconds: list[float]) -> tuple[float, float, float]:
    """Least squares ``seconds = a + b x series``: (a, b per 1,000 series, R^2)."""
    x, y = np.asarray(sizes, dtype=float), np.asarray(seconds, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    predicted = intercept + slope * x
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - predicted) ** 2).sum()) / total if total > 0 else 1.0
    return float(intercept), float(slope * 1000), r2


def _row(name: str, value: str, target: str, met: bool | None) -> None:
    verdict = "" if met is None else ("met" if met else "MISSED")
    print(f"  {name:<52} {value:>14}   {target:<16} {verdict}")


class Bench:
    """The fleets (written once per size, in a scratch folder) and the jobs timed on them."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.written: dict[int, tuple[Path, dict[str, Any]]] = {}
        self.timings: dict[str, Measured] = {}

    def fleet(self, series: int) -> Path:
        """The folder of the fleet of ``series`` series, written on first use (not timed)."""
        if series not in self.written:
            folder = self.scratch / f"fleet-{series}"
            written = write_benchmark_fleet(folder, series)
            print(
                f"fleet of {written['series']:,} series: {written['rows']:,} rows, "
                f"{written['files']:,} files, {written['parquet_mb']:.0f} MiB Parquet, "
                f"{written['arrow_mb']:.0f} MiB in memory (Arrow), written in "
                f"{written['seconds']:.0f} s",
                flush=True,
            )
            self.written[series] = (folder, written)
        return self.written[series][0]

    def arrow_mb(self, series: int) -> float:
        """The fleet's size in memory as Arrow columns, MiB."""
        return float(self.written[series][1]["arrow_mb"])

    def timed(self, label: str, series: int, job: str, **options: str) -> Measured:
        """``job`` on the fleet of ``series`` series; a forecast validates the fleet first."""
        folder = self.fleet(series)
        if job != "validate" and not (folder / "validated").is_dir():
            measure(folder, "validate", **TWO_CORES)
        measured = measure(folder, job, **options)
        self.timings[label] = measured
        print(
            f"  {label}: {measured.seconds:.1f} s (peak memory: driver JVM "
            f"{measured.peak_jvm_mb:.0f} MiB, workers {measured.peak_workers_mb:.0f} MiB)",
            flush=True,
        )
        return measured


PARTS = ("validate", "global", "local", "speedup", "loop", "out-of-core")


def run_all(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """The measurements of ``args.only`` (every part by default), in the docstring's order.

    ``validate`` and ``global`` also run at every ``--scaling`` size (the line through them).
    """
    n, two, parts = args.series, TWO_CORES, args.only
    figures: dict[str, Any] = {}
    jobs = {"validate": {}, "global": {"fleet_model": "global"}, "local": {"fleet_model": "local"}}
    for kind, options in jobs.items():
        if kind in parts:
            job = "validate" if kind == "validate" else "forecast"
            figures[kind] = bench.timed(f"{kind} {n}", n, job, **options, **two)
    speed_n = args.speedup_series
    if "speedup" in parts or ("loop" in parts and args.loop_series == speed_n):
        for cores in (1, 2) if "speedup" in parts else (2,):
            figures[f"local[{cores}]"] = bench.timed(
                f"local[{cores}] {speed_n}",
                speed_n,
                "forecast",
                fleet_model="local",
                master=f"local[{cores}]",
                driver_memory="4g",
            )
    if "loop" in parts:
        loop_n = args.loop_series
        known = {n: figures.get("local"), speed_n: figures.get("local[2]")}
        figures["spark_loop"] = known.get(loop_n) or bench.timed(
            f"local {loop_n}", loop_n, "forecast", fleet_model="local", **two
        )
        figures["loop"] = bench.timed(f"pandas loop {loop_n}", loop_n, "loop")
    figures["line"] = {
        kind: [
            (
                figures[kind]
                if size == n
                else bench.timed(
                    f"{kind} {size}",
                    size,
                    "validate" if kind == "validate" else "forecast",
                    **jobs[kind],
                    **two,
                )
            ).seconds
            for size in args.scaling
        ]
        for kind in ("validate", "global")
        if kind in parts
    }
    if "out-of-core" in parts:
        big = args.out_of_core_series
        memory = {"master": "local[2]", "driver_memory": args.out_of_core_memory}
        figures["ooc_validate"] = bench.timed(
            f"out of core: validate {big}", big, "validate", **memory
        )
        figures["ooc_forecast"] = bench.timed(
            f"out of core: local seasonal naive {big}",
            big,
            "forecast",
            fleet_model="local",
            model="seasonal_naive",
            **memory,
        )
        figures["ooc_arrow_mb"] = bench.arrow_mb(big)
    return figures


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    """The table: each figure measured beside its target."""
    n = args.series
    print(f"\nfleet on Spark, {n:,} series x 8,760 hours ({n * 8760:,} rows), local[2]:")
    for label, key, target in (
        ("validation (Pandera on Spark)", "validate", VALIDATE_TARGET_S),
        ("global: fit + 168 h batch forecast, published", "global", GLOBAL_TARGET_S),
        ("local: fit + 168 h batch forecast, published", "local", LOCAL_TARGET_S),
    ):
        if key in figures:
            seconds = figures[key].seconds
            _row(label, f"{seconds:.1f} s", f"<= {target:.0f} s", seconds <= target)
    if "loop" in figures:
        loop, spark_loop = figures["loop"].seconds, figures["spark_loop"].seconds
        _row(f"pandas loop, {args.loop_series:,} series (local's work)", f"{loop:.1f} s", "", None)
        _row("  pandas loop / Spark local[2]", f"{loop / spark_loop:.2f}x", "printed", None)
    if "local[1]" in figures:
        speedup = figures["local[1]"].seconds / figures["local[2]"].seconds
        _row(
            f"local[2] vs local[1], local mode, {args.speedup_series:,} series",
            f"{speedup:.2f}x",
            f">= {SPEEDUP_TARGET}x",
            speedup >= SPEEDUP_TARGET,
        )
    for kind, seconds in figures["line"].items():
        intercept, per_thousand, r2 = linear_fit(args.scaling, seconds)
        points = ", ".join(f"{x:,}: {y:.0f} s" for x, y in zip(args.scaling, seconds, strict=True))
        _row(f"{kind} by fleet size ({points})", f"{per_thousand:.1f} s/1k", "linear", r2 >= 0.95)
        _row("  fit: R^2, fixed cost", f"{r2:.3f}, {intercept:.1f} s", "R^2 >= 0.95", None)
    if "ooc_arrow_mb" in figures:
        _out_of_core_rows(args, figures)


def _out_of_core_rows(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    setting_mb, arrow_mb = _mebibytes(args.out_of_core_memory), figures["ooc_arrow_mb"]
    _row(
        f"out of core: {args.out_of_core_series:,} series in memory (Arrow)",
        f"{arrow_mb:.0f} MiB",
        f">= {OUT_OF_CORE_FACTOR:.0f}x {setting_mb:.0f} MiB",
        arrow_mb >= OUT_OF_CORE_FACTOR * setting_mb,
    )
    for label, key in (("validation", "ooc_validate"), ("local seasonal naive", "ooc_forecast")):
        measured = figures[key]
        _row(f"  {label}: time", f"{measured.seconds:.1f} s", "completes", True)
        _row(
            f"  {label}: peak RSS driver JVM / workers",
            f"{measured.peak_jvm_mb:.0f}/{measured.peak_workers_mb:.0f} MiB",
            "bounded",
            None,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000, help="the targets' fleet size")
    parser.add_argument("--scaling", default="100,1000,5000", help="fleet sizes of the line")
    parser.add_argument("--speedup-series", type=int, default=200)
    parser.add_argument("--loop-series", type=int, default=200, help="pandas loop's fleet")
    parser.add_argument("--out-of-core-series", type=int, default=3000)
    parser.add_argument("--out-of-core-memory", default="512m", help="spark.driver.memory")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"some of {', '.join(PARTS)} (default: all)"
    )
    args = parser.parse_args()
    args.only = [part.strip() for part in args.only.split(",")]
    if unknown := sorted(set(args.only) - set(PARTS)):
        parser.error(f"--only: unknown part(s) {unknown}; choose from {PARTS}")
    if args.quick:
        args.series, args.scaling, args.speedup_series = 40, "20,40,80", 20
        args.loop_series, args.out_of_core_series = 40, 200
    args.scaling = sorted({int(size) for size in args.scaling.split(",")})
    print(f"fleet benchmark: {platform.machine()}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as scratch:
        bench = Bench(Path(scratch))
        figures = run_all(bench, args)
    report(args, figures)
    timings = {label: asdict(measured) for label, measured in bench.timings.items()}
    print(json.dumps(timings, indent=1), file=sys.stderr)
    return 0


def _mebibytes(setting: str) -> float:
    units = {"k": 1 / 1024, "m": 1.0, "g": 1024.0}
    return float(setting[:-1]) * units[setting[-1].lower()]


def job_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["validate", "forecast", "loop"])
    parser.add_argument("--folder", required=True)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--model", default="gradient_boosting")
    parser.add_argument("--fleet-model", default="local")
    result = run_job(parser.parse_args(argv))
    print(RESULT + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "job":
        sys.exit(job_main(sys.argv[2:]))
    sys.exit(main())
