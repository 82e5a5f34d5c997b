"""Mermaid ``xychart-beta`` blocks: plots GitHub renders in a PR comment, no image host needed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAX_POINTS = 48  # per line: more is unreadable on a phone
FOLDS_SHOWN = 2


def _thin(count: int, limit: int = MAX_POINTS) -> list[int]:
    """Positions keeping at most ``limit`` of ``count`` points, evenly spaced, last one kept."""
    if count <= limit:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, limit)})


def _values(series: Sequence[float], scale: float) -> str:
    cells = ["0" if pd.isna(v) else f"{round(float(v) / scale):d}" for v in series]
    return "[" + ", ".join(cells) + "]"


def xychart(
    title: str,
    x_labels: Sequence[str],
    y_label: str,
    lines: Sequence[Sequence[float]],
    scale: float,
) -> str:
    """One fenced Mermaid block: ``lines`` (same length as ``x_labels``) divided by ``scale``."""
    keep = _thin(len(x_labels))
    labels = ", ".join(f'"{x_labels[i]}"' for i in keep)
    body = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        f'    y-axis "{y_label}"',
        *[f"    line {_values([line[i] for i in keep], scale)}" for line in lines],
        "```",
    ]
    return "\n".join(body)


def last_folds(forecast: pd.DataFrame, folds: int = FOLDS_SHOWN) -> pd.DataFrame:
    """Rows of the last ``folds`` backtest folds of a ``plots/forecast.csv`` frame."""
    kept = sorted(forecast["fold"].unique())[-folds:]
    return forecast[forecast["fold"].isin(kept)].reset_index(drop=True)


def forecast_chart(pr: pd.DataFrame, base: pd.DataFrame | None) -> tuple[str, str]:
    """Forecast vs actual over the last folds; the base's line only when its hours match.

    Returns the Mermaid block and the legend (Mermaid's xychart has none of its own).
    """
    shown = last_folds(pr)
    stamps = pd.to_datetime(shown["timestamp"])
    labels = [f"{t:%m-%d %H}h" for t in stamps]
    lines: list[Sequence[float]] = [shown["actual"].tolist(), shown["model"].tolist()]
    legend = "lines: actual, PR model"
    if base is not None:
        base_shown = last_folds(base)
        if base_shown["timestamp"].astype(str).tolist() == shown["timestamp"].astype(str).tolist():
            lines.append(base_shown["model"].tolist())
            legend += ", base model"
        else:
            legend += " (the base's backtest covers other hours: not drawn)"
    chart = xychart(
        "Forecast vs actual, last 2 backtest folds", labels, "sessions (thousands)", lines, 1e3
    )
    return chart, legend


def horizon_chart(pr: pd.DataFrame, base: pd.DataFrame | None) -> tuple[str, str]:
    """Model MAE by horizon step, PR vs base (when the base has the same steps)."""
    labels = [str(int(step)) for step in pr["step"]]
    lines: list[Sequence[float]] = [pr["model_mae"].tolist()]
    legend = "lines: PR model"
    if base is not None and base["step"].tolist() == pr["step"].tolist():
        lines.append(base["model_mae"].tolist())
        legend += ", base model"
    chart = xychart("Model MAE by hours ahead", labels, "MAE (thousand sessions)", lines, 1e3)
    return chart, legend
