"""The command-line framework of every command: argparse, Hydra overrides, one-line errors.

A command module makes its parser with `parser` and runs its body with `run`. So every command
answers ``--help`` (exit 0), refuses a wrong argument with its usage (exit 2), takes Hydra
overrides the same way, and reports a user error (a `TrafficForecastError`) in one line with
its exit code, never with a traceback. ``traffic-forecast <command>`` (`traffic_forecast.cli`)
and ``python -m traffic_forecast.pipeline.<stage>`` (DVC) both end here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable

from traffic_forecast.core.errors import TrafficForecastError

log = logging.getLogger("traffic_forecast")

PROG = "traffic-forecast"
OVERRIDES_HELP = (
    "Hydra overrides, applied on top of params.yaml and conf/ops.yaml: a group option "
    "(model=theta) or a setting (backtest.n_folds=8, deploy.router_port=9080)"
)
EXIT_INTERRUPTED = 130


def configure_logging() -> None:
    """Plain messages on stderr; ``TRAFFIC_FORECAST_LOG=DEBUG`` shows more."""
    level = os.environ.get("TRAFFIC_FORECAST_LOG", "INFO").upper()
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise here


class CommandParser(argparse.ArgumentParser):
    """A command's parser; Hydra overrides, when it takes them, come after its own arguments."""

    def __init__(self, name: str, doc: str | None, *, overrides: bool) -> None:
        super().__init__(
            prog=f"{PROG} {name}",
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.takes_overrides = overrides
        self.set_defaults(overrides=[])


def parser(name: str, doc: str | None, *, overrides: bool = True) -> CommandParser:
    """The parser of ``traffic-forecast <name>``, described by ``doc`` (a module docstring)."""
    return CommandParser(name, doc, overrides=overrides)


def run(
    made: CommandParser,
    body: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """Parse ``argv`` (default: the process's), run ``body``; its exit code, or the error's."""
    if made.takes_overrides:  # last: a positional argument of the command goes before them
        made.add_argument("overrides", nargs="*", metavar="OVERRIDE", help=OVERRIDES_HELP)
    try:
        # Intermixed: overrides may also follow a command's options (`observe f.csv --wait
        # model=auto`); argparse's plain parse takes them only next to the other positionals.
        with warnings.catch_warnings():  # argparse's own note on an empty `nargs="*"` pass
            warnings.filterwarnings("ignore", message="Do not expect", category=UserWarning)
            args = made.parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as done:  # --help (0) or a usage error (2), already printed
        return int(done.code or 0)
    configure_logging()
    try:
        return body(args)
    except TrafficForecastError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
