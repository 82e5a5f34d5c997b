"""Render the fleet's validation for people (Markdown) and tools (JSON), as the single series'."""

from __future__ import annotations

from typing import Any

from traffic_forecast.fleet.validation import FleetValidation, SeriesFailure

SHOWN_FAILURES = 50  # rows of the Markdown table; the JSON lists every failure


def _count(failure: SeriesFailure) -> str:
    return "?" if failure.count is None else f"{failure.count:,}"


def render_markdown(result: FleetValidation, folder: str) -> str:
    """A report a reviewer reads in a PR comment: verdict, then one row per series and check."""
    scope = f"`{folder}` ({result.series:,} series, {result.rows:,} rows)"
    lines = ["## Fleet data validation", ""]
    if result.passed:
        return "\n".join([*lines, f"✅ **Passed**: {scope}."]) + "\n"
    failed = result.failed_series
    lines += [
        f"❌ **Failed**: {len(failed):,} series failed {len(result.failures):,} checks on "
        f"{scope}. Nothing downstream was written; earlier outputs are unchanged.",
        "",
        "| Series | Column | Check | Rows | Detail |",
        "|---|---|---|---:|---|",
    ]
    lines += [
        f"| `{f.series_id}` | `{f.column}` | {f.check} | {_count(f)} | {f.detail or '-'} |"
        for f in result.failures[:SHOWN_FAILURES]
    ]
    hidden = len(result.failures) - SHOWN_FAILURES
    if hidden > 0:
        lines += ["", f"… and {hidden:,} more failures: see `fleet_validation.json`."]
    return "\n".join(lines) + "\n"


def render_json(result: FleetValidation, folder: str) -> dict[str, Any]:
    """The same content as the Markdown report, every failure listed."""
    return {
        "passed": result.passed,
        "folder": folder,
        "series": result.series,
        "rows": result.rows,
        "failed_series": result.failed_series,
        "failures": [
            {
                "series_id": f.series_id,
                "column": f.column,
                "check": f.check,
                "count": f.count,
                "detail": f.detail,
            }
            for f in result.failures
        ],
    }
