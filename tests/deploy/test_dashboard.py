"""The Grafana dashboard, structurally.

Grafana's model, panels on the grid without overlap, every query valid PromQL (promtool) on
series the service or the rules make, each alert's panel drawing the rule's threshold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.promtool import promtool
from traffic_forecast.deploy import alerts, dashboard

BOARD = REPO_ROOT / alerts.DASHBOARD
RULES = REPO_ROOT / alerts.RULES
# Series names a query may read: the service's own, BentoML's, Prometheus's, the recording rules'.
SERVICE_SOURCE = REPO_ROOT / "src/traffic_forecast/serving/telemetry.py"


def _board() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(BOARD.read_text(encoding="utf-8"))
    return loaded


def _known_series() -> set[str]:
    declared = set(re.findall(r'"(traffic_forecast_[a-z_]+)"', SERVICE_SOURCE.read_text()))
    service = declared | {f"{name}_total" for name in declared}  # a Counter's samples
    records = {r["record"] for g in alerts.groups(RULES) for r in g["rules"] if "record" in r}
    return service | records | {"ALERTS", "bentoml_service_request_duration_seconds_bucket"}


def test_the_dashboard_is_grafanas_model_with_a_datasource_variable() -> None:
    board = _board()
    assert board["uid"] == dashboard.UID
    assert isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) == len(dashboard.PANELS)
    for panel in board["panels"]:
        assert panel["type"] in {"timeseries", "state-timeline"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"]
            assert target["datasource"] == panel["datasource"]


def test_panels_sit_on_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _board()["panels"]:
        place = panel["gridPos"]
        assert place["w"] > 0
        assert place["h"] > 0
        assert place["x"] >= 0
        assert place["x"] + place["w"] <= dashboard.COLUMNS
        cells = {
            (x, y)
            for x in range(place["x"], place["x"] + place["w"])
            for y in range(place["y"], place["y"] + place["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_every_query_is_promql_on_series_that_exist(tmp_path: Path) -> None:
    targets = [t for panel in _board()["panels"] for t in panel["targets"]]
    # promtool checks PromQL in rule files: each query as a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": t["expr"]} for i, t in enumerate(targets)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    known = _known_series()
    for target in targets:
        names = set(
            re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)(?=\{|\s*\)|\s+offset|$)", target["expr"])
        )
        read = {n for n in names if n.startswith(("traffic_forecast", "bentoml_", "ALERTS"))}
        assert read, target["expr"]
        assert read <= known, f"{target['expr']}: {read - known} is no series"


def test_each_alert_panel_draws_the_rules_threshold() -> None:
    thresholds = {a.name: a.threshold for a in alerts.alerts(RULES)}
    drawn = 0
    for panel, definition in zip(_board()["panels"], dashboard.PANELS, strict=True):
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if definition.alert is None:
            assert [s["value"] for s in steps] == [None]
            continue
        assert definition.alert in thresholds
        assert steps[-1]["value"] == thresholds[definition.alert]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}
        drawn += 1
    assert drawn == 4
