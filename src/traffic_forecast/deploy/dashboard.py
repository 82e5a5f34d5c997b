"""The Grafana dashboard, defined once here as panels of PromQL (`make alerts` writes it).

Each panel reads the series the rules read, and a panel about an alert draws the alert's own
threshold, taken from ``deploy/prometheus/rules.yml``: the dashboard cannot drift from the
alerts. The JSON is Grafana's dashboard model; its Prometheus data source is a variable, chosen
at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traffic_forecast.deploy.prometheus import SLOTS_JOB

UID = "traffic-forecast"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11
WIDTH, HEIGHT, COLUMNS = 12, 8, 24  # two panels a row on Grafana's 24-column grid
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
JOB = f'{{job="{SLOTS_JOB}"}}'  # the service's series, read from the slots (as the rules do)


@dataclass(frozen=True)
class Query:
    """One line of a panel."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A panel: its queries, unit, and the alert whose threshold it draws (if any)."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    alert: str | None = None
    kind: str = "timeseries"
    wide: bool = False


PANELS = (
    Panel(
        "Site traffic: observed vs forecast",
        "The newest observed hour, and the forecast the model made of it an hour before "
        "(live actuals: README, Live actuals).",
        (
            Query(f"max(traffic_forecast_observed_sessions{JOB})", "observed"),
            Query(
                f"max(traffic_forecast_forecast_sessions{JOB} offset 1h)", "forecast, 1 h before"
            ),
        ),
        "short",
    ),
    Panel(
        "Requests served, by outcome",
        "Answers per second of every slot (ok, rejected: 4xx, error: 5xx).",
        (
            Query(
                f"sum by (outcome) (rate(traffic_forecast_requests_total{JOB}[5m]))",
                "{{outcome}}",
            ),
        ),
        "reqps",
    ),
    Panel(
        "Error share",
        "5xx and 4xx answers over all requests.",
        (
            Query("traffic_forecast:error_ratio:rate5m", "5xx (5 min)"),
            Query("traffic_forecast:rejected_ratio:rate15m", "4xx (15 min)"),
        ),
        "percentunit",
        alert="TrafficForecastErrorRate",
    ),
    Panel(
        "Latency p99",
        "p99 of /forecast and /capacity, from BentoML's request-duration histogram.",
        (Query("traffic_forecast:latency_seconds:p99_5m", "p99 (5 min)"),),
        "s",
        alert="TrafficForecastLatencyP99",
    ),
    Panel(
        "Fallback share",
        "What-ifs answered by the seasonal-naive fallback (over the time budget, or a model "
        "error).",
        (Query("traffic_forecast:fallback_ratio:rate15m", "fallbacks / what-ifs (15 min)"),),
        "percentunit",
        alert="TrafficForecastFallbackShare",
    ),
    Panel(
        "Data age",
        "Hours since the newest actual the served model has seen.",
        (Query(f"max(traffic_forecast_data_age_hours{JOB})", "data age"),),
        "h",
        alert="TrafficForecastDataStale",
    ),
    Panel(
        "Model versions",
        "Which model each slot serves, over time (a deploy shows as a change of colour).",
        (
            Query(
                f"max by (colour, model_version) (traffic_forecast_model_info{JOB})",
                "{{colour}}: {{model_version}}",
            ),
        ),
        "short",
        kind="state-timeline",
        wide=True,
    ),
    Panel(
        "Alerts firing",
        "The rules' alerts (deploy/prometheus/rules.yml), while they fire.",
        (Query('ALERTS{alertname=~"TrafficForecast.*", alertstate="firing"}', "{{alertname}}"),),
        "short",
        kind="state-timeline",
        wide=True,
    ),
)


def _field_config(panel: Panel, threshold: float | None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    custom: dict[str, Any] = {}
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
        custom["thresholdsStyle"] = {"mode": "line"}
    return {
        "defaults": {
            "unit": panel.unit,
            "thresholds": {"mode": "absolute", "steps": steps},
            "custom": custom,
        },
        "overrides": [],
    }


def _target(number: int, query: Query) -> dict[str, Any]:
    ref = chr(ord("A") + number)
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "expr": query.expr,
        "legendFormat": query.legend,
    }


def _layout() -> list[dict[str, int]]:
    """Each panel's place: two a row, a wide one on a row of its own."""
    places, x, y = [], 0, 0
    for panel in PANELS:
        width = COLUMNS if panel.wide else WIDTH
        if x + width > COLUMNS:
            x, y = 0, y + HEIGHT
        places.append({"x": x, "y": y, "w": width, "h": HEIGHT})
        x += width
    return places


def dashboard(thresholds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Grafana's JSON model of `PANELS`; ``thresholds``: each alert's, drawn on its panel."""
    limits = thresholds or {}
    panels = [
        {
            "id": number,
            "type": panel.kind,
            "title": panel.title,
            "description": panel.description,
            "datasource": DATASOURCE,
            "gridPos": place,
            "fieldConfig": _field_config(panel, limits.get(panel.alert or "")),
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [_target(i, query) for i, query in enumerate(panel.queries)],
        }
        for number, (panel, place) in enumerate(zip(PANELS, _layout(), strict=True), start=1)
    ]
    datasource_variable = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    return {
        "uid": UID,
        "title": "Traffic forecast",
        "description": "The forecast service: traffic, answers, latency, fallbacks, data age, "
        "model versions and alerts (generated by `traffic-forecast alerts`)",
        "tags": ["traffic-forecast"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "utc",
        "templating": {"list": [datasource_variable]},
        "annotations": {"list": []},
        "panels": panels,
    }
