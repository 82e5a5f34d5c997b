"""What a packaged model holds: the files serving needs, gathered from a pipeline run, read back.

The model directory in the BentoML store is self-contained: the fitted forecaster and its
seasonal-naive fallback, the model card, the known-in-advance features of the horizon, the sale
calendar (for what-if forecasts), the interval calibration, the backtest metrics, the last week
of the training target (the lags live actuals continue from), and the serving settings with the
per-instance capacity learnt from the infrastructure data.
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traffic_forecast.core.config import WEEK_HOURS, Config, ServingConfig
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.forecasting import forecasters
from traffic_forecast.forecasting.capacity import Capacity, learn_capacity
from traffic_forecast.forecasting.export import LeanModel, NotExportableError, export
from traffic_forecast.pipeline import outputs

# The packaged files: the pipeline's, under their own names, and the serving settings.
FORECASTER_FILE = outputs.FORECASTER.name
BASELINE_FILE = outputs.BASELINE.name
MODEL_CARD_FILE = outputs.MODEL_CARD.name
FUTURE_FILE = outputs.FUTURE.name
INTERVALS_FILE = outputs.INTERVALS.name
METRICS_FILE = outputs.METRICS.name
SALE_EVENTS_FILE = outputs.SALE_EVENTS.name
SERVING_FILE = "serving.json"
RECENT_FILE = "recent.parquet"  # the training data's last week: lags for live actuals
INFERENCE_FILE = "inference.pkl"  # the lean forms of model and fallback (forecasting.inference)


@dataclass(frozen=True)
class LeanForms:
    """Model and fallback exported for serving without sktime; None and why where not."""

    forecaster: LeanModel | None
    baseline: LeanModel | None
    not_exported: str | None = None  # why the model keeps sktime's path


@dataclass(frozen=True)
class ModelArtifacts:
    """A packaged model, loaded: everything `ForecastEngine` and the service need."""

    forecaster: Any
    baseline: Any
    card: dict[str, Any]
    future: pd.DataFrame  # FutureFeatures: the hours after the last observed one
    sale_events: pd.DataFrame | None  # SaleEventsRaw, past and planned
    intervals: dict[str, Any]
    metrics: dict[str, Any]
    serving: ServingConfig
    sale_kinds: list[str]
    capacity: Capacity | None  # None where the data had no infrastructure table
    target_utilisation: float
    level_range: tuple[float, float]  # 1st and 99th percentile of the hourly training target
    recent: pd.Series  # the target's last week of training, on an hourly index
    holidays: str  # the holiday calendar of the features (features.holidays)
    lean: LeanForms = LeanForms(None, None, "packaged without lean forms")


def _packaged_outputs(cfg: Config) -> list[outputs.Output]:
    packaged = [
        outputs.FORECASTER,
        outputs.BASELINE,
        outputs.MODEL_CARD,
        outputs.FUTURE,
        outputs.INTERVALS,
        outputs.METRICS,
    ]
    return packaged + ([outputs.SALE_EVENTS] if cfg.data.sale_events_file else [])


def learnt_capacity(cfg: Config) -> Capacity | None:
    """Per-instance capacity from the validated traffic and infrastructure tables, if any."""
    if not cfg.data.infrastructure_file:
        return None
    traffic, _ = outputs.read_validated(cfg.paths, with_events=False)
    return learn_capacity(
        traffic,
        outputs.read_frame(outputs.INFRASTRUCTURE, cfg.paths),
        window_hours=cfg.capacity.window_hours,
        min_cpu=cfg.capacity.min_cpu,
    )


def gather(cfg: Config, into: Path) -> None:
    """Copy a pipeline run's outputs into ``into`` and write the serving settings beside them."""
    for output in _packaged_outputs(cfg):
        shutil.copyfile(output.existing(cfg.paths), into / output.name)
    capacity = learnt_capacity(cfg)
    history = pd.read_parquet(
        outputs.HISTORY.existing(cfg.paths), columns=[TrafficRaw.timestamp, TrafficRaw.target]
    )
    low, high = np.percentile(history[TrafficRaw.target].to_numpy(dtype=float), [1, 99])
    history.iloc[-WEEK_HOURS:].reset_index(drop=True).to_parquet(into / RECENT_FILE, index=False)
    settings = {
        "holidays": cfg.features.holidays,
        "level_range": [float(low), float(high)],
        "serving": asdict(cfg.serving),
        "sale_kinds": list(cfg.data.sale_kinds),
        "target_utilisation": cfg.capacity.target_utilisation,
        "capacity": None if capacity is None else asdict(capacity),
    }
    (into / SERVING_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True), "utf-8")
    (into / INFERENCE_FILE).write_bytes(pickle.dumps(lean_forms(into)))


def lean_forms(folder: Path) -> LeanForms:
    """Export the packaged forecaster and fallback in ``folder`` to their lean forms."""
    card = _json(folder / MODEL_CARD_FILE)
    columns = list(card.get("exogenous_columns", [])) if card.get("uses_exog") else []
    exported: list[LeanModel | None] = []
    reasons = []
    for name, path, features in (
        (card.get("model"), folder / FORECASTER_FILE, columns),
        ("fallback", folder / BASELINE_FILE, []),
    ):
        try:
            exported.append(export(forecasters.load(path), features))
        except NotExportableError as exc:
            exported.append(None)
            reasons.append(f"{name}: {exc}")
    return LeanForms(exported[0], exported[1], "; ".join(reasons) or None)


def _json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def load(folder: Path) -> ModelArtifacts:
    """Read a packaged model directory back (what the service does at start)."""
    settings = _json(folder / SERVING_FILE)
    events = folder / SALE_EVENTS_FILE
    capacity = settings["capacity"]
    # Models packaged before the range was recorded have none to be out of.
    low, high = settings.get("level_range", [0.0, float("inf")])
    recent = pd.read_parquet(folder / RECENT_FILE)
    lean = folder / INFERENCE_FILE
    return ModelArtifacts(
        forecaster=forecasters.load(folder / FORECASTER_FILE),
        baseline=forecasters.load(folder / BASELINE_FILE),
        card=_json(folder / MODEL_CARD_FILE),
        future=pd.read_parquet(folder / FUTURE_FILE),
        sale_events=pd.read_parquet(events) if events.is_file() else None,
        intervals=_json(folder / INTERVALS_FILE),
        metrics=_json(folder / METRICS_FILE),
        serving=ServingConfig(**settings["serving"]),
        sale_kinds=list(settings["sale_kinds"]),
        capacity=None if capacity is None else Capacity(**capacity),
        target_utilisation=float(settings["target_utilisation"]),
        level_range=(float(low), float(high)),
        recent=pd.Series(
            recent[TrafficRaw.target].to_numpy(dtype=float),
            index=pd.DatetimeIndex(recent[TrafficRaw.timestamp], freq="h"),
        ),
        holidays=str(settings["holidays"]),
        # Written by `gather` beside the forecaster it exports: the same trust as its pickle.
        lean=pickle.loads(lean.read_bytes()) if lean.is_file() else ModelArtifacts.lean,
    )
