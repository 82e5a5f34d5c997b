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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from pydantic import ValidationError

from traffic_forecast.core.config import ServingConfig
from traffic_forecast.data.observations import Batch
from traffic_forecast.data.store import StoreUnavailableError, shown_url
from traffic_forecast.serving import artifacts, predictions
from traffic_forecast.serving.answers import (
    Header,
    as_json,
    capacity_answer,
    forecast_answer,
    invalid_request,
)
from traffic_forecast.serving.contract import (
    CapacityRequest,
    CapacityResponse,
    ForecastRequest,
    ForecastResponse,
    PlannedSale,
    invalid,
)
from traffic_forecast.serving.engine import Forecast, ForecastEngine, PlannedEvent, WhatIf
from traffic_forecast.serving.guard import EXPERIMENT_TAGS, HttpGuard, Reply
from traffic_forecast.serving.hours import sale_years
from traffic_forecast.serving.live import STORE_ENV, Freshness, LiveModel, site_now
from traffic_forecast.serving.openapi import (
    ROUTE_METHODS,
    Contract,
    Served,
    documented,
    routes_app,
    served,
)
from traffic_forecast.serving.telemetry import labelled, telemetry
from traffic_forecast.serving.what_ifs import BudgetExceededError, PoolFullError, WhatIfPool

log = logging.getLogger(__name__)

# What a Bento build takes; serving from source, TRAFFIC_FORECAST_MODEL may name another tag.
MODEL_TAG = "traffic-forecast:latest"
FORECAST, CAPACITY = "/forecast", "/capacity"
API_PATHS = frozenset({FORECAST, CAPACITY})
REQUESTS: dict[str, type[ForecastRequest]] = {FORECAST: ForecastRequest, CAPACITY: CapacityRequest}
# A request allocates a few thousand objects; with Python's default (700, 10, 10) the collector
# ran every few requests and a full collection of the young heap every few hundred.
GC_THRESHOLDS = (50_000, 50, 100)
# A full what-if pool answers 503 with this Retry-After (seconds): a what-if takes milliseconds.
RETRY_AFTER_S = 1


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
    serving = ServingConfig() if service is None else service.serving
    return _documented_spec(served(engine, serving, site_now()))


@cache  # one per model, and per year: what the spec says changes no more often
def _documented_spec(takes: Served) -> dict[str, Any]:
    return documented(_bento_service().openapi_spec.asdict(), CONTRACT, takes)


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
    header: Header  # what every answer from this state says about itself


@bentoml.service(
    name="traffic-forecast",
    workers=int(os.environ.get("TRAFFIC_FORECAST_WORKERS", "1")),
    traffic={"timeout": 30},
    # Per request, BentoML's access log and an OpenTelemetry span with no exporter behind it
    # cost more than the forecast itself (`benchmarks/serve.py`). The router logs access in front;
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
        self.what_ifs = WhatIfPool(
            self.serving.what_if_threads,
            self.serving.what_if_queue,
            self.serving.what_if_budget_ms / 1000,
        )
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
        labelled(telemetry().requests, endpoint, _outcome(status)).inc()

    async def respond(self, path: str, body: bytes) -> Reply | None:
        """The answer to a POST to an API path; None: BentoML's API answers (fast_path off).

        The guard sends it past BentoML's routing, input and output handling, which cost more
        than the forecast (README, Benchmarks). The body is validated by the API's own request
        model, and refusals are worded as BentoML words them.
        """
        if not self.serving.fast_path:
            return None
        try:
            request = REQUESTS[path].model_validate_json(body)
            return Reply(200, as_json(await self._answer(path, request)))
        except ValidationError as exc:
            return Reply(400, as_json(invalid_request(exc)))
        except PoolFullError as exc:
            reason = {"error": f"too many what-ifs at once ({exc}): retry in {RETRY_AFTER_S} s"}
            return Reply(503, as_json(reason), ((b"retry-after", str(RETRY_AFTER_S).encode()),))

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
        """Swap in a new state (made off the request path: the poll thread, or an ingest)."""
        header = Header(
            self.version,
            engine.hour_labels[0],
            engine.last_observed.isoformat(),
            freshness.stale,
            freshness.stale_reason,
        )
        self.view = View(engine, freshness, header)
        series = telemetry()
        series.data_age.set(freshness.age_hours)
        series.observed.set(engine.last_value)
        series.forecast_next.set(engine.next_value)

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
        request = ForecastRequest.model_construct(
            horizon=horizon, coverage=coverage, events=events or []
        )
        return ForecastResponse.model_validate(await self._answer_api(FORECAST, request))

    @bentoml.api(route=CAPACITY, input_spec=CapacityRequest)
    async def capacity(
        self,
        horizon: int | None = None,
        coverage: float | None = None,
        events: list[PlannedSale] | None = None,
        target_utilisation: float | None = None,
    ) -> CapacityResponse:
        """Instances per hour to serve the upper forecast at the target CPU utilisation."""
        request = CapacityRequest.model_construct(
            horizon=horizon,
            coverage=coverage,
            events=events or [],
            target_utilisation=target_utilisation,
        )
        return CapacityResponse.model_validate(await self._answer_api(CAPACITY, request))

    async def _answer_api(self, path: str, request: ForecastRequest) -> dict[str, Any]:
        try:
            return await self._answer(path, request)
        except PoolFullError as exc:
            raise ServiceUnavailable(f"too many what-ifs at once ({exc})") from None

    async def _answer(self, path: str, request: ForecastRequest) -> dict[str, Any]:
        """The answer to a valid request (400s for what only the model's state can check)."""
        title = type(request).__name__
        hours, level = self._checked(title, request.horizon, request.coverage)
        view = self._view()
        engine = view.engine
        if request.events:
            planned = self._planned(view, title, request.events)
            answer = await self._what_if(view, planned, hours, level)
        else:
            answer = engine.default(hours, level)
        what_if = bool(request.events)
        if isinstance(request, CapacityRequest):
            capacity = engine.artifacts.capacity
            assert capacity is not None  # the guard answers 503 without it
            target = request.target_utilisation or engine.artifacts.target_utilisation
            try:
                body = capacity_answer(
                    view.header, answer, engine.hour_labels,
                    what_if=what_if, capacity=capacity, target_utilisation=target,
                )  # fmt: skip
            except ValueError as exc:  # a utilisation so low the count overflows: the client's
                raise invalid(title, "target_utilisation", target, str(exc)) from None
        else:
            body = forecast_answer(view.header, answer, engine.hour_labels, what_if=what_if)
        self._served(view, path, request, answer)
        return body

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
            "inference": None if self.view is None else self.view.engine.inference,
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
        self, view: View, endpoint: str, request: ForecastRequest, answer: Forecast
    ) -> None:
        """Count the answer's inputs and outputs, and log it (off the request path)."""
        series = telemetry()
        what_if = bool(request.events)
        values = answer.value
        series.served(endpoint, len(values), what_if, float(values.sum()) / len(values))
        for name in ("horizon", "coverage"):
            if getattr(request, name) is None:
                labelled(series.defaulted, name).inc()
        low, high = view.engine.artifacts.level_range
        if values.min() < low / 2 or values.max() > 2 * high:
            labelled(series.out_of_range, endpoint).inc()
        if self.predictions is not None:
            self.predictions.record(
                {
                    "model_version": self.version,
                    "endpoint": endpoint,
                    "request": request.model_dump(mode="json"),
                    "origin": view.header.origin,
                    "last_observed": view.header.last_observed,
                    "what_if": what_if,
                    "fallback": answer.fallback,
                    "fallback_reason": answer.reason,
                    "coverage": answer.coverage,
                    "value": values,
                    "lower": answer.lower,
                    "upper": answer.upper,
                    # An A/B experiment's id and arm, as the router tagged the request.
                    **(EXPERIMENT_TAGS.get() or {}),
                }
            )

    @bentoml.on_shutdown
    def _close_prediction_log(self) -> None:
        if self.predictions is not None:
            self.predictions.close()
        if self.live is not None:
            self.live.stop()
        self.what_ifs.shutdown()

    def _checked(
        self, title: str, horizon: int | None, coverage: float | None
    ) -> tuple[int, float]:
        hours = horizon or self.serving.default_horizon
        max_horizon = self._view().engine.max_horizon
        if hours > max_horizon:
            message = f"this model forecasts at most {max_horizon} hours ahead"
            raise invalid(title, "horizon", hours, message)
        return hours, coverage or self.serving.default_coverage

    def _planned(self, view: View, title: str, events: list[PlannedSale]) -> list[PlannedEvent]:
        """The request's sales, checked against what the model knows and the forecast window.

        ``horizon`` no longer matters here: a sale need not overlap the hours asked for.
        """
        engine = view.engine
        if len(events) > self.serving.max_events:
            message = f"at most {self.serving.max_events} planned sales per request"
            raise invalid(title, "events", len(events), message)
        # A sale need not overlap the forecast window: one ending before it still shapes the
        # hours after a sale, one after it changes nothing, and the answer is the what-if's
        # all the same (what_if: true). Years away is a mistake: `sale_years`, the spec says it.
        first, last = sale_years(engine.origin, engine.timestamps[-1])
        kinds = engine.artifacts.sale_kinds
        planned = []
        for i, event in enumerate(events):
            if event.kind not in kinds:
                known = ", ".join(kinds) or "none"
                message = f"unknown sale kind {event.kind!r}: this model knows {known}"
                raise invalid(title, f"events.{i}.kind", event.kind, message)
            if event.start.year < first or event.end.year > last:
                message = (
                    f"a planned sale lies in {first} to {last}: the forecast window's year "
                    f"({engine.origin:%Y-%m-%dT%H:%M} on) or one either side"
                )
                raise invalid(title, f"events.{i}", event.model_dump(mode="json"), message)
            start, end = pd.Timestamp(event.start), pd.Timestamp(event.end)
            planned.append(PlannedEvent(start, end, event.kind, event.discount_pct))
        return planned

    async def _what_if(
        self, view: View, planned: list[PlannedEvent], hours: int, level: float
    ) -> Forecast:
        """The model's what-if; the fallback, saying why, when it fails or overruns its budget."""
        engine = view.engine
        try:
            return await self.what_ifs.run(engine.what_ifs, WhatIf(planned, hours, level))
        except BudgetExceededError as exc:
            reason, label = f"the what-if ran {exc}", "budget"
        except PoolFullError:
            raise
        except Exception:  # any model failure: the fallback answers
            log.exception("what-if forecast failed")
            # The exception's text stays in the log: it is the service's, not the client's.
            reason, label = "the model failed on this scenario (see the service log)", "error"
        log.warning("fallback: %s", reason)
        telemetry().fallbacks.labels(label).inc()
        return engine.fallback(hours, level, reason)


_bento_service().add_asgi_middleware(
    HttpGuard, api_paths=API_PATHS, state=_running, routes=ROUTE_METHODS
)
