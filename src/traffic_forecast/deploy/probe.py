"""HTTP probes of the router and the colours: one client per process, a new connection each.

Building an httpx client (its TLS context) costs about 30 ms: a rollback probes six times, so
one client is kept. It keeps no connection, so each probe reaches whatever the router routes
to at that moment, as a new client would.
"""

from __future__ import annotations

import functools

import httpx


@functools.cache
def _client() -> httpx.Client:
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def get(url: str, timeout: float = 5.0) -> httpx.Response:
    """``GET url`` on a new connection."""
    return _client().get(url, timeout=timeout, headers={"Connection": "close"})
