"""The contract between the stages and what follows them: what each stage writes, how to read it.

Stages, serving, monitoring and the PR report name a stage's files only through this module, so
none of them imports another stage's code. ``dvc.yaml`` declares the same files (a test checks
that every output here is declared by the stage that writes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from traffic_forecast.core.config import PathsConfig
from traffic_forecast.core.errors import PipelineInputError


@dataclass(frozen=True)
class Output:
    """One file a stage writes: in which ``paths`` folder, under which name."""

    stage: str
    folder: str  # a field of `PathsConfig`
    name: str

    def path(self, paths: PathsConfig) -> Path:
        """Where the file is for these paths."""
        return Path(getattr(paths, self.folder)) / self.name

    def existing(self, paths: PathsConfig) -> Path:
        """The path, or a `PipelineInputError` saying which stage to run first."""
        path = self.path(paths)
        if not path.is_file():
            raise PipelineInputError(
                f"{path} not found: run the {self.stage} stage first (`make repro`)"
            )
        return path


# validate: the raw tables, typed; the validation report; what the raw data was
TRAFFIC = Output("validate", "validated_dir", "traffic.parquet")
SALE_EVENTS = Output("validate", "validated_dir", "sale_events.parquet")
INFRASTRUCTURE = Output("validate", "validated_dir", "infrastructure.parquet")
VALIDATED_TABLES = {
    "traffic": TRAFFIC,
    "sale_events": SALE_EVENTS,
    "infrastructure": INFRASTRUCTURE,
}
VALIDATED_DATA = Output("validate", "validated_dir", "data.json")
VALIDATION_MD = Output("validate", "reports_dir", "validation.md")
VALIDATION_JSON = Output("validate", "reports_dir", "validation.json")

# features: the model-ready history and the horizon's known-in-advance features
HISTORY = Output("features", "features_dir", "history.parquet")
FUTURE = Output("features", "features_dir", "future.parquet")
FEATURES_DATA = Output("features", "features_dir", "data.json")  # VALIDATED_DATA, passed on

# train: the model, its fallback and its card
FORECASTER = Output("train", "model_dir", "forecaster.zip")
BASELINE = Output("train", "model_dir", "baseline.zip")
MODEL_CARD = Output("train", "model_dir", "model_card.json")

# evaluate: the backtest's metrics (DVC metrics), tables, plot data and plots, intervals
METRICS = Output("evaluate", "reports_dir", "metrics.json")
INTERVALS = Output("evaluate", "reports_dir", "intervals.json")
CHOICE = Output("evaluate", "reports_dir", "choice.json")  # the model train fits (model=auto)
FOLDS = Output("evaluate", "reports_dir", "backtest_folds.csv")
FORECAST_PLOT_DATA = Output("evaluate", "reports_dir", "plots/forecast.csv")
HORIZON_PLOT_DATA = Output("evaluate", "reports_dir", "plots/error_by_horizon.csv")
FORECAST_PNG = Output("evaluate", "reports_dir", "forecast.png")
HORIZON_PNG = Output("evaluate", "reports_dir", "error_by_horizon.png")

# explain: permutation importance of the feature groups
EXPLAIN_CSV = Output("explain", "reports_dir", "explain.csv")
EXPLAIN_PNG = Output("explain", "reports_dir", "explain.png")
FLEET_METRICS = Output("fleet_evaluate", "reports_dir", "fleet_metrics.csv")  # one row a series
FLEET_EXCLUDED = Output("fleet_evaluate", "reports_dir", "fleet_excluded.csv")  # too short

ALL = (
    TRAFFIC,
    SALE_EVENTS,
    INFRASTRUCTURE,
    VALIDATED_DATA,
    VALIDATION_MD,
    VALIDATION_JSON,
    HISTORY,
    FUTURE,
    FEATURES_DATA,
    FORECASTER,
    BASELINE,
    MODEL_CARD,
    METRICS,
    INTERVALS,
    FOLDS,
    FORECAST_PLOT_DATA,
    HORIZON_PLOT_DATA,
    FORECAST_PNG,
    HORIZON_PNG,
    EXPLAIN_CSV,
    EXPLAIN_PNG,
)


def read_json(output: Output, paths: PathsConfig) -> dict[str, Any]:
    """A JSON output as a dict."""
    loaded: dict[str, Any] = json.loads(output.existing(paths).read_text(encoding="utf-8"))
    return loaded


def read_frame(output: Output, paths: PathsConfig) -> pd.DataFrame:
    """A Parquet output as a frame."""
    return pd.read_parquet(output.existing(paths))


def read_validated(
    paths: PathsConfig, *, with_events: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The validated traffic table and, when the data has a sale calendar, the sale events."""
    traffic = read_frame(TRAFFIC, paths)
    return traffic, read_frame(SALE_EVENTS, paths) if with_events else None


def read_features(paths: PathsConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features stage's history (`ModelFrame`) and future (`FutureFeatures`) frames."""
    return read_frame(HISTORY, paths), read_frame(FUTURE, paths)
