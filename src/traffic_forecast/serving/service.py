"""The HTTP service (BentoML): forecasts, capacity and lineage of one packaged model.

``bentoml serve traffic_forecast.serving.service:TrafficForecast`` (or a Bento built from
``bentofile.yaml``, ``make bento && make serve``). A Bento serves the model it was built with;
from source, the latest ``traffic-forecast`` in the BentoML store, or the tag
``TRAFFIC_FORECAST_MODEL`` names.

- ``POST /forecast``: hourly forecasts with prediction intervals; planned sales make a what-if.
- ``POST /capacity``: instances per hour to serve the upper forecast at a target CPU level.
- ``POST /observations``: live actuals (bearer token); the forecasts move on with them.
- ``GET /metadata``: lineage and freshness. ``/livez``, ``/readyz``, ``/metrics`` are BentoML's.

With a store of observed hours (``TRAFFIC_FORECAST_OBSERVATIONS``, set by ``make deploy`` and
``make serve``), each answer starts after the newest observed hour (`serving.live`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

from traffic_forecast.core.config import ServingConfig
from traffic_forecast.data.observations import Batch
from traffic_forecast.data.store import StoreUnavailableError, shown_url
from traffic_forecast.serving import artifacts, predictions
from traffic_forecast.serving.contract import (
    CapacityHour,
    CapacityRequest,
    CapacityResponse,
    ForecastHour,
    ForecastRequest,
    ForecastResponse,
    PlannedSale,
    invalid,
)
from traffic_forecast.serving.engine import FloatArray, Forecast, ForecastEngine, PlannedEvent
from traffic_forecast.serving.guard import HttpGuard
from traffic_forecast.serving.live import STORE_ENV, Freshness, LiveModel
from traffic_forecast.serving.openapi import Contract, documented, routes_app
from traffic_forecast.serving.telemetry import telemetry

log = logging.getLogger(__name__)

# What a Bento build takes; serving from source, TRAFFIC_FORECAST_MODEL may name another tag.
MODEL_TAG = "traffic-forecast:latest"
FORECAST, CAPACITY = "/forecast", "/capacity"
API_PATHS = frozenset({FORECAST, CAPACITY})
# A request allocates a few thousand objects; with Python's default (700, 10, 10) the collector
# ran every few requests and a full collection of the young heap every few hundred.
GC_THRESHOLDS = (50_000, 50, 100)
# Default answers kept, one per coverage asked for (about 1.5 MB each with all their bodies).
DEFAULTS_KEPT = 8
# A what-if's sale starts and ends this near the forecast window: beyond it is a client's
# mistake (a sale from year 1 to 9999 is no plan, and past pandas' nanosecond calendar).
PLANNED_SALE_REACH_DAYS = 366


def _running() -> TrafficForecast | None:
    try:
        service: TrafficForecast = bentoml.get_current_service()
    except BentoMLException:
        return None
    return service


def _metadata() -> dict[str, Any] | None:
    service = _running()
    return None if service is None else service.metadata()


CONTRACT: Contract = {
    FORECAST: (ForecastRequest, ForecastResponse),
    CAPACITY: (CapacityRequest, CapacityResponse),
}


def _spec() -> dict[str, Any]:
    service = _running()
    engine = None if service is None else service.engine
    kinds = [] if engine is None else engine.artifacts.sale_kinds
    return _documented_spec(tuple(kinds))


@cache
def _documented_spec(sale_kinds: tuple[str, ...]) -> dict[str, Any]:
    return documented(_bento_service().openapi_spec.asdict(), CONTRACT, list(sale_kinds))


def _bento_service() -> Any:
    # @bentoml.service turns the class into a bentoml Service; mypy keeps the class's type.
    return TrafficForecast


class _ClientErrorsWithoutTraceback(logging.Filter):
    """BentoML logs every invalid request with a traceback; one line says it (and is cheaper)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ValidationError):
            record.msg = (
                f"{record.getMessage()}: {record.exc_info[1].error_count()} invalid field(s)"
            )
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("bentoml._internal.server.http_app").addFilter(_ClientErrorsWithoutTraceback())


def _model_of_the_bento() -> Any:
    """The model version a Bento was built with; None when serving from source.

    BentoML 1.4 pins the versions of Hugging Face models when it loads a Bento, not those of
    `BentoModel`: ``traffic-forecast:latest`` would resolve to the newest model in the store,
    and a Bento built last week would serve this morning's model. Blue/green needs the Bento
    to mean one model.
    """
    bento = _bento_service().bento
    if bento is None:
        return None
    service = next(info for info in bento.info.services if info.name == _bento_service().name)
    return bentoml.models.get(service.models[0].tag)


def _model_named_by_env() -> Any:
    """The model ``TRAFFIC_FORECAST_MODEL`` names when the service starts, if it is set."""
    tag = os.environ.get("TRAFFIC_FORECAST_MODEL")
    return None if not tag else bentoml.models.get(tag)


def _outcome(status: int) -> str:
    return "ok" if status < 400 else "rejected" if status < 500 else "error"


@dataclass(frozen=True)
class View:
    """One state of the served model, swapped whole: a request reads it once and uses only it."""

    engine: ForecastEngine
    freshness: Freshness
    defaults: dict[float, DefaultAnswer] = field(default_factory=dict)  # by coverage


@dataclass(frozen=True)
class DefaultAnswer:
    """The default scenario's answer for every horizon: a request takes the first hours."""

    header: dict[str, Any]
    forecast: Forecast  # all hours the model forecasts
    rows: list[ForecastHour]
    cumulative: FloatArray  # running sum of the point forecast: any horizon's mean in O(1)
    bodies: dict[int, bytes] = field(default_factory=dict)  # the JSON answer, per horizon

    def mean_level(self, hours: int) -> float:
        """Mean point forecast of the first ``hours`` hours."""
        return float(self.cumulative[hours - 1] / hours)

    def response(self, hours: int) -> ForecastResponse:
        """The answer for a horizon of ``hours``."""
        return ForecastResponse.model_construct(**self.header, forecast=self.rows[:hours])

    def body(self, hours: int) -> bytes:
        """The answer's JSON, as BentoML serialises it (made once per horizon)."""
        body = self.bodies.get(hours)
        if body is None:
            body = self.bodies[hours] = self.response(hours).model_dump_json().encode()
        return body


@bentoml.service(
    name="traffic-forecast",
    workers=int(os.environ.get("TRAFFIC_FORECAST_WORKERS", "1")),
    traffic={"timeout": 30},
    # Per request, BentoML's access log and an OpenTelemetry span with no exporter behind it
    # cost more than the forecast itself (`benchmarks/serve.py`). nginx logs access in front;
    # set an exporter and drop the exclusion to trace.
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": [FORECAST, CAPACITY]},
)
@bentoml.asgi_app(routes_app(_metadata, _spec, _running), path="/")
class TrafficForecast:
    """One packaged model: the default forecast from memory, what-ifs within a time budget."""

    model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        stored = _model_of_the_bento() or _model_named_by_env() or self.model
        self.version = str(stored.tag)
        self.labels = dict(stored.info.labels)
        self._what_ifs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="what-if")
        self._ingests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self.not_ready_reason: str | None = None
        self.view: View | None = None
        self.live: LiveModel | None = None
        self.serving, self.card, self.metrics = ServingConfig(), {}, {}
        try:
            loaded = artifacts.load(Path(stored.path))
            self.serving, self.card, self.metrics = loaded.serving, loaded.card, loaded.metrics
            packaged = ForecastEngine(loaded)  # forecasts once: the self-check
        except Exception as exc:  # any failure: alive, never ready
            self.not_ready_reason = f"the model failed its self-check: {exc}"
            log.exception("%s: %s", self.version, self.not_ready_reason)
        else:
            self.follow(packaged, os.environ.get(STORE_ENV) or None)
        log_path = os.environ.get(predictions.ENV)
        self.predictions = (
            None
            if not log_path
            else predictions.PredictionLog(
                predictions.per_worker(Path(log_path), bentoml.server_context.worker_index),
                self.serving.prediction_log_max_bytes,
                self.serving.prediction_log_backups,
                on_drop=telemetry().log_dropped.inc,
            )
        )
        # Zero series from the start, so that an alert on their rate sees them before the first.
        for endpoint in (FORECAST, CAPACITY):
            telemetry().out_of_range.labels(endpoint)
        for field_name in ("horizon", "coverage"):
            telemetry().defaulted.labels(field_name)
        telemetry().model_info.labels(
            self.version, self.labels.get("git_commit", ""), self.card.get("data_version", "")
        ).set(1)
        # The loaded libraries and model are millions of objects that never die: freezing them
        # out of the collector's sight took p99 from 340 ms to 41 ms (README, Benchmarks).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    # -- what the HTTP guard asks -------------------------------------------------------------

    @property
    def max_body_bytes(self) -> int:
        """Larger bodies are refused with 413."""
        return self.serving.max_body_bytes

    def unavailable(self, path: str) -> str | None:
        """Why ``path`` cannot answer now, or None."""
        if self.not_ready_reason is not None:
            return self.not_ready_reason
        if path == CAPACITY and self._view().engine.artifacts.capacity is None:
            return "no capacity data: the model was trained without an infrastructure table"
        return None

    def not_ready(self) -> str | None:
        """Why ``/readyz`` fails: the model, or a store it cannot write (forecasts still answer)."""
        if self.not_ready_reason is not None:
            return self.not_ready_reason
        problem = None if self.live is None or not self.live.store_url else self.live.check_store()
        if problem:
            return f"ingest unavailable, forecasts answer from memory: {problem}"
        return None

    def ingest_unavailable(self) -> str | None:
        """Why observations cannot be stored now, or None (`POST /observations`)."""
        if self.not_ready_reason is not None or self.live is None:
            return self.not_ready_reason or "the model is not loaded"
        return self.live.check_store()

    def count(self, endpoint: str, status: int) -> None:
        """Count one answered request by endpoint and outcome."""
        telemetry().requests.labels(endpoint, _outcome(status)).inc()

    def fast_answer(self, path: str, body: bytes) -> bytes | None:
        """The default scenario's JSON when ``body`` asks for it; None: the API answers.

        Validated by the API's own request model, and counted and logged as `forecast` does:
        the guard sends it without BentoML's request handling (README, Benchmarks).
        """
        if path != FORECAST or not self.serving.fast_path:
            return None
        try:
            request = ForecastRequest.model_validate_json(body)
            hours, level = self._checked("ForecastRequest", request.horizon, request.coverage)
        except ValidationError:
            return None  # the API refuses it, with the field named
        if request.events:
            return None
        view = self._view()
        default = self._default(view, level)
        logged: dict[str, Any] = {
            "horizon": request.horizon,
            "coverage": request.coverage,
            "events": [],
        }
        mean = default.mean_level(hours)
        self._served(view, FORECAST, logged, default.forecast, hours=hours, mean=mean)
        return default.body(hours)

    def __is_ready__(self) -> bool:
        return self.not_ready() is None

    # -- live actuals -------------------------------------------------------------------------

    def follow(self, packaged: ForecastEngine, store_url: str | None) -> None:
        """Serve ``packaged`` moved on by the store at ``store_url`` (None: no store)."""
        if self.live is not None:
            self.live.stop()
        self.live = LiveModel(
            packaged,
            store_url,
            max_age_hours=self.serving.max_data_age_hours,
            poll_s=self.serving.observations_poll_s,
            swap=self._publish,
        )
        self._publish(packaged, self.live.freshness)
        self.live.start()  # reads the store once: a new colour starts current

    def _publish(self, engine: ForecastEngine, freshness: Freshness) -> None:
        """Swap in a new state, its common answer made first (never on the request path)."""
        view = View(engine, freshness)
        self._default(view, self.serving.default_coverage)
        self.view = view
        telemetry().data_age.set(freshness.age_hours)

    async def store_observations(self, batch: Batch) -> dict[str, Any]:
        """Store ``batch`` (durable once answered), then move the model before answering."""
        live = self.live
        if live is None or live.store is None:
            raise StoreUnavailableError(self.ingest_unavailable() or "no observations store")
        store = live.store
        loop = asyncio.get_running_loop()
        written = await loop.run_in_executor(self._ingests, store.write, batch)
        series = telemetry()
        for outcome in ("new", "corrected", "unchanged"):
            series.observations.labels(outcome).inc(getattr(written, outcome))
        await loop.run_in_executor(self._ingests, live.refresh)
        view = self._view()
        return {
            "new": written.new,
            "corrected": written.corrected,
            "unchanged": written.unchanged,
            "origin": view.engine.origin.isoformat(),
            "last_observed": view.engine.last_observed.isoformat(),
            "stale": view.freshness.stale,
            "stale_reason": view.freshness.stale_reason,
        }

    # -- the API ------------------------------------------------------------------------------

    @bentoml.api(route=FORECAST, input_spec=ForecastRequest)
    async def forecast(
        self,
        horizon: int | None = None,
        coverage: float | None = None,
        events: list[PlannedSale] | None = None,
    ) -> ForecastResponse:
        """Hourly forecasts with prediction intervals, from the hour after the last observed."""
        hours, level = self._checked("ForecastRequest", horizon, coverage)
        request = {"horizon": horizon, "coverage": coverage, "events": events or []}
        view = self._view()
        if not events:  # the fast path: sliced from memory
            default = self._default(view, level)
            mean = default.mean_level(hours)
            self._served(view, FORECAST, request, default.forecast, hours=hours, mean=mean)
            return default.response(hours)
        planned = self._planned(view, "ForecastRequest", events, hours)
        answer = await self._what_if(view, planned, hours, level)
        mean = float(np.mean(answer.value))
        self._served(view, FORECAST, request, answer, hours=hours, mean=mean)
        return ForecastResponse.model_construct(
            **self._header(view, answer, what_if=True), forecast=self._hours(answer)
        )

    @bentoml.api(route=CAPACITY, input_spec=CapacityRequest)
    async def capacity(
        self,
        horizon: int | None = None,
        coverage: float | None = None,
        events: list[PlannedSale] | None = None,
        target_utilisation: float | None = None,
    ) -> CapacityResponse:
        """Instances per hour to serve the upper forecast at the target CPU utilisation."""
        hours, level = self._checked("CapacityRequest", horizon, coverage)
        view = self._view()
        engine = view.engine
        if events:
            planned = self._planned(view, "CapacityRequest", events, hours)
            answer = await self._what_if(view, planned, hours, level)
        else:
            answer = engine.default(hours, level)
        capacity = engine.artifacts.capacity
        assert capacity is not None  # the guard answers 503 without it
        target = target_utilisation or engine.artifacts.target_utilisation
        try:
            instances = capacity.instances_needed(answer.upper, target)
        except ValueError as exc:  # a utilisation so low the count overflows: the client's
            raise invalid("CapacityRequest", "target_utilisation", target, str(exc)) from None
        peak = int(np.argmax(instances))
        request = {"horizon": horizon, "coverage": coverage, "events": events or [],
                   "target_utilisation": target_utilisation}  # fmt: skip
        mean = float(np.mean(answer.value))
        self._served(view, CAPACITY, request, answer, hours=hours, mean=mean)
        return CapacityResponse(
            **self._header(view, answer, what_if=bool(events)),
            target_utilisation=target,
            sessions_per_instance=capacity.sessions_per_instance,
            peak_instances=int(instances[peak]),
            peak_hour=answer.timestamps[peak].to_pydatetime(),
            hours=[
                CapacityHour(timestamp=stamp.to_pydatetime(), upper=float(upper), instances=int(n))
                for stamp, upper, n in zip(answer.timestamps, answer.upper, instances, strict=True)
            ],
        )

    def metadata(self) -> dict[str, Any]:
        """``GET /metadata``: where the served model came from, and how well it backtested."""
        not_ready = self.not_ready()  # checks the store: once per answer
        return {
            "model_tag": self.version,
            "labels": self.labels,
            "git_commit": self.labels.get("git_commit"),  # where it was packaged
            "data_version": self.card.get("data_version"),
            "data": self.card.get("data"),
            "config_hash": self.card.get("config_hash"),
            "config": self.card.get("config"),
            "training_window": self.card.get("training_window"),
            "backtest_metrics": self.metrics,
            "libraries": self.card.get("libraries"),
            "ready": not_ready is None,
            "not_ready_reason": not_ready,
            "live": self._live_metadata(),
        }

    def _live_metadata(self) -> dict[str, Any] | None:
        live = self.live
        if live is None:
            return None
        from_store = {
            "store": None if not live.store_url else shown_url(live.store_url),
            "store_problem": live.problem,
            "update_error": live.update_error,
            "revision": live.revision,
            "origin": live.engine.origin.isoformat(),
        }
        return {**from_store, **live.freshness.as_json()}

    # -- helpers ------------------------------------------------------------------------------

    @property
    def engine(self) -> ForecastEngine | None:
        """The model state answering now (None: not ready)."""
        return None if self.view is None else self.view.engine

    def _view(self) -> View:
        assert self.view is not None  # the guard answers 503 before a request gets here
        return self.view

    def _served(
        self,
        view: View,
        endpoint: str,
        request: dict[str, Any],
        answer: Forecast,
        *,
        hours: int,
        mean: float,
    ) -> None:
        """Count the answer's inputs and outputs, and log it (off the request path)."""
        series = telemetry()
        what_if = bool(request["events"])
        series.served(endpoint, hours, what_if, mean)
        for name in ("horizon", "coverage"):
            if request[name] is None:
                series.defaulted.labels(name).inc()
        values = answer.value[:hours]
        low, high = view.engine.artifacts.level_range
        if values.min() < low / 2 or values.max() > 2 * high:
            series.out_of_range.labels(endpoint).inc()
        if self.predictions is not None:
            events = [event.model_dump(mode="json") for event in request["events"]]
            self.predictions.record(
                {
                    "model_version": self.version,
                    "endpoint": endpoint,
                    "request": {**request, "events": events},
                    "origin": view.engine.origin.isoformat(),
                    "last_observed": view.engine.last_observed.isoformat(),
                    "what_if": what_if,
                    "fallback": answer.fallback,
                    "fallback_reason": answer.reason,
                    "coverage": answer.coverage,
                    "value": values,
                    "lower": answer.lower[:hours],
                    "upper": answer.upper[:hours],
                }
            )

    @bentoml.on_shutdown
    def _close_prediction_log(self) -> None:
        if self.predictions is not None:
            self.predictions.close()
        if self.live is not None:
            self.live.stop()

    def _checked(
        self, title: str, horizon: int | None, coverage: float | None
    ) -> tuple[int, float]:
        hours = horizon or self.serving.default_horizon
        max_horizon = self._view().engine.max_horizon
        if hours > max_horizon:
            message = f"this model forecasts at most {max_horizon} hours ahead"
            raise invalid(title, "horizon", hours, message)
        return hours, coverage or self.serving.default_coverage

    def _default(self, view: View, coverage: float) -> DefaultAnswer:
        """The default scenario at ``coverage``, whole, kept for the first coverages asked for."""
        answer = view.defaults.get(coverage)
        if answer is None:
            forecast = view.engine.default(view.engine.max_horizon, coverage)
            header = self._header(view, forecast, what_if=False)
            answer = DefaultAnswer(
                header, forecast, self._hours(forecast), np.cumsum(forecast.value)
            )
            if len(view.defaults) < DEFAULTS_KEPT:  # clients choosing coverages cannot fill memory
                view.defaults[coverage] = answer
        return answer

    def _planned(
        self, view: View, title: str, events: list[PlannedSale], horizon: int
    ) -> list[PlannedEvent]:
        """The request's sales, checked against what the model knows and the forecast window."""
        engine = view.engine
        if len(events) > self.serving.max_events:
            message = f"at most {self.serving.max_events} planned sales per request"
            raise invalid(title, "events", len(events), message)
        window_end = engine.origin + pd.Timedelta(hours=horizon)
        kinds = engine.artifacts.sale_kinds
        planned = []
        for i, event in enumerate(events):
            if event.kind not in kinds:
                known = ", ".join(kinds) or "none"
                message = f"unknown sale kind {event.kind!r}: this model knows {known}"
                raise invalid(title, f"events.{i}.kind", event.kind, message)
            start, end = pd.Timestamp(event.start), pd.Timestamp(event.end)
            reach = pd.Timedelta(days=PLANNED_SALE_REACH_DAYS)
            if start < engine.origin - reach or end > window_end + reach:
                message = (
                    f"a planned sale starts and ends within {PLANNED_SALE_REACH_DAYS} days of "
                    f"the forecast window {engine.origin:%Y-%m-%dT%H:%M} to "
                    f"{window_end:%Y-%m-%dT%H:%M}"
                )
                raise invalid(title, f"events.{i}", event.model_dump(mode="json"), message)
            if end <= engine.origin or start >= window_end:
                message = (
                    f"the sale lies outside the forecast window {engine.origin:%Y-%m-%dT%H:%M} "
                    f"to {window_end:%Y-%m-%dT%H:%M} (exclusive)"
                )
                raise invalid(title, f"events.{i}", event.model_dump(mode="json"), message)
            planned.append(PlannedEvent(start, end, event.kind, event.discount_pct))
        return planned

    async def _what_if(
        self, view: View, planned: list[PlannedEvent], hours: int, level: float
    ) -> Forecast:
        engine, budget = view.engine, self.serving.what_if_budget_ms / 1000
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            job = loop.run_in_executor(self._what_ifs, engine.what_if, planned, hours, level)
            return await asyncio.wait_for(job, budget)
        except TimeoutError:
            reason, label = f"the what-if took over its {budget * 1000:.0f} ms budget", "budget"
        except Exception:  # any model failure: the fallback answers
            log.exception("what-if forecast failed")
            # The exception's text stays in the log: it is the service's, not the client's.
            reason, label = "the model failed on this scenario (see the service log)", "error"
        log.warning("fallback after %.0f ms: %s", (time.perf_counter() - started) * 1e3, reason)
        telemetry().fallbacks.labels(label).inc()
        return engine.fallback(hours, level, reason)

    def _header(self, view: View, answer: Forecast, *, what_if: bool) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "origin": view.engine.origin.to_pydatetime(),
            "last_observed": view.engine.last_observed.to_pydatetime(),
            "stale": view.freshness.stale,
            "stale_reason": view.freshness.stale_reason,
            "coverage": answer.coverage,
            "what_if": what_if,
            "fallback": answer.fallback,
            "fallback_reason": answer.reason,
        }

    @staticmethod
    def _hours(answer: Forecast) -> list[ForecastHour]:
        return [
            ForecastHour.model_construct(
                timestamp=stamp.to_pydatetime(), value=float(v), lower=float(lo), upper=float(up)
            )
            for stamp, v, lo, up in zip(
                answer.timestamps, answer.value, answer.lower, answer.upper, strict=True
            )
        ]


_bento_service().add_asgi_middleware(HttpGuard, api_paths=API_PATHS, state=_running)
