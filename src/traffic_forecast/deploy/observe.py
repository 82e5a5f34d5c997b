"""``traffic-forecast observe FILE.csv``: a batch of actuals into the store every colour reads.

The same checks as ``POST /observations`` and the same store (``observations.url``; by default
SQLite in the deploy state directory). The running colours pick the hours up within
``serving.observations_poll_s``; ``--wait`` returns once the router's answers start after them.
The file has the columns of ``data.traffic_file`` (timestamp and target as ``data`` names them),
and optionally the infrastructure measurements.

``traffic-forecast serve``: ``bentoml serve`` of the newest Bento, reading the same store.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx

from traffic_forecast.core import command
from traffic_forecast.core.errors import TrafficForecastError
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.observations import Batch, read_csv_batch
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.data.store import ObservationStore, shown_url
from traffic_forecast.deploy.state import load, observations_url, state_dir_of
from traffic_forecast.serving.live import STORE_ENV, site_now

WAIT_S = 30.0


def _first_hours(batch: Batch, hours: int | None) -> Batch:
    if hours is None:
        return batch
    return Batch(batch.frame.iloc[:hours].reset_index(drop=True), batch.source)


def wait_for_revision(
    router: str, revision: int, timeout_s: float, poll_s: float = 0.2
) -> dict[str, object]:
    """The freshness ``router`` (or a colour's own URL) reports once it has taken ``revision``."""
    deadline = time.monotonic() + timeout_s
    live: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            live = httpx.get(f"{router}/metadata", timeout=5).json().get("live") or {}
        except (httpx.HTTPError, ValueError):
            live = {}
        if int(str(live.get("revision", 0))) >= revision:
            return live
        time.sleep(poll_s)
    raise TrafficForecastError(
        f"the service at {router} did not take the new actuals within {timeout_s:.0f} s "
        f"(it reports {live or 'nothing'}): is it deployed with this store?"
    )


def _observe(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    batch = read_csv_batch(
        args.file, cfg.data, now=site_now(), max_future_hours=cfg.serving.max_future_hours
    )
    batch = _first_hours(batch, args.hours)
    url = observations_url(cfg)
    store = ObservationStore(url)
    try:
        written = store.write(batch)
    finally:
        store.close()
    stamps = batch.frame[TrafficRaw.timestamp]
    print(
        f"{shown_url(url)}: {written.new} new hour(s), {written.corrected} corrected, "
        f"{written.unchanged} unchanged ({stamps.min():%Y-%m-%dT%H:%M} to "
        f"{stamps.max():%Y-%m-%dT%H:%M})"
    )
    if args.wait:
        state = load(state_dir_of(cfg.deploy.state_dir))
        if state.router is None:
            raise TrafficForecastError("--wait: nothing is deployed here (make deploy)")
        router = f"http://{state.router.host}:{state.router.port}"
        live = wait_for_revision(router, written.head, WAIT_S)
        origin, last = live["origin"], live["last_observed"]
        print(f"{router} now forecasts from {origin} (last observed {last})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast observe FILE.csv [--hours N] [--wait] [overrides…]``."""
    parser = command.parser(
        "observe", "Store observed hours from a CSV file (all or nothing); the service moves on."
    )
    parser.add_argument("file", type=Path, help="CSV with the traffic file's columns")
    parser.add_argument("--hours", type=int, default=None, help="only the file's first N hours")
    parser.add_argument(
        "--wait", action="store_true", help="until the deployed router forecasts after them"
    )
    return command.run(parser, _observe, argv)


def _serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    env = {**os.environ, STORE_ENV: observations_url(cfg)}
    bentoml = str(Path(sys.executable).parent / "bentoml")
    os.execve(bentoml, [bentoml, "serve", args.bento, "--port", str(args.port)], env)


def serve_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast serve [--port N] [--bento TAG] [overrides…]``."""
    parser = command.parser(
        "serve", "bentoml serve of a Bento, reading the store of observed hours (make serve)."
    )
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--bento", default="traffic-forecast:latest")
    return command.run(parser, _serve, argv)
