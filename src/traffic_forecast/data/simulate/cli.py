"""``traffic-forecast simulate``: simulate one period and write its raw CSV tables."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from traffic_forecast.core import command
from traffic_forecast.data.simulate.config import SimulationConfig
from traffic_forecast.data.simulate.core import simulate
from traffic_forecast.data.simulate.io import write_raw_tables

log = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    config = replace(SimulationConfig(), seed=args.seed)
    tables = simulate(config, period=args.period)
    paths = write_raw_tables(tables, args.out)
    log.info("simulated the %s period into %s", args.period, ", ".join(map(str, paths)))
    return 0


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
    parser = command.parser(
        "simulate",
        "Write the example's raw tables (traffic, sale events, infrastructure) with the "
        "deterministic simulator: the same seed gives the same bytes.",
        overrides=False,
    )
    parser.add_argument("--out", type=Path, default=Path("data/raw"), help="output directory")
    parser.add_argument("--period", choices=("history", "drift"), default="history")
    parser.add_argument("--seed", type=int, default=SimulationConfig.seed)
    return command.run(parser, _run, argv)
