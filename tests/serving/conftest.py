"""The service's ASGI app, one per test process: BentoML registers its metrics only once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.packaged import Packaged
from traffic_forecast.serving.service import TrafficForecast


@pytest.fixture(scope="session")
def asgi_client(packaged: Packaged) -> Iterator[TestClient]:
    """A test client of the service's app (every module of a worker shares it)."""
    with TestClient(TrafficForecast.to_asgi()) as test_client:
        yield test_client
