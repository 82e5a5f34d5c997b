"""Which arm a client is on in split mode: the router's hash (``deploy/router.lua``), in Python.

The router decides; this mirrors it so that people and tests can tell a client's arm without
a request (a test holds the two equal on thousands of keys). A client key is hashed with the
experiment's id into one of 10,000 buckets; the challenger answers the buckets below its share.
The same key gets the same arm for the whole experiment, across router reloads and restarts, and
another experiment (another id) shuffles the clients anew.
"""

from __future__ import annotations

from traffic_forecast.core.config import ExperimentConfig
from traffic_forecast.deploy.router import BASIS_POINTS
from traffic_forecast.experiment.record import CHALLENGER, CHAMPION

_MASK = 0xFFFFFFFF


def bucket(key: str) -> int:
    """FNV-1a of the UTF-8 bytes, MurmurHash3's finaliser, modulo 10,000 (as router.lua)."""
    h = 2166136261
    for byte in key.encode():
        h = ((h ^ byte) * 16777619) & _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h % BASIS_POINTS


def arm_of(client: str | None, experiment_id: str, cfg: ExperimentConfig) -> str:
    """The arm that answers ``client`` (its key header's value; None: the header was absent)."""
    if cfg.mode != "split" or not client:
        return CHAMPION
    inside = bucket(f"{experiment_id}:{client}") < round(cfg.share * BASIS_POINTS)
    return CHALLENGER if inside else CHAMPION
