"""Command line: simulate one period and write its raw CSV tables."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from traffic_forecast.simulate.config import SimulationConfig
from traffic_forecast.simulate.core import simulate
from traffic_forecast.simulate.io import write_raw_tables

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m traffic_forecast.simulate", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="output directory")
    parser.add_argument("--period", choices=("history", "drift"), default="history")
    parser.add_argument("--seed", type=int, default=SimulationConfig.seed)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator and write the three raw tables.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv`` when omitted.

    Returns
    -------
    int
        Process exit status.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = replace(SimulationConfig(), seed=args.seed)
    tables = simulate(config, period=args.period)
    paths = write_raw_tables(tables, args.out)
    log.info("simulated %s period into %s", args.period, ", ".join(map(str, paths)))
    return 0
