"""The PR report: ``reports/report.md`` (and ``.json``) comparing a branch with its base."""

from __future__ import annotations

from traffic_forecast.report.gather import main
from traffic_forecast.report.render import ReportInputs, render_json, render_markdown

__all__ = ["ReportInputs", "main", "render_json", "render_markdown"]
