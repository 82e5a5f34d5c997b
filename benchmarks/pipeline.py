"""Benchmark the DVC pipeline as a new user meets it: a fresh clone, its data, then `dvc repro`.

The repository's committed HEAD is cloned into a temporary folder with its own empty DVC remote;
``traffic-forecast data`` regenerates data/raw and pushes it (not timed). Then, timed:

1. the first ``dvc repro`` of the clone, as a user runs it (stages whose committed, git-tracked
   reports still match are skipped), then ``dvc repro --force``: every stage of the pipeline;
2. a ``dvc repro`` with nothing to do, and where its time goes (interpreter and DVC start-up,
   ``dvc status``, the repro itself), measured with the same commands;
3. ``model=auto`` (params.yaml composed with it, as ``dvc exp run -S model=auto`` does), then
   ``dvc repro --force``: every candidate backtested, the ensemble, the winner trained; each
   candidate's backtest time is printed.

Stages run ``python -m traffic_forecast.pipeline.<stage>`` from the clone's own ``src/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
METRICS = Path("reports/metrics.json")
COLD_TARGET_S = 60.0
AUTO_TARGET_S = 180.0
NOOP_TARGET_S = 3.0
MIN_FOLDS = 26

RUNNING = re.compile(r"^Running stage '([^']+)'")
SKIPPED = re.compile(r"^Stage '([^']+)' (didn't change, skipping|is cached)")
BACKTEST = re.compile(r"^backtest (\S+): (\d+) folds in ([\d.]+) s(?: \((\S+)\))?")
CHOSEN = re.compile(r"^model=auto chose (\S+)")


@dataclass
class Timed:
    """One command: wall seconds, exit code, the stages it ran with their seconds, its output."""

    seconds: float
    returncode: int
    stages: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)


def env_for(repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "ITERATIVE_DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        "PYTHONPATH": str(repo / "src"),  # the clone's code, not the editable install's
    }


def timed(repo: Path, *args: str) -> Timed:
    """Run a command in the clone, timing each DVC stage by when its output lines arrive."""
    start = time.perf_counter()
    process = subprocess.Popen(
        args,
        cwd=repo,
        env=env_for(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    result = Timed(0.0, 0)
    current: tuple[str, float] | None = None

    def close(now: float) -> None:
        if current is not None:
            result.stages[current[0]] = now - current[1]

    for line in process.stdout:
        now = time.perf_counter()
        result.output.append(line.rstrip("\n"))
        if running := RUNNING.match(line):
            close(now)
            current = (running[1], now)
        elif skipped := SKIPPED.match(line):
            close(now)
            current = None
            result.skipped.append(skipped[1])
    result.returncode = process.wait()
    result.seconds = time.perf_counter() - start
    close(time.perf_counter())
    return result


def dvc(repo: Path, *args: str) -> Timed:
    return timed(repo, sys.executable, "-m", "dvc", *args)


def must(run: Timed, what: str) -> Timed:
    if run.returncode != 0:
        tail = "\n".join(run.output[-20:])
        sys.exit(f"{what} exited {run.returncode}:\n{tail}")
    return run


def cli() -> list[str]:
    """The ``traffic-forecast`` command of this environment."""
    script = VENV_BIN / "traffic-forecast"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "traffic_forecast.cli"]


def clone(parent: Path) -> Path:
    """A clone of HEAD with its own empty remote, and data/raw from ``traffic-forecast data``."""
    repo = parent / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    must(dvc(repo, "remote", "modify", "--local", "storage", "url", str(parent / "remote")), "")
    must(timed(repo, *cli(), "data"), "traffic-forecast data")
    return repo


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def best(runs: list[Timed]) -> Timed:
    return min(runs, key=lambda r: r.seconds)


def stage_cells(run: Timed) -> str:
    ran = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.stages.items())
    return ran or "none"


def row(case: str, seconds: float, target: str, verdict: str, note: str) -> None:
    print(f"  {case:<36} {seconds:>8.2f}  {target:<8} {verdict:<5} {note}")


def ok(passed: bool) -> str:
    return "ok" if passed else "OVER"


def metrics_lines(repo: Path, force: Timed) -> list[str]:
    metrics: dict[str, Any] = json.loads((repo / METRICS).read_text(encoding="utf-8"))
    backtest = metrics["backtest"]
    folds = backtest["folds"]
    model, baseline = metrics["model"]["mase"], metrics["baseline"]["mase"]
    beats = "model beats baseline" if model < baseline else "model does NOT beat baseline"
    lines = [
        f"  folds {folds} (target >= {MIN_FOLDS}: {'ok' if folds >= MIN_FOLDS else 'FEWER'}), "
        f"{backtest['horizon_hours']} h ahead every {backtest['step_hours']} h",
        f"  MASE model {model:.3f}, baseline {baseline:.3f}, "
        f"ratio {metrics['mase_vs_baseline']:.2f} ({beats})",
    ]
    return lines + backtest_lines(force)


def backtest_lines(run: Timed) -> list[str]:
    """Each backtest's time, from the evaluate stage's log, and model=auto's choice."""
    lines = []
    for line in run.output:
        if found := BACKTEST.match(line):
            role = f" as {found[4]}" if found[4] else ""
            lines.append(f"  backtest of {found[1]}{role}: {found[2]} folds in {found[3]} s")
        elif found := CHOSEN.match(line):
            lines.append(f"  {line.strip()}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1, help="runs per timing; the best is shown")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"pipeline benchmark: HEAD {head}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; best of {args.repeat}; load average {load_average()} "
        "at start"
    )
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        progress("cloning HEAD and getting data/raw (traffic-forecast data, not timed)")
        repo = clone(Path(tmp))
        progress("first dvc repro of the clone")
        first = must(dvc(repo, "repro"), "dvc repro")
        forced = []
        for i in range(args.repeat):
            progress(f"dvc repro --force ({i + 1}/{args.repeat})")
            forced.append(must(dvc(repo, "repro", "--force"), "dvc repro --force"))
        noop, startup, status = [], [], []
        for _ in range(args.repeat):
            progress("no-op dvc repro, dvc status, dvc --version")
            noop.append(must(dvc(repo, "repro"), "dvc repro"))
            status.append(must(dvc(repo, "status"), "dvc status"))
            startup.append(must(dvc(repo, "--version"), "dvc --version"))
        imports = must(timed(repo, sys.executable, "-c", "import dvc.repo, dvc.cli"), "import dvc")
        python = must(timed(repo, sys.executable, "-c", "pass"), "python")
        force = best(forced)
        lines = metrics_lines(repo, force)
        progress("model=auto: traffic-forecast params model=auto, dvc repro --force")
        must(timed(repo, *cli(), "params", "model=auto"), "traffic-forecast params model=auto")
        auto = must(dvc(repo, "repro", "--force"), "dvc repro --force (model=auto)")

    print(f"\n  {'case':<36} {'wall s':>8}  {'target':<8} {'':<5} stages run (s)")
    print("  " + "-" * 100)
    row("1. first dvc repro of a fresh clone", first.seconds, "", "", stage_cells(first))
    if first.skipped:
        print(f"  {'':<36} {'':>8}  {'':<8} {'':<5} skipped: {', '.join(first.skipped)}")
    row(
        "   dvc repro --force (all stages)",
        force.seconds,
        f"<= {COLD_TARGET_S:.0f}",
        ok(force.seconds <= COLD_TARGET_S),
        stage_cells(force),
    )
    quick = best(noop)
    row(
        "2. no-op dvc repro",
        quick.seconds,
        f"<= {NOOP_TARGET_S:.0f}",
        ok(quick.seconds <= NOOP_TARGET_S and not quick.stages),
        "none" if not quick.stages else f"RAN {stage_cells(quick)}",
    )
    row("   for comparison: python start-up", python.seconds, "", "", "python -c pass")
    row("   python + import dvc", imports.seconds, "", "", "import dvc.repo, dvc.cli")
    row("   dvc --version", best(startup).seconds, "", "", "start-up, CLI parse")
    row("   dvc status", best(status).seconds, "", "", "collect stages, hash deps/outs")
    row(
        "3. model=auto, dvc repro --force",
        auto.seconds,
        f"<= {AUTO_TARGET_S:.0f}",
        ok(auto.seconds <= AUTO_TARGET_S),
        stage_cells(auto),
    )
    in_stages = sum(force.stages.values())
    print(
        f"\n  per-stage seconds run from its 'Running stage' line to the next stage's line "
        f"(DVC hashing and lock writing included); {force.seconds - in_stages:.1f} s of the "
        "forced run were before the first stage"
    )
    print("\nbacktest (reports/metrics.json after dvc repro --force)")
    for line in lines:
        print(line)
    print("\nmodel=auto: each candidate's backtest (dvc repro --force with model=auto)")
    for line in backtest_lines(auto):
        print(line)
    print(f"\nload average {load_average()} at the end (other work on the machine skews figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
