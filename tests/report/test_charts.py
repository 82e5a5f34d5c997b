"""Chart legends: each line named with the colour Mermaid draws it in, in the order drawn."""

from __future__ import annotations

import colorsys
import json
import re

import pandas as pd
import pytest

from tests.report.samples import forecast_frame, horizon_frame, report_inputs
from traffic_forecast.report import render_markdown
from traffic_forecast.report.charts import forecast_chart, horizon_chart, xychart

BLOCK = re.compile(r"```mermaid\n(.*?)```\n(.*?)\n", re.DOTALL)  # a chart and the line after it
ENTRY = re.compile(r"\*\*(\w+)\*\* ([\w ]+?)(?= ·|$| \()")


def _palette(block: str) -> list[str]:
    directive = re.search(r"%%\{init: (.*)\}%%", block)
    assert directive is not None, block
    config = json.loads(directive.group(1))  # Mermaid reads the directive as JSON
    palette: str = config["themeVariables"]["xyChart"]["plotColorPalette"]
    return [colour.strip() for colour in palette.split(",")]


def _lines(block: str) -> list[list[int]]:
    found = re.findall(r"^\s*line \[(.*)\]$", block, flags=re.MULTILINE)
    return [[int(v) for v in values.split(", ")] for values in found]


def _legend(line: str) -> list[tuple[str, str]]:
    assert line.startswith("Lines: "), line
    return ENTRY.findall(line.removeprefix("Lines: "))


def _colour_word(hex_colour: str) -> str:
    """What a person calls a colour, from its hue: the legend's words must describe the lines."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, _lightness, saturation = colorsys.rgb_to_hls(red, green, blue)
    if saturation < 0.15:
        return "grey"
    degrees = hue * 360
    for word, upper in (("red", 15), ("orange", 45), ("yellow", 70), ("green", 170)):
        if degrees < upper:
            return word
    return "blue" if degrees < 260 else "purple"


def _charts(report: str) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(block, _legend(after)) for block, after in BLOCK.findall(report)]


def _thousands(values: pd.Series) -> list[int]:
    return [round(v / 1e3) for v in values]


def test_each_legend_names_every_line_in_drawing_order_with_the_colour_it_is_drawn_in() -> None:
    # Three different series, so a line can be told from another by its values.
    pr, base = forecast_frame(shift=5e3), forecast_frame(shift=2e4)
    pr_horizon, base_horizon = horizon_frame(), horizon_frame(1.5)
    report = render_markdown(
        report_inputs(
            forecast_pr=pr, forecast_base=base, horizon_pr=pr_horizon, horizon_base=base_horizon
        )
    )
    shown = pr[pr["fold"] >= 2]  # the last two folds
    expected = [
        {
            "actual": _thousands(shown["actual"]),
            "PR model": _thousands(shown["model"]),
            "base model": _thousands(base[base["fold"] >= 2]["model"]),
        },
        {
            "PR model": _thousands(pr_horizon["model_mae"]),
            "base model": _thousands(base_horizon["model_mae"]),
        },
    ]
    charts = _charts(report)
    assert len(charts) == len(expected)
    for (block, legend), series in zip(charts, expected, strict=True):
        palette, lines = _palette(block), _lines(block)
        # Mermaid colours the i-th line with the i-th palette entry (xychartDb.ts).
        assert len(legend) == len(lines) == len(palette) == len(series), (legend, palette)
        for (word, name), colour, values in zip(legend, palette, lines, strict=True):
            assert values == series[name], name
            assert _colour_word(colour) == word, (name, colour)
        assert len(set(palette)) == len(palette)  # no two lines share a colour


def test_a_series_keeps_its_colour_from_chart_to_chart() -> None:
    colours: dict[str, set[str]] = {}
    for block, legend in _charts(render_markdown(report_inputs())):
        for (_, name), colour in zip(legend, _palette(block), strict=True):
            colours.setdefault(name, set()).add(colour)
    assert colours.keys() == {"actual", "PR model", "base model"}
    assert all(len(used) == 1 for used in colours.values()), colours


@pytest.mark.parametrize(
    ("base", "names"),
    [(None, ["actual", "PR model"]), (forecast_frame(folds=4), ["actual", "PR model"])],
    ids=["no-base", "base-on-other-hours"],
)
def test_a_base_line_not_drawn_is_not_in_the_legend(
    base: pd.DataFrame | None, names: list[str]
) -> None:
    chart, legend = forecast_chart(forecast_frame(), base)
    assert [name for _, name in _legend(legend)] == names
    assert len(_palette(chart)) == len(_lines(chart)) == len(names)
    assert ("not drawn" in legend) is (base is not None)
    chart, legend = horizon_chart(horizon_frame(), None)
    assert [name for _, name in _legend(legend)] == ["PR model"]
    assert len(_palette(chart)) == 1


def test_a_chart_without_a_palette_leaves_colours_to_the_theme() -> None:
    # The monitoring report's charts (their own legend) keep Mermaid's theme colours.
    chart = xychart("t", ["a", "b"], "y", [[1.0, 2.0]], 1.0)
    assert "%%{init" not in chart
    assert chart.splitlines()[1] == "xychart-beta"
