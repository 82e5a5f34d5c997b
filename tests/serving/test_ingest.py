"""``POST /observations`` through the service's ASGI app: the token, the data rules, the store.

Each test gets its own store (SQLite in ``tmp_path``) and a service started on it, as a colour
is started by the deploy. A refused batch must leave the store untouched.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from traffic_forecast.data.store import ObservationStore
from traffic_forecast.serving import service as service_module
from traffic_forecast.serving.ingest import TOKEN_ENV

TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOUR = pd.Timedelta(hours=1)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "observations.db"


@pytest.fixture
def client(
    asgi_client: TestClient, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The service following a store of its own, as a colour started on it would."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    service = service_module._running()
    assert service is not None
    assert service.live is not None
    packaged = service.live.packaged
    service.follow(packaged, f"sqlite:///{store_path}")
    yield asgi_client
    service.follow(packaged, None)


@pytest.fixture
def origin(client: TestClient) -> pd.Timestamp:
    """The packaged model's first forecast hour."""
    return pd.Timestamp(client.post("/forecast", json={"horizon": 1}).json()["origin"])


def _hours(start: pd.Timestamp, count: int, level: float = 1000.0) -> list[dict[str, Any]]:
    stamps = pd.date_range(start, periods=count, freq="h")
    return [
        {"timestamp": f"{stamp:%Y-%m-%dT%H:%M:%S}", "sessions": level + i}
        for i, stamp in enumerate(stamps)
    ]


def _post(client: TestClient, hours: list[dict[str, Any]], **headers: str) -> Any:
    return client.post("/observations", json={"observations": hours}, headers=headers or AUTH)


def _stored(store_path: Path) -> int:
    store = ObservationStore(f"sqlite:///{store_path}")
    try:
        return store.head()
    finally:
        store.close()


def test_a_batch_moves_the_forecast_to_the_hour_after_it(
    client: TestClient, origin: pd.Timestamp, store_path: Path
) -> None:
    answer = _post(client, _hours(origin, 24))
    assert answer.status_code == 200, answer.text
    after = origin + 24 * HOUR
    assert answer.json() | {"stale_reason": None} == {
        "new": 24,
        "corrected": 0,
        "unchanged": 0,
        "origin": f"{after:%Y-%m-%dT%H:%M:%S}",
        "last_observed": f"{after - HOUR:%Y-%m-%dT%H:%M:%S}",
        "stale": True,  # simulated hours of 2024: far older than serving.max_data_age_hours
        "stale_reason": None,
    }
    for path in ("/forecast", "/capacity"):
        served = client.post(path, json={"horizon": 24}).json()
        assert pd.Timestamp(served["origin"]) == after
        assert pd.Timestamp(served["last_observed"]) == after - HOUR
        assert served["stale"] is True
        assert "older than" in served["stale_reason"]
    live = client.get("/metadata").json()["live"]
    assert (live["origin"], live["revision"]) == (f"{after:%Y-%m-%dT%H:%M:%S}", 24)
    assert live["data_age_hours"] > 0
    assert _stored(store_path) == 24
    # The dashboard's observed vs forecast: the newest hour posted, the forecast of the next.
    assert REGISTRY.get_sample_value("traffic_forecast_observed_sessions") == 1000.0 + 23
    next_hour = client.post("/forecast", json={"horizon": 1}).json()["forecast"][0]["value"]
    assert REGISTRY.get_sample_value("traffic_forecast_forecast_sessions") == next_hour


def test_resending_is_a_no_op_and_a_new_value_is_a_correction_kept_as_a_revision(
    client: TestClient, origin: pd.Timestamp, store_path: Path
) -> None:
    def count(outcome: str) -> float:
        # The process's series, as /metrics serves them (a real server's: test_serve.py).
        sample = REGISTRY.get_sample_value(
            "traffic_forecast_observations_total", {"outcome": outcome}
        )
        return sample or 0.0

    before = {outcome: count(outcome) for outcome in ("corrected", "unchanged")}
    _post(client, _hours(origin, 3))
    again = _post(client, _hours(origin, 3)).json()
    assert (again["new"], again["corrected"], again["unchanged"]) == (0, 0, 3)
    corrected = _post(client, _hours(origin, 1, level=7.0)).json()
    assert (corrected["new"], corrected["corrected"]) == (0, 1)
    store = ObservationStore(f"sqlite:///{store_path}")
    assert list(store.revisions(origin)["target"]) == [1000.0, 7.0]
    assert count("corrected") - before["corrected"] == 1
    assert count("unchanged") - before["unchanged"] == 3
    assert (REGISTRY.get_sample_value("traffic_forecast_data_age_hours") or 0.0) > 0


def test_hours_before_the_training_end_are_stored_without_rewinding_the_model(
    client: TestClient, origin: pd.Timestamp, store_path: Path
) -> None:
    answer = _post(client, _hours(origin - 48 * HOUR, 24))
    assert answer.status_code == 200
    assert pd.Timestamp(answer.json()["origin"]) == origin
    assert _stored(store_path) == 24


def test_a_gap_of_30_hours_is_reported_not_filled(client: TestClient, origin: pd.Timestamp) -> None:
    _post(client, _hours(origin, 2))
    answer = _post(client, _hours(origin + 32 * HOUR, 5)).json()
    assert pd.Timestamp(answer["origin"]) == origin + 2 * HOUR
    assert "30 hour(s) missing" in answer["stale_reason"]
    served = client.post("/forecast", json={"horizon": 24}).json()
    assert pd.Timestamp(served["origin"]) == origin + 2 * HOUR
    assert "30 hour(s) missing" in served["stale_reason"]
    gap = client.get("/metadata").json()["live"]["gap"]
    assert [pd.Timestamp(stamp) for stamp in gap] == [origin + 2 * HOUR, origin + 31 * HOUR]


def _bad(origin: pd.Timestamp, case: str) -> list[dict[str, Any]]:
    good = _hours(origin, 3)
    if case == "negative":
        good[1]["sessions"] = -5.0
    elif case == "off-the-hour":
        good[2]["timestamp"] = f"{origin:%Y-%m-%dT%H}:30:00"
    elif case == "duplicate":
        good[2]["timestamp"] = good[0]["timestamp"]
    elif case == "future":
        good[1]["timestamp"] = "2200-01-01T00:00:00"
    elif case == "beyond-any-calendar":
        good[1]["timestamp"] = "9999-12-31T23:00:00"
    return good


@pytest.mark.parametrize(
    ("case", "row", "check"),
    [
        ("negative", 1, "greater_than_or_equal_to(0.0)"),
        ("off-the-hour", 2, "on_the_hour"),
        ("duplicate", 2, "field_uniqueness"),
        ("future", 1, "not_in_the_future"),
        ("beyond-any-calendar", 1, "parsable_as_timestamp"),
    ],
    ids=["negative", "off-the-hour", "duplicate-in-batch", "far-future", "year-9999"],
)
def test_one_bad_row_refuses_the_whole_batch_naming_row_and_check(
    client: TestClient, origin: pd.Timestamp, store_path: Path, case: str, *, row: int, check: str
) -> None:
    answer = _post(client, _bad(origin, case))
    assert answer.status_code == 400
    body = answer.json()
    assert "nothing stored" in body["error"]
    assert any(f["check"] == check and row in f["rows"] for f in body["detail"]), body
    assert _stored(store_path) == 0
    assert pd.Timestamp(client.post("/forecast", json={}).json()["origin"]) == origin


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"observations": [{"timestamp": "2024-02-12T00:00:00", "sessions": NaN}]}',
                     "not_nan", id="nan"),
        pytest.param(b'{"observations": [{"timestamp": "2024-02-12T00:00:00", "sessions": '
                     b'Infinity}]}', "finite", id="infinity"),
        pytest.param(b'{"observations": [{"timestamp": "2024-02-12T00:00:00+02:00", "sessions": '
                     b'1}]}', "pattern", id="utc-offset"),
        pytest.param(b'{"observations": [{"timestamp": "2024-02-12T00:00:00", "sessions": "1"}]}',
                     "float", id="string-number"),
        pytest.param(b'{"observations": []}', "too_short", id="empty"),
        pytest.param(b'{"observations": [{"timestamp": "2024-02-12T00:00:00"}]}', "missing",
                     id="no-sessions"),
        pytest.param(b'{"observations": [', "json_invalid", id="malformed"),
        pytest.param(b"[1, 2]", "model_type", id="not-an-object"),
    ],
)  # fmt: skip
def test_malformed_bodies_get_400_with_a_json_reason(
    client: TestClient, store_path: Path, body: bytes, reason: str
) -> None:
    answer = client.post(
        "/observations", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert reason in json.dumps(answer.json())
    assert _stored(store_path) == 0


def test_the_spec_example_batch_is_stored(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/observations"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    answer = _post(client, example["observations"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["new"] == len(example["observations"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": TOKEN}, 401)],
    ids=["no-token", "wrong-token", "no-scheme"],
)
def test_no_or_a_wrong_token_is_401_and_nothing_is_written(
    client: TestClient, origin: pd.Timestamp, store_path: Path, headers: dict[str, str], status: int
) -> None:
    answer = client.post("/observations", json={"observations": _hours(origin, 2)}, headers=headers)
    assert answer.status_code == status
    assert answer.headers["www-authenticate"] == "Bearer"
    assert _stored(store_path) == 0


def test_ingest_is_off_with_a_clear_503_when_the_service_has_no_token(
    client: TestClient, origin: pd.Timestamp, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    answer = _post(client, _hours(origin, 2))
    assert answer.status_code == 503
    assert TOKEN_ENV in answer.json()["error"]
    assert _stored(store_path) == 0


def test_reading_forecasts_needs_no_token(client: TestClient) -> None:
    assert client.post("/forecast", json={"horizon": 2}).status_code == 200


def test_not_json_and_too_large_are_refused(client: TestClient, origin: pd.Timestamp) -> None:
    text = client.post("/observations", content=b"x", headers={**AUTH, "Content-Type": "text/csv"})
    assert text.status_code == 415
    huge = b'{"observations": [' + b" " * (8 * 2**20 + 1) + b"]}"
    large = client.post(
        "/observations", content=huge, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert large.status_code == 413
    assert "max_ingest_bytes" in large.json()["error"]


@pytest.mark.parametrize("fault", ["deleted", "read-only"])
def test_a_lost_store_stops_ingest_not_forecasts_and_readiness_says_why(
    client: TestClient, origin: pd.Timestamp, store_path: Path, fault: str
) -> None:
    assert _post(client, _hours(origin, 2)).status_code == 200
    if fault == "deleted":
        store_path.unlink()
    else:
        store_path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        refused = _post(client, _hours(origin + 2 * HOUR, 2))
        assert refused.status_code == 503
        assert fault in refused.json()["error"]
        served = client.post("/forecast", json={"horizon": 24})
        assert served.status_code == 200
        assert pd.Timestamp(served.json()["origin"]) == origin + 2 * HOUR  # from memory
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert fault in ready.json()["error"]
        assert fault in client.get("/metadata").json()["not_ready_reason"]
    finally:
        if store_path.exists():
            store_path.chmod(0o644)
