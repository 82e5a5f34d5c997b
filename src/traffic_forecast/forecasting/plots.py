"""PNG plots for people (the DVC plot data beside them is what `dvc plots diff` reads)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI runners or servers

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

DPI = 110


def forecast_vs_actual(frame: pd.DataFrame, path: Path, *, last_folds: int = 4) -> None:
    """Actual, model, baseline and the model's interval over the last backtest folds."""
    folds = sorted(frame["fold"].unique())[-last_folds:]
    shown = frame[frame["fold"].isin(folds)]
    figure, axes = plt.subplots(1, len(folds), figsize=(3.2 * len(folds), 3.2), sharey=True)
    for axis, (fold, part) in zip(
        axes if len(folds) > 1 else [axes], shown.groupby("fold"), strict=True
    ):
        hours = pd.to_datetime(part["timestamp"])
        if "lower" in part and part["lower"].notna().all():
            axis.fill_between(hours, part["lower"], part["upper"], alpha=0.2, label="interval")
        axis.plot(hours, part["actual"], color="black", lw=1.5, label="actual")
        axis.plot(hours, part["model"], lw=1.2, label="model")
        axis.plot(hours, part["baseline"], lw=1, ls="--", label="seasonal naive")
        axis.set_title(f"fold {fold}: {hours.iloc[0]:%Y-%m-%d}", fontsize=9)
        axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    axes_list = list(axes) if len(folds) > 1 else [axes]
    axes_list[0].set_ylabel("sessions per hour")
    axes_list[-1].legend(fontsize=7)
    _save(figure, path)


def error_by_horizon(table: pd.DataFrame, path: Path) -> None:
    """MAE per horizon step, model vs baseline."""
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.plot(table["step"], table["model_mae"], marker="o", ms=3, label="model")
    axis.plot(
        table["step"], table["baseline_mae"], marker="o", ms=3, ls="--", label="seasonal naive"
    )
    axis.set_xlabel("hours ahead")
    axis.set_ylabel("mean absolute error")
    axis.legend()
    _save(figure, path)


def importance(table: pd.DataFrame, path: Path) -> None:
    """Horizontal bars: how much each feature group drives the forecast error."""
    ordered = table.sort_values("importance")
    figure, axis = plt.subplots(figsize=(6, 0.35 * len(ordered) + 1))
    axis.barh(ordered["feature"], ordered["importance"])
    axis.set_xlabel("MASE increase when the feature is permuted")
    _save(figure, path)


def monitoring(
    forecast: pd.DataFrame, actuals: pd.Series, profiles: pd.DataFrame, path: Path
) -> None:
    """Served forecast vs the actuals that came, and the weekly profile, reference vs recent."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    common = forecast.index.intersection(actuals.index)
    if len(common):
        shown = forecast.loc[common]
        left.fill_between(common, shown["lower"], shown["upper"], alpha=0.2, label="interval")
        left.plot(common, actuals[common], color="black", lw=1.4, label="actual")
        left.plot(common, shown["value"], lw=1.2, label="served forecast")
        left.legend(fontsize=7)
    else:
        left.text(0.5, 0.5, "no actual hour in the forecast yet", ha="center", va="center")
    left.set_title("forecast vs actual", fontsize=9)
    left.tick_params(axis="x", labelrotation=45, labelsize=7)
    for column in profiles.columns:
        right.plot(profiles.index, profiles[column], lw=1.2, label=column)
    right.set_xlabel("hour of week (Monday 0:00 = 0)")
    right.set_title("weekly profile (level removed)", fontsize=9)
    right.legend(fontsize=7)
    _save(figure, path)


def message(text: str, path: Path) -> None:
    """A small image that says why there is no plot (DVC expects the file either way)."""
    figure, axis = plt.subplots(figsize=(6, 1.2))
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    axis.set_axis_off()
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(figure)
