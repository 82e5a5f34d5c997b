"""Stage 5, explain: what drives the model's forecast, as permutation importance per feature group.

A copy of the model is fitted on history up to the last ``explain.holdout_hours`` and forecasts
them; then each feature group is shuffled (across hours, ``explain.repeats`` times) and the
increase in MASE says how much the forecast relies on it. Writes ``reports/explain.csv`` and
``reports/explain.png``. The forecasts are the model's lean form's where it has one: the same
numbers, in seconds where sktime takes minutes (a recursive model, an ensemble holding one).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.config import Config, ExplainConfig, ModelConfig
from traffic_forecast.core.io import write_text_atomic
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import FutureFeatures
from traffic_forecast.forecasting import plots
from traffic_forecast.forecasting.export import NotExportableError, days_since_epoch, export
from traffic_forecast.forecasting.features import (
    SALE_KIND_PREFIX,
    event_columns,
    exogenous_columns,
)
from traffic_forecast.forecasting.forecasters import exogenous, fit, running_sktime, target_series
from traffic_forecast.forecasting.metrics import MASE_SEASON, seasonal_scale
from traffic_forecast.pipeline import outputs
from traffic_forecast.pipeline.chosen import trained_model

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]

# Features that carry one idea are shuffled together: shuffling hour but not hour_of_week
# would leave the information in place and call the hour unimportant.
FEATURE_GROUPS = {
    "daily and weekly calendar": [
        FutureFeatures.hour,
        FutureFeatures.day_of_week,
        FutureFeatures.hour_of_week,
        FutureFeatures.is_weekend,
    ],
    "month (yearly season)": [FutureFeatures.month],
    "public holidays": [FutureFeatures.is_holiday],
    "sale calendar": [
        FutureFeatures.sale_active,
        FutureFeatures.sale_discount,
        FutureFeatures.sale_hours_since_start,
        FutureFeatures.sale_hours_since_end,
    ],
    "same hour last week": [FutureFeatures.target_lag_168],
    "event flags": [],  # the traffic file's data.event_columns, added by `feature_groups`
}


def feature_groups(columns: list[str]) -> dict[str, list[str]]:
    """`FEATURE_GROUPS` restricted to the columns present, sale kinds with the sale calendar.

    The event flags of a bring-your-own CSV are one group: they share the idea "a special day".
    """
    groups = {
        name: [c for c in members if c in columns] for name, members in FEATURE_GROUPS.items()
    }
    groups["sale calendar"] += [c for c in columns if c.startswith(SALE_KIND_PREFIX)]
    groups["event flags"] += event_columns(columns)
    return {name: members for name, members in groups.items() if members}


def permutation_importance(
    model: ModelConfig, history: pd.DataFrame, explain: ExplainConfig, seed: int
) -> pd.DataFrame:
    """MASE on the held-out hours, and its mean increase when each group is shuffled."""
    train, holdout = history.iloc[: -explain.holdout_hours], history.iloc[-explain.holdout_hours :]
    forecaster = fit(model, train)
    columns = exogenous_columns(history)
    X_holdout = exogenous(holdout, columns)
    actual = target_series(holdout).to_numpy()
    scale = seasonal_scale(target_series(train), MASE_SEASON)
    groups = feature_groups(columns)
    shuffled = shuffled_copies(X_holdout, list(groups.values()), explain.repeats, seed)
    forecasts = holdout_forecasts(forecaster, X_holdout, shuffled)
    reference, *rest = [float(np.mean(np.abs(f - actual)) / scale) for f in forecasts]
    rows = []
    for k, name in enumerate(groups):
        scores = rest[k * explain.repeats : (k + 1) * explain.repeats]
        rows.append(
            {
                "feature": name,
                "importance": float(np.mean(scores)) - reference,
                "mase_shuffled": float(np.mean(scores)),
                "mase": reference,
            }
        )
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)


def shuffled_copies(
    X: pd.DataFrame, groups: list[list[str]], repeats: int, seed: int
) -> list[pd.DataFrame]:
    """``repeats`` copies of ``X`` per group, in order, its columns shuffled across hours."""
    rng = np.random.default_rng(seed)
    copies = []
    for members in groups:
        for _ in range(repeats):
            frame = X.copy()
            frame[members] = X[members].to_numpy()[rng.permutation(len(frame))]
            copies.append(frame)
    return copies


def holdout_forecasts(
    forecaster: Any, X: pd.DataFrame, shuffled: list[pd.DataFrame]
) -> list[FloatArray]:
    """The fitted ``forecaster``'s forecasts of the hours of ``X`` and of each shuffled copy.

    Through its lean form when it has one: every copy in one pass (a recursive model steps
    all of them at once, an ensemble's featureless members forecast once), sktime otherwise.
    """
    with running_sktime():
        try:
            lean = export(forecaster, list(X.columns))
        except NotExportableError as exc:
            log.info("explaining through sktime (%s)", exc)
            fh = np.arange(1, len(X) + 1)
            return [
                np.asarray(forecaster.predict(fh=fh, X=frame), dtype=float).ravel()
                for frame in [X, *shuffled]
            ]
        scenarios = lean.scenarios(days_since_epoch(pd.DatetimeIndex(X.index)), X.to_numpy())
        return [scenarios.default, *scenarios.under([frame.to_numpy() for frame in shuffled])]


def run(cfg: Config) -> pd.DataFrame | None:
    """Write the importance table and plot; ``None`` for a model without exogenous inputs."""
    paths = cfg.paths
    csv, png = outputs.EXPLAIN_CSV.path(paths), outputs.EXPLAIN_PNG.path(paths)
    model = trained_model(cfg)
    if not model.uses_exog:
        note = f"{model.name} uses no exogenous features: nothing to explain by permutation"
        write_text_atomic(csv, "feature,importance,mase_shuffled,mase\n")
        plots.message(note, png)
        log.info(note)
        return None
    history, _ = outputs.read_features(paths)
    table = permutation_importance(model, history, cfg.explain, cfg.seed)
    write_text_atomic(csv, table.round(4).to_csv(index=False))
    plots.importance(table, png)
    top = ", ".join(f"{r.feature} (+{r.importance:.2f})" for r in table.head(3).itertuples())
    log.info("top drivers of the %s forecast (MASE increase when shuffled): %s", model.name, top)
    return table


def _run(args: argparse.Namespace) -> int:
    run(load_config(args.overrides))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast explain [overrides…]`` (DVC: ``python -m …pipeline.explain``)."""
    return command.run(command.parser("explain", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
