"""Mermaid ``xychart-beta`` blocks: plots GitHub renders in a PR comment, no image host needed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_POINTS = 48  # per line: more is unreadable on a phone
FOLDS_SHOWN = 2


@dataclass(frozen=True)
class Colour:
    """A line colour: the hex code Mermaid draws and the word the legend says."""

    name: str
    hex: str


# Okabe-Ito colours (told apart with the common colour-vision deficiencies), each readable on
# GitHub's light and dark backgrounds. One colour per role, the same in every chart.
ACTUAL = Colour("grey", "#888888")
PR_MODEL = Colour("blue", "#0072B2")
BASE_MODEL = Colour("orange", "#D55E00")


@dataclass(frozen=True)
class Series:
    """One line of a chart: what it is, its colour, and its values."""

    name: str
    colour: Colour
    values: Sequence[float]


def _thin(count: int, limit: int = MAX_POINTS) -> list[int]:
    """Positions keeping at most ``limit`` of ``count`` points, evenly spaced, last one kept."""
    if count <= limit:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, limit)})


def _values(series: Sequence[float], scale: float) -> str:
    cells = ["0" if pd.isna(v) else f"{round(float(v) / scale):d}" for v in series]
    return "[" + ", ".join(cells) + "]"


def _palette_directive(palette: Sequence[str]) -> str:
    # xychart has no per-line colour: Mermaid gives line i the i-th colour of plotColorPalette.
    # Without this, the theme picks (GitHub's light and dark themes differ), so a legend
    # naming colours could not be trusted. An init directive is read anywhere in the block.
    variables = {"themeVariables": {"xyChart": {"plotColorPalette": ", ".join(palette)}}}
    return f"    %%{{init: {json.dumps(variables)}}}%%"


def xychart(
    title: str,
    x_labels: Sequence[str],
    y_label: str,
    lines: Sequence[Sequence[float]],
    scale: float,
    *,
    palette: Sequence[str] = (),
) -> str:
    """One fenced Mermaid block: ``lines`` (same length as ``x_labels``) divided by ``scale``.

    ``palette`` (hex colours, one per line in order) pins the line colours; empty leaves them
    to the reader's Mermaid theme.
    """
    keep = _thin(len(x_labels))
    labels = ", ".join(f'"{x_labels[i]}"' for i in keep)
    body = [
        "```mermaid",
        "xychart-beta",
        *([_palette_directive(palette)] if palette else []),
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        f'    y-axis "{y_label}"',
        *[f"    line {_values([line[i] for i in keep], scale)}" for line in lines],
        "```",
    ]
    return "\n".join(body)


def legend(series: Sequence[Series]) -> str:
    """The Markdown legend of a chart: each line's colour and name, in the order drawn."""
    return "Lines: " + " · ".join(f"**{s.colour.name}** {s.name}" for s in series)


def chart_with_legend(
    title: str, x_labels: Sequence[str], y_label: str, series: Sequence[Series], scale: float
) -> tuple[str, str]:
    """A Mermaid block and its legend, both from ``series`` so colours and names cannot drift.

    Mermaid's xychart draws no legend of its own.
    """
    lines = [s.values for s in series]
    palette = [s.colour.hex for s in series]
    return xychart(title, x_labels, y_label, lines, scale, palette=palette), legend(series)


def bar_chart(
    title: str, x_labels: Sequence[str], y_label: str, bars: Series, line: Series | None = None
) -> tuple[str, str]:
    """A Mermaid bar chart (counts, unscaled) and its legend; ``line`` drawn over the bars.

    Mermaid colours the bars first, then the line, from the palette in that order.
    """
    drawn = [bars, *([line] if line is not None else [])]
    body = [
        "```mermaid",
        "xychart-beta",
        _palette_directive([s.colour.hex for s in drawn]),
        f'    title "{title}"',
        "    x-axis [" + ", ".join(f'"{label}"' for label in x_labels) + "]",
        f'    y-axis "{y_label}"',
        f"    bar {_values(bars.values, 1)}",
        *([f"    line {_values(line.values, 1)}"] if line is not None else []),
        "```",
    ]
    key = f"Bars: **{bars.colour.name}** {bars.name}"
    if line is not None:
        key += f" · Line: **{line.colour.name}** {line.name}"
    return "\n".join(body), key


def last_folds(forecast: pd.DataFrame, folds: int = FOLDS_SHOWN) -> pd.DataFrame:
    """Rows of the last ``folds`` backtest folds of a ``plots/forecast.csv`` frame."""
    kept = sorted(forecast["fold"].unique())[-folds:]
    return forecast[forecast["fold"].isin(kept)].reset_index(drop=True)


def forecast_chart(pr: pd.DataFrame, base: pd.DataFrame | None) -> tuple[str, str]:
    """Forecast vs actual over the last folds; the base's line only when its hours match.

    Returns the Mermaid block and its legend.
    """
    shown = last_folds(pr)
    stamps = pd.to_datetime(shown["timestamp"])
    labels = [f"{t:%m-%d %H}h" for t in stamps]
    series = [
        Series("actual", ACTUAL, shown["actual"].tolist()),
        Series("PR model", PR_MODEL, shown["model"].tolist()),
    ]
    note = ""
    if base is not None:
        base_shown = last_folds(base)
        if base_shown["timestamp"].astype(str).tolist() == shown["timestamp"].astype(str).tolist():
            series.append(Series("base model", BASE_MODEL, base_shown["model"].tolist()))
        else:
            note = " (the base's backtest covers other hours: its model is not drawn)"
    chart, key = chart_with_legend(
        "Forecast vs actual, last 2 backtest folds", labels, "sessions (thousands)", series, 1e3
    )
    return chart, key + note


def horizon_chart(pr: pd.DataFrame, base: pd.DataFrame | None) -> tuple[str, str]:
    """Model MAE by horizon step, PR vs base (when the base has the same steps)."""
    labels = [str(int(step)) for step in pr["step"]]
    series = [Series("PR model", PR_MODEL, pr["model_mae"].tolist())]
    if base is not None and base["step"].tolist() == pr["step"].tolist():
        series.append(Series("base model", BASE_MODEL, base["model_mae"].tolist()))
    return chart_with_legend(
        "Model MAE by hours ahead", labels, "MAE (thousand sessions)", series, 1e3
    )
