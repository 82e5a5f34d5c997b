"""What the monitor compares: the served model, its training data, the new actuals, the forecasts.

New actuals are raw tables like ``data/raw``'s, validated by the pipeline's own checks (a sale
kind the model does not know is drift to report, not a validation failure). The forecasts are
the ones the prediction logs say were served, else the packaged model's default forecast.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException

from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import DataValidationError, PipelineInputError
from traffic_forecast.data.schemas import InfrastructureRaw, SaleEventsRaw, TrafficRaw
from traffic_forecast.data.validation import raw_files, read_raw, validate_raw
from traffic_forecast.data.validation_report import render_markdown
from traffic_forecast.forecasting.capacity import learn_capacity
from traffic_forecast.pipeline import outputs
from traffic_forecast.serving import artifacts, predictions
from traffic_forecast.serving.artifacts import ModelArtifacts
from traffic_forecast.serving.engine import ForecastEngine


@dataclass(frozen=True)
class NewData:
    """The validated new tables (hours after the model's training only)."""

    traffic: pd.Series  # target on an hourly index
    infrastructure: pd.DataFrame | None
    sale_kinds: list[str]  # every kind in the new sale calendar


@dataclass(frozen=True)
class Served:
    """The model being watched and the forecast it served (or serves) from its origin."""

    tag: str
    artifacts: ModelArtifacts
    forecast: pd.DataFrame  # index: hour; value, lower, upper
    source: str  # prediction log, or recomputed


def model_artifacts(cfg: Config, which: str) -> tuple[str, ModelArtifacts]:
    """``workspace`` (this checkout's pipeline outputs), ``latest`` or a model tag."""
    if which == "workspace":
        staging = Path(tempfile.mkdtemp(prefix="monitor-model-"))
        artifacts.gather(cfg, staging)
        return "workspace", artifacts.load(staging)
    tag = f"{cfg.serving.model_name}:latest" if which == "latest" else which
    try:
        model = bentoml.models.get(tag)
    except BentoMLException as exc:
        raise PipelineInputError(f"no model {tag!r} in the BentoML store: {exc}") from None
    return str(model.tag), artifacts.load(Path(model.path))


def read_new(cfg: Config, folder: Path, training_end: pd.Timestamp) -> NewData:
    """Validate the raw tables in ``folder`` and keep the hours after ``training_end``."""
    data = cfg.data
    files = {key: str(folder / Path(path).name) for key, path in raw_files(data).items()}
    if not Path(files["traffic"]).is_file():
        raise PipelineInputError(
            f"no new actuals: {files['traffic']} not found (the example's: `make actuals`; "
            "your own: the export job writes the raw tables there)"
        )
    kinds = list(data.sale_kinds)
    if "sale_events" in files and Path(files["sale_events"]).is_file():
        seen = pd.read_csv(files["sale_events"], usecols=[SaleEventsRaw.kind])[SaleEventsRaw.kind]
        kinds = sorted(set(kinds) | set(seen.dropna().astype(str)))
    relaxed = dataclasses.replace(
        data,
        traffic_file=files["traffic"],
        sale_events_file=files.get("sale_events"),
        infrastructure_file=files.get("infrastructure"),
        sale_kinds=kinds,
    )
    texts, read_failures = read_raw(relaxed)
    result = validate_raw(relaxed, texts, read_failures)
    if not result.passed:
        raise DataValidationError(
            "the new actuals fail validation:\n" + render_markdown(result.failures, result.rows, [])
        )
    traffic = result.tables["traffic"]
    stamps = pd.DatetimeIndex(traffic[TrafficRaw.timestamp])
    series = pd.Series(traffic[TrafficRaw.target].to_numpy(dtype=float), index=stamps)
    infra = result.tables.get("infrastructure")
    if infra is not None:
        infra = infra[infra[InfrastructureRaw.timestamp] > training_end]
    return NewData(series[series.index > training_end], infra, kinds)


def reference(cfg: Config, training_end: pd.Timestamp) -> pd.Series:
    """The training data (validated tables of this checkout) up to ``training_end``."""
    traffic, _ = outputs.read_validated(cfg.paths, with_events=False)
    traffic = traffic[traffic[TrafficRaw.timestamp] <= training_end]
    return pd.Series(
        traffic[TrafficRaw.target].to_numpy(dtype=float),
        index=pd.DatetimeIndex(traffic[TrafficRaw.timestamp]),
    )


def recent_capacity(traffic: pd.Series, infra: pd.DataFrame | None, cfg: Config) -> float | None:
    """Sessions per instance at full CPU, learnt on the new hours (None without the tables)."""
    if infra is None or infra.empty or traffic.empty:
        return None
    frame = pd.DataFrame(
        {TrafficRaw.timestamp: traffic.index, TrafficRaw.target: traffic.to_numpy()}
    )
    try:
        learnt = learn_capacity(frame, infra, window_hours=len(frame), min_cpu=cfg.capacity.min_cpu)
    except DataValidationError:
        return None
    return learnt.sessions_per_instance


def served_forecast(tag: str, loaded: ModelArtifacts, log_glob: str) -> Served:
    """The longest default forecast the logs say ``tag`` served; else the model's own."""
    entries = predictions.read(predictions.log_files(log_glob))
    logged = [
        e
        for e in entries
        if e.get("model_version") == tag and not e.get("what_if") and not e.get("fallback")
    ]
    if logged:
        longest = max(logged, key=lambda e: len(e["value"]))
        hours = pd.date_range(longest["origin"], periods=len(longest["value"]), freq="h")
        frame = pd.DataFrame({k: longest[k] for k in ("value", "lower", "upper")}, index=hours)
        return Served(tag, loaded, frame, f"prediction log ({len(logged)} default answers)")
    engine = ForecastEngine(loaded)
    answer = engine.default(engine.max_horizon, loaded.serving.default_coverage)
    frame = pd.DataFrame(
        {"value": answer.value, "lower": answer.lower, "upper": answer.upper},
        index=answer.timestamps,
    )
    return Served(tag, loaded, frame, "recomputed from the packaged model (no prediction log)")
