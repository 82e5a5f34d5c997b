"""Live actuals against real ``bentoml serve`` processes: a crash after an answer, two colours.

Acknowledged means durable: a server killed with SIGKILL right after a 2xx has the hours on
disk, and a server started after the crash forecasts from after them. Blue and green writing
the same store at once store each hour once, and both end up forecasting from the same hour.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.packaged import Packaged
from tests.serving.server import Server, phases_passed, running, schemathesis
from traffic_forecast.data.store import ObservationStore
from traffic_forecast.deploy.slots import descendants
from traffic_forecast.serving.ingest import TOKEN_ENV
from traffic_forecast.serving.live import STORE_ENV

pytestmark = [pytest.mark.slow, pytest.mark.serial]

SERVICE = "traffic_forecast.serving.service:TrafficForecast"
TOKEN = "live-serve-token"
HOUR = pd.Timedelta(hours=1)


def _env(store: Path) -> dict[str, str]:
    return {STORE_ENV: f"sqlite:///{store}", TOKEN_ENV: TOKEN}


def _hours(start: pd.Timestamp, count: int, level: float = 500.0) -> dict[str, Any]:
    stamps = pd.date_range(start, periods=count, freq="h")
    return {
        "observations": [
            {"timestamp": f"{stamp:%Y-%m-%dT%H:%M:%S}", "sessions": level + i}
            for i, stamp in enumerate(stamps)
        ]
    }


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        url + "/observations", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def _origin(server: Server) -> pd.Timestamp:
    answer = httpx.post(server.url + "/forecast", json={"horizon": 1}, timeout=30).json()
    return pd.Timestamp(answer["origin"])


def test_acknowledged_hours_survive_kill_9_and_a_restart_starts_from_them(
    packaged: Packaged, tmp_path: Path
) -> None:
    store = tmp_path / "observations.db"
    with running(SERVICE, packaged.tag, tmp_path / "first.log", _env(store)) as first:
        first.wait("/readyz", 200)
        origin = _origin(first)
        answer = _post(first.url, _hours(origin, 48))
        # Right after the 2xx, the server and its workers (sessions of their own): no clean stop.
        for pid in [first.process.pid, *descendants(first.process.pid)]:
            os.kill(pid, signal.SIGKILL)
        assert answer.status_code == 200, answer.text
        first.process.wait(timeout=30)
    stored = ObservationStore(f"sqlite:///{store}").current()
    assert len(stored) == 48
    assert stored["timestamp"].iloc[-1] == origin + 47 * HOUR

    with running(SERVICE, packaged.tag, tmp_path / "second.log", _env(store)) as second:
        second.wait("/readyz", 200)
        assert _origin(second) == origin + 48 * HOUR


def test_two_colours_ingesting_at_once_store_each_hour_once_and_agree(
    packaged: Packaged, tmp_path: Path
) -> None:
    store = tmp_path / "observations.db"
    with (
        running(SERVICE, packaged.tag, tmp_path / "blue.log", _env(store)) as blue,
        running(SERVICE, packaged.tag, tmp_path / "green.log", _env(store)) as green,
    ):
        blue.wait("/readyz", 200)
        green.wait("/readyz", 200)
        origin = _origin(blue)
        # Each colour is sent every hour of the day, one request per hour, at the same time.
        sends = [
            (colour.url, _hours(origin + i * HOUR, 1, level=500.0 + i))
            for i in range(24)
            for colour in (blue, green)
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda send: _post(*send), sends))
        assert [a.status_code for a in answers] == [200] * len(sends)
        news = sum(a.json()["new"] for a in answers)
        assert news == 24  # each hour new exactly once; the other colour's copy unchanged

        revisions = ObservationStore(f"sqlite:///{store}")
        assert revisions.head() == 24
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and {_origin(blue), _origin(green)} != {
            origin + 24 * HOUR
        }:
            time.sleep(0.2)
        assert _origin(blue) == _origin(green) == origin + 24 * HOUR


def test_schemathesis_finds_no_failing_check_on_the_ingest_endpoint(
    packaged: Packaged, tmp_path: Path
) -> None:
    """Every check, with the token: the fuzzer's bodies reach the data rules and the store.

    What the spec calls valid is stored, what it calls invalid refused by the data rules.
    """
    store = tmp_path / "observations.db"
    with running(SERVICE, packaged.tag, tmp_path / "fuzzed.log", _env(store)) as server:
        server.wait("/readyz", 200)
        done = schemathesis(
            server.url, tmp_path, "--include-path", "/observations",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--seed", "20261203", "--max-examples", "60",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-6000:]
        assert "Tested: 1" in done.stdout  # the operation was found and fuzzed
        assert phases_passed(done.stdout) == {"Examples", "Coverage", "Fuzzing"}
        assert httpx.get(server.url + "/readyz").status_code == 200
    assert len(ObservationStore(f"sqlite:///{store}").current()) > 0  # valid batches were stored
