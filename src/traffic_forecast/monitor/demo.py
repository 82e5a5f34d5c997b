"""New actuals for the example, and ``make drift-demo``: the whole loop, locally.

``traffic-forecast actuals`` fills ``monitor.actuals_dir``: for the simulated example, with the
simulator's later, drifted quarter (traffic +35 %, a new ``live_stream`` sale kind, capacity
-10 %); for bring-your-own data it only checks that the team's ingestion has put files there.

``traffic-forecast drift-demo``: the drifted quarter arrives → the monitor flags it → in a
scratch clone, the retrain step ingests it, retrains and commits a proposal branch → the PR
report of that branch against this commit, with the new period's error before and after.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.proc import run_checked
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.simulate import SimulationConfig, simulate, write_raw_tables
from traffic_forecast.monitor import watch
from traffic_forecast.monitor.retrain import RETRAIN_MD

log = logging.getLogger(__name__)

DEMO_DIR = Path("build/drift-demo")


def fill_actuals(cfg: Config, folder: Path) -> str:
    """Put the new actuals in ``folder``; what was done, in words."""
    if cfg.data.source != "simulator":
        if not (folder / Path(cfg.data.traffic_file).name).is_file():
            raise PipelineInputError(
                f"{folder} holds no new actuals: your ingestion writes the raw tables there"
            )
        return f"new actuals already in {folder}"
    write_raw_tables(
        simulate(SimulationConfig(seed=cfg.data.simulator.seed), period="drift"), folder
    )
    return f"simulated the drifted quarter into {folder}"


def _in(repo: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}  # the clone's code, for DVC's stages too
    return run_checked(*args, cwd=repo, env=env)


def drift_demo(cfg: Config, work: Path = DEMO_DIR) -> str:
    """The loop; the proposal's summary and where to look."""
    if work.exists():
        shutil.rmtree(work)
    incoming = (work / "incoming").resolve()
    log.info("%s", fill_actuals(cfg, incoming))
    # The simulator's quarter, whatever a local deployment's observation store holds.
    result = watch.watch(cfg, incoming, model="workspace", actuals_from="files")
    watch.write(result, Path(cfg.paths.reports_dir))
    log.info("monitor: %s", result.verdict.headline())
    for check in result.verdict.breached:
        log.info("  breached: %s", check.text)
    if not result.verdict.retrain:
        return "the monitor found nothing to retrain for"
    repo = work / "repo"
    base = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", ".", str(repo)], check=True)
    python = sys.executable
    _in(repo, python, "-m", "traffic_forecast.cli", "data")
    (repo / cfg.paths.reports_dir).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(
        Path(cfg.paths.reports_dir) / watch.REPORT_JSON,
        repo / cfg.paths.reports_dir / watch.REPORT_JSON,
    )
    log.info("retraining in %s on the old data + the new quarter (dvc exp run) …", repo)
    _in(repo, python, "-m", "traffic_forecast.cli", "retrain", "--actuals", str(incoming))
    _in(repo, python, "-m", "traffic_forecast.cli", "report", "--base", base)
    headline = (
        (repo / cfg.paths.reports_dir / "report.md").read_text(encoding="utf-8").splitlines()[0]
    )
    proposal = (repo / cfg.paths.reports_dir / RETRAIN_MD).read_text(encoding="utf-8")
    return (
        f"{proposal}\nPR report of the proposal against {base[:7]}: {headline}\n"
        f"  {repo / cfg.paths.reports_dir / 'report.md'} (branch: `git -C {repo} log -1`)"
    )


def _actuals(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    print(fill_actuals(cfg, Path(cfg.monitor.actuals_dir)))
    return 0


def _drift_demo(args: argparse.Namespace) -> int:
    print(drift_demo(load_config(args.overrides)))
    return 0


def actuals_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast actuals [overrides…]``."""
    return command.run(command.parser("actuals", __doc__), _actuals, argv)


def drift_demo_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast drift-demo [overrides…]``."""
    return command.run(command.parser("drift-demo", __doc__), _drift_demo, argv)
