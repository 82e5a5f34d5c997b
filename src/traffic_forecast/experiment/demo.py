"""``traffic-forecast experiment demo`` (``make experiment-demo``): an experiment end to end.

The deployed example model is the champion (deployed first when nothing is live). The
challenger is trained with another model: the pipeline's seasonal-naive baseline, packaged as a
Bento of its own. They run in split mode. Simulated live hours then come in one at a time (the
example's next quarter, ``traffic-forecast actuals``), each written to the store of observed
hours as ``traffic-forecast observe`` writes it; once both colours forecast after it, clients on
both arms ask for the next day. The analysis looks once a simulated day from the minimum
duration, as the daily workflow does, until it decides (``reports/experiment.md``); the
experiment is then stopped, and the champion serves alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from pathlib import Path

import httpx
import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.data.observations import OBSERVATION_COLUMNS, Batch
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.data.store import ObservationStore
from traffic_forecast.deploy import rollout, slots
from traffic_forecast.deploy.cli import bento_tag, config
from traffic_forecast.deploy.observe import wait_for_revision
from traffic_forecast.deploy.state import load, observations_url
from traffic_forecast.experiment import gitops, run
from traffic_forecast.experiment.analysis import CONTINUE, Analysis
from traffic_forecast.experiment.assignment import arm_of
from traffic_forecast.experiment.record import ARMS, Experiment

log = logging.getLogger(__name__)

CLIENTS_PER_ARM = 2
CHALLENGER_BENTO = "traffic-forecast-challenger"
WAIT_S = 30.0  # for a colour to take a new hour from the store (it polls every second)
POLL_S = 0.05
# The demo shows the sticky split, and a short design that decides in minutes (the default
# design runs 7 to 98 days: README, Experiments). ARGS come after and win.
DEMO_SETTINGS = ("experiment.mode=split", "experiment.min_days=3", "experiment.max_days=5")
LOG_WRITE_S = 0.5


def baseline_as_model(folder: Path) -> None:
    """The packaged folder with the pipeline's baseline where its model was."""
    (folder / "forecaster.zip").write_bytes((folder / "baseline.zip").read_bytes())
    card_file = folder / "model_card.json"
    card = json.loads(card_file.read_text(encoding="utf-8"))
    card |= {"model": card.get("baseline"), "uses_exog": False, "exogenous_columns": []}
    card_file.write_text(json.dumps(card, indent=2), encoding="utf-8")


def _champion(cfg: Config) -> None:
    """Deploy the newest Bento when nothing healthy is live (a fresh checkout)."""
    state = load(Path(cfg.deploy.state_dir))
    live = state.slots.get(state.live or "")
    if live is None or not slots.healthy(live, state.deployed(cfg.deploy)):
        print(rollout.deploy(bento_tag("latest", cfg), cfg).summary())


def _clients(experiment: Experiment, cfg: Config) -> dict[str, list[str]]:
    """Client keys on each arm, found with the router's own hash."""
    declared = experiment.config(cfg.experiment)
    found: dict[str, list[str]] = {arm: [] for arm in ARMS}
    key = 0
    while any(len(keys) < CLIENTS_PER_ARM for keys in found.values()):
        client = f"demo-client-{key}"
        arm = arm_of(client, experiment.id, declared)
        if len(found[arm]) < CLIENTS_PER_ARM:
            found[arm].append(client)
        key += 1
    return found


def _next_hours(cfg: Config, after: pd.Timestamp, count: int) -> pd.Series:
    """The ``count`` simulated live hours after ``after`` (from ``monitor.actuals_dir``)."""
    from traffic_forecast.monitor.demo import fill_actuals  # noqa: PLC0415 (the simulator)

    folder = Path(cfg.monitor.actuals_dir)
    file = folder / Path(cfg.data.traffic_file).name
    if not file.is_file():
        log.info("%s", fill_actuals(cfg, folder))
    table = pd.read_csv(file, parse_dates=[cfg.data.timestamp_column])
    hours = table.set_index(cfg.data.timestamp_column)[cfg.data.target_column].sort_index()
    hours = hours[hours.index > after].iloc[:count]
    if len(hours) < count:
        raise PipelineInputError(
            f"{file} holds {len(hours)} hours after {after}, the demo needs {count}: "
            "`make undeploy` (a new store) and run it again"
        )
    return hours.astype(float)


class _Feed:
    """Live hours into the store one at a time; after each, forecasts from clients on both arms."""

    def __init__(self, cfg: Config, experiment: Experiment, http: httpx.Client) -> None:
        state = load(Path(cfg.deploy.state_dir))
        dcfg = state.deployed(cfg.deploy)
        self.http, self.experiment = http, experiment
        self.router = f"http://{dcfg.host}:{dcfg.router_port}"
        self.colours = [slots.url(dcfg, state.slots[arm.colour].port) for arm in
                        (experiment.champion, experiment.challenger)]  # fmt: skip
        self.horizon = experiment.config(cfg.experiment).horizon
        self.clients = [key for keys in _clients(experiment, cfg).values() for key in keys]
        self.store = ObservationStore(observations_url(cfg))

    def hour(self, hour: pd.Timestamp, value: float) -> None:
        """Store one observed hour; once both colours forecast after it, the clients ask."""
        frame = pd.DataFrame({TrafficRaw.timestamp: [hour], TrafficRaw.target: [value]})
        written = self.store.write(Batch(frame.reindex(columns=list(OBSERVATION_COLUMNS)), "demo"))
        for colour in self.colours:  # each polls the store once a second
            wait_for_revision(colour, written.head, WAIT_S, poll_s=POLL_S)
        for client in self.clients:
            self.http.post(
                self.router + "/forecast",
                json={"horizon": self.horizon},
                headers={self.experiment.client_header: client},
            ).raise_for_status()

    def last_observed(self) -> pd.Timestamp:
        """The newest hour the live model has seen."""
        live = self.http.get(self.router + "/metadata").json()["live"]
        return pd.Timestamp(live["last_observed"])


def _looks(cfg: Config, experiment: Experiment) -> Analysis:
    """Feed the hours; from the minimum duration, one look a simulated day (as the workflow)."""
    declared = experiment.config(cfg.experiment)
    reports = Path(cfg.paths.reports_dir)
    with httpx.Client(timeout=60) as http:
        feed = _Feed(cfg, experiment, http)
        with contextlib.closing(feed.store):
            hours = _next_hours(cfg, feed.last_observed(), declared.max_days * 24 + feed.horizon)
            # Day d is scored once the hours d days of origins forecast have come.
            looks = {declared.horizon + day * 24: day for day in
                     range(declared.min_days, declared.max_days + 1)}  # fmt: skip
            stamps, values = hours.index, hours.to_numpy(dtype=float)
            for fed, (hour, value) in enumerate(zip(stamps, values, strict=True), start=1):
                feed.hour(hour, float(value))
                if fed in looks:
                    time.sleep(LOG_WRITE_S)  # the prediction logs are written off the request path
                    result = gitops.analyse(cfg, reports)
                    print(f"day {looks[fed]}: {result.verdict.decision} ({result.verdict.reason})")
                    if result.verdict.decision != CONTINUE:
                        break
    print(f"{fed} live hours fed, forecasts asked by {len(feed.clients)} clients after each")
    return result


def demo(cfg: Config) -> Analysis:
    """The experiment end to end (see the module docstring); its last analysis."""
    _champion(cfg)
    if load(Path(cfg.deploy.state_dir)).experimenting() is not None:
        run.stop(cfg, reason="a new demo")
    from traffic_forecast.serving.bento import build  # noqa: PLC0415 (BentoML: seconds)

    # A Bento name of its own: `deploy latest` (make deploy) stays the pipeline's model.
    _, challenger = build(cfg, baseline_as_model, name=CHALLENGER_BENTO)
    experiment = run.start(challenger, cfg)
    declared = experiment.config(cfg.experiment)
    print(
        f"experiment {experiment.id}: {experiment.champion.model} (champion) vs "
        f"{experiment.challenger.model} (challenger: the seasonal-naive baseline), split; "
        f"declared: days {declared.min_days} to {declared.max_days}, alpha {declared.alpha:g}"
    )
    try:
        return _looks(cfg, experiment)
    finally:  # unless its guard ended it already (the analysis then says why)
        if load(Path(cfg.deploy.state_dir)).experimenting() == experiment.id:
            run.stop(cfg, reason="the demo's hours are in")


def _demo(args: argparse.Namespace) -> int:
    cfg = config([*DEMO_SETTINGS, *args.overrides])
    result = demo(cfg)
    print(f"decision: {result.verdict.decision} ({result.verdict.reason})")
    print(f"report: {Path(cfg.paths.reports_dir) / gitops.REPORT_MD}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast experiment demo [overrides…]``."""
    return command.run(command.parser("experiment demo", __doc__), _demo, argv)
