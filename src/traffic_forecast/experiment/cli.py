"""``traffic-forecast experiment start|stop|status|analyse|post|promote``: champion vs challenger.

``start <bento>`` runs a challenger in the idle colour beside the live champion (conf
``experiment/``: shadow or split); ``stop`` gives the champion all traffic again. ``analyse``
scores both arms on the hours that came and decides (``reports/experiment.md``); ``post`` puts
that on the challenger's pull request and ``promote`` proposes the challenger as the release, as
the scheduled workflow ``experiment.yml`` does. ``guard`` is started by ``start``, not by people.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from traffic_forecast.core import command
from traffic_forecast.deploy.cli import bento_tag, config
from traffic_forecast.experiment import gitops, run

log = logging.getLogger(__name__)
EXIT_USAGE = 2


def _start(args: argparse.Namespace) -> int:
    cfg = config(args.overrides)
    experiment = run.start(
        bento_tag(args.bento, cfg),
        cfg,
        experiment_id=args.id,
        pull_request=args.pr,
        issue=args.issue,
    )
    champion, challenger = experiment.champion, experiment.challenger
    who = (
        "every request answered by the champion, a copy forecast by the challenger"
        if experiment.mode == "shadow"
        else f"the challenger answers {experiment.share:.0%} of clients "
        f"(by {experiment.client_header})"
    )
    print(
        f"experiment {experiment.id} ({experiment.mode}): {who}\n"
        f"  champion   {champion.colour:5}  {champion.bento}  model {champion.model}\n"
        f"  challenger {challenger.colour:5}  {challenger.bento}  model {challenger.model}\n"
        "guardrails checked every "
        f"{cfg.experiment.guardrails.check_interval_s:g} s; `traffic-forecast experiment "
        "analyse` scores it, `traffic-forecast experiment stop` ends it"
    )
    return 0


def _stop(args: argparse.Namespace) -> int:
    experiment = run.stop(config(args.overrides))
    print(f"experiment {experiment.id} stopped: {experiment.champion.colour} serves alone")
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = config(args.overrides)
    experiment = run.current(Path(cfg.deploy.state_dir))
    if experiment is None:
        print("no experiment on this deployment")
        return 0
    print(json.dumps(experiment.as_json(), indent=2))
    return 0


def _guard(args: argparse.Namespace) -> int:
    log.info("guard of %s: %s", args.id, run.guard(args.state_dir, args.id))
    return 0


def start_main(argv: list[str] | None) -> int:
    """``experiment start <bento> [--id ID] [--pr N | --issue N] [overrides…]``."""
    parser = command.parser("experiment start", run.__doc__)
    parser.add_argument("bento", help="the challenger: a Bento tag, latest, or a .bento file")
    parser.add_argument("--id", default=None, help="the experiment's id (default: from the time)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pr", type=int, default=None, help="the challenger's pull request")
    where.add_argument("--issue", type=int, default=None, help="a tracking issue instead")
    return command.run(parser, _start, argv)


def stop_main(argv: list[str] | None) -> int:
    """``experiment stop [overrides…]``."""
    doc = "End the running experiment: the champion answers every request again."
    return command.run(command.parser("experiment stop", doc), _stop, argv)


def status_main(argv: list[str] | None) -> int:
    """``experiment status [overrides…]``."""
    doc = "The deployment's experiment (running or the last one), as JSON."
    return command.run(command.parser("experiment status", doc), _status, argv)


def guard_main(argv: list[str] | None) -> int:
    """``python -m traffic_forecast.experiment.cli guard …``: started by ``start``."""
    parser = command.parser("experiment guard", run.guard.__doc__, overrides=False)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--id", required=True)
    return command.run(parser, _guard, argv)


def demo_main(argv: list[str] | None) -> int:
    """``experiment demo``: imported when run (it builds a Bento)."""
    from traffic_forecast.experiment import demo  # noqa: PLC0415

    return demo.main(argv)


SUBCOMMANDS: dict[str, tuple[Callable[[list[str] | None], int], str]] = {
    "start": (start_main, "run a challenger Bento beside the live champion"),
    "stop": (stop_main, "end the experiment: the champion alone"),
    "status": (status_main, "the experiment's arms, mode and course"),
    "analyse": (gitops.analyse_main, "score both arms on the hours that came, and decide"),
    "post": (gitops.post_main, "post reports/experiment.md on the challenger's pull request"),
    "promote": (gitops.promote_main, "on `promote`: a pull request making it the release"),
    "demo": (demo_main, "the example's champion vs its baseline, on simulated live hours"),
}


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast experiment <subcommand> …``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SUBCOMMANDS:
        listed = "\n".join(f"  {name:8} {text}" for name, (_, text) in SUBCOMMANDS.items())
        asked = args[:1] in (["-h"], ["--help"])
        print(
            f"usage: traffic-forecast experiment <subcommand> …\n\n{listed}\n\n"
            "`traffic-forecast experiment <subcommand> --help` tells more.",
            file=sys.stdout if asked else sys.stderr,
        )
        return 0 if asked else EXIT_USAGE
    entry, _ = SUBCOMMANDS[args[0]]
    return entry(args[1:])


if __name__ == "__main__":
    # `start` runs the guard as `python -m traffic_forecast.experiment.cli guard …`.
    if sys.argv[1:2] != ["guard"]:
        sys.exit(f"usage: python -m {__package__}.cli guard …  (people: traffic-forecast --help)")
    sys.exit(guard_main(sys.argv[2:]))
