"""dvc.lock staleness as the release build and the PR gate see it."""

from __future__ import annotations

import yaml

from tests.conftest import REPO_ROOT
from traffic_forecast.report.lockcheck import cached_outputs, stale

CACHED = cached_outputs(yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8")))
FRESH_CLONE = {  # what DVC 3 says on a fresh checkout before any stage ran: not staleness
    "features": [
        {"changed deps": {"data/validated": "deleted"}},
        {"changed outs": {"data/features": "not in cache"}},
    ],
    "validate": [{"changed outs": {"data/validated": "not in cache"}}],
}


def test_the_cached_outputs_are_read_from_dvc_yaml() -> None:
    assert {"data/validated", "data/features", "models"} == CACHED


def test_a_fresh_checkout_is_not_stale() -> None:
    assert stale(FRESH_CLONE, CACHED) == []
    assert stale({}, CACHED) == []


def test_changed_code_params_or_tracked_reports_are_stale() -> None:
    status = {
        **FRESH_CLONE,
        "train": [
            {"changed deps": {"src/traffic_forecast/models.py": "modified"}},
            "changed params",
        ],
        "evaluate": [{"changed outs": {"reports/metrics.json": "modified"}}],
    }
    found = stale(status, CACHED)
    assert found == [
        "train: changed deps: src/traffic_forecast/models.py: modified",
        "train: changed params",
        "evaluate: changed outs: reports/metrics.json: modified",
    ]
