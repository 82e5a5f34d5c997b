"""Render validation failures for people (Markdown for the PR comment) and machines (JSON)."""

from __future__ import annotations

from typing import Any

from traffic_forecast.data.tables import Failure

SAMPLE_ROWS = 5


def _sample(failure: Failure) -> str:
    if not failure.lines:
        return "-"
    shown = [
        f"{line} (`{value}`)" for line, value in zip(failure.lines, failure.samples, strict=False)
    ][:SAMPLE_ROWS]
    more = failure.count - len(shown)
    return ", ".join(shown) + (f", … {more} more" if more > 0 else "")


def _checks(count: int) -> str:
    return f"{count} check" + ("" if count == 1 else "s")


def render_markdown(failures: list[Failure], rows: dict[str, int], notes: list[str]) -> str:
    """A report a reviewer reads in a PR comment: verdict, then one table row per check."""
    files = ", ".join(f"`{f}` ({n:,} rows)" for f, n in rows.items()) or "no readable file"
    lines = ["## Data validation", ""]
    if not failures:
        lines += [f"✅ **Passed**: {files}."]
    else:
        lines += [
            f"❌ **Failed**: {_checks(len(failures))} failed on {files}. "
            "Training did not run; earlier outputs are unchanged.",
            "",
            "| File | Column | Check | Count | Sample rows (CSV line, value) |",
            "|---|---|---|---:|---|",
        ]
        lines += [
            f"| `{f.file}` | `{f.column}` | {f.check} | {f.count:,} | {_sample(f)} |"
            for f in failures
        ]
    lines += ["", *[f"- {note}" for note in notes]] if notes else []
    return "\n".join(lines) + "\n"


def render_json(
    failures: list[Failure],
    rows: dict[str, int],
    notes: list[str],
    files: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The same content as the Markdown report, for tools (the PR report, the gate).

    ``files`` describes each raw file (MD5, rows, first and last hour): what the PR report
    compares with the base branch's.
    """
    return {
        "passed": not failures,
        "rows": rows,
        "files": files or {},
        "notes": notes,
        "failures": [
            {
                "file": f.file,
                "column": f.column,
                "check": f.check,
                "count": f.count,
                "lines": list(f.lines[:100]),
                "samples": list(f.samples[:100]),
            }
            for f in failures
        ],
    }
