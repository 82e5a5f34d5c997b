"""What the monitor compares: the served model, its training data, and the new actuals.

New actuals come from the store of observed hours the service reads (``observations.url``)
when it holds hours after the model's training, else from raw tables like ``data/raw``'s in
``monitor.actuals_dir``, validated by the pipeline's own checks (a sale kind the model does not
know is drift to report, not a validation failure). The forecasts scored are in ``served``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from traffic_forecast.core.config import Config, DataConfig
from traffic_forecast.core.errors import DataValidationError, PipelineInputError
from traffic_forecast.data.schemas import (
    OBSERVED_INFRASTRUCTURE,
    InfrastructureRaw,
    SaleEventsRaw,
    TrafficRaw,
)
from traffic_forecast.data.store import ObservationStore, StoreUnavailableError, shown_url
from traffic_forecast.data.validation import raw_files, read_raw, validate_raw
from traffic_forecast.data.validation_report import render_markdown
from traffic_forecast.deploy.state import observations_url
from traffic_forecast.forecasting.capacity import learn_capacity
from traffic_forecast.pipeline import outputs
from traffic_forecast.serving import artifacts
from traffic_forecast.serving.artifacts import ModelArtifacts

log = logging.getLogger(__name__)

ActualsFrom = Literal["auto", "store", "files"]
ACTUALS_FROM: tuple[ActualsFrom, ...] = ("auto", "store", "files")


@dataclass(frozen=True)
class NewData:
    """The new actuals (hours after the model's training only), and where they came from."""

    traffic: pd.Series  # target on an hourly index
    infrastructure: pd.DataFrame | None
    sale_kinds: list[str]  # every kind in the new sale calendar
    source: ActualsFrom  # store or files
    described: str  # where they were read, in words, for the report


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


def _sale_kinds(data: DataConfig, calendar: Path | None) -> list[str]:
    """The configured sale kinds, and those of the sale calendar at ``calendar`` if it exists."""
    kinds = list(data.sale_kinds)
    if calendar is not None and calendar.is_file():
        seen = pd.read_csv(calendar, usecols=[SaleEventsRaw.kind])[SaleEventsRaw.kind]
        kinds = sorted(set(kinds) | set(seen.dropna().astype(str)))
    return kinds


def read_new(cfg: Config, folder: Path, training_end: pd.Timestamp) -> NewData:
    """Validate the raw tables in ``folder`` and keep the hours after ``training_end``."""
    data = cfg.data
    files = {key: str(folder / Path(path).name) for key, path in raw_files(data).items()}
    if not Path(files["traffic"]).is_file():
        raise PipelineInputError(
            f"no new actuals: {files['traffic']} not found (the example's: `make actuals`; "
            "your own: the export job writes the raw tables there)"
        )
    events = files.get("sale_events")
    kinds = _sale_kinds(data, None if events is None else Path(events))
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
    return NewData(
        series[series.index > training_end], infra, kinds, "files", f"raw tables in {folder}"
    )


def read_store(cfg: Config, training_end: pd.Timestamp, calendar_dir: Path) -> NewData | None:
    """The store's current hours after ``training_end``; None when it holds none (or is absent).

    The store holds observed hours, not the sale calendar: the new sale kinds are read from the
    calendar file in ``calendar_dir`` when one is there. Hours whose instances and CPU were
    observed too feed the capacity check.
    """
    url = observations_url(cfg)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None  # no service has stored an hour here; do not create the file by looking
    store = ObservationStore(url)
    try:
        current = store.current(after=training_end)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreUnavailableError(f"{shown_url(url)}: {reason}") from None
    finally:
        store.close()
    if current.empty:
        return None
    stamps = pd.DatetimeIndex(current[TrafficRaw.timestamp])
    traffic = pd.Series(current[TrafficRaw.target].to_numpy(dtype=float), index=stamps)
    measured = [InfrastructureRaw.instances, InfrastructureRaw.cpu_utilization]
    infra = current.dropna(subset=measured)[[TrafficRaw.timestamp, *OBSERVED_INFRASTRUCTURE]]
    calendar_file = cfg.data.sale_events_file
    calendar = None if not calendar_file else calendar_dir / Path(calendar_file).name
    kinds = _sale_kinds(cfg.data, calendar)
    sales = f"sale calendar {calendar}" if calendar and calendar.is_file() else "no sale calendar"
    return NewData(
        traffic,
        None if infra.empty else infra.reset_index(drop=True),
        kinds,
        "store",
        f"the observation store {shown_url(url)} ({sales})",
    )


def new_actuals(
    cfg: Config, folder: Path, training_end: pd.Timestamp, actuals_from: ActualsFrom = "auto"
) -> NewData:
    """The new actuals: ``store``, ``files`` (``folder``), or ``auto`` (the store if it has any)."""
    if actuals_from == "files":
        return read_new(cfg, folder, training_end)
    try:
        stored = read_store(cfg, training_end, folder)
    except StoreUnavailableError as exc:
        if actuals_from == "store":
            raise
        why = f"the observation store is unavailable: {exc}"
        log.warning("%s; reading the raw tables in %s", why, folder)
    else:
        if stored is not None:
            return stored
        store = shown_url(observations_url(cfg))
        why = f"the observation store {store} has no hour after {training_end}"
        if actuals_from == "store":
            raise PipelineInputError(
                f"{why}: `traffic-forecast observe FILE.csv` or POST /observations stores them"
            )
    try:
        files = read_new(cfg, folder, training_end)
    except PipelineInputError as exc:
        raise PipelineInputError(f"{exc}; and {why}") from None
    return dataclasses.replace(files, described=f"{files.described} ({why})")


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
