"""The deploy gates: smoke, validation on fresh actuals, shadow comparison, canary analysis.

Each gate is a pure verdict over data (forecasts, actuals, access-log lines) and a thin part
that fetches the data over HTTP. A failed gate raises `DeployError` with its reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from traffic_forecast.core.config import (
    CanaryConfig,
    DataConfig,
    ShadowConfig,
    ValidationGateConfig,
)
from traffic_forecast.deploy.state import DeployError
from traffic_forecast.serving.guard import VERSION_HEADER

TIMEOUT = httpx.Timeout(30.0)


def _post(base: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(base + path, json=body, timeout=TIMEOUT)


# -- smoke -------------------------------------------------------------------------------------


def smoke_problems(
    forecast: httpx.Response, capacity: httpx.Response, model: str, horizon: int
) -> list[str]:
    """What is wrong with a forecast and a capacity answer (empty: they are well-formed)."""
    problems = []
    for name, answer in (("forecast", forecast), ("capacity", capacity)):
        if answer.status_code != 200:
            problems.append(f"{name} answered {answer.status_code}: {answer.text[:200]}")
        elif answer.headers.get(VERSION_HEADER) != model:
            problems.append(f"{name} came from {answer.headers.get(VERSION_HEADER)}, not {model}")
    if problems:
        return problems
    body = forecast.json()
    hours = body.get("forecast", [])
    if len(hours) != horizon:
        problems.append(f"forecast has {len(hours)} hours, not {horizon}")
    stamps = pd.to_datetime([h["timestamp"] for h in hours])
    if len(stamps) > 1 and not (stamps[1:] - stamps[:-1] == pd.Timedelta(hours=1)).all():
        problems.append("forecast hours are not consecutive")
    for hour in hours:
        values = (hour["lower"], hour["value"], hour["upper"])
        if (
            not all(math.isfinite(v) and v >= 0 for v in values)
            or not values[0] <= values[1] <= values[2]
        ):
            problems.append(f"hour {hour['timestamp']}: lower ≤ value ≤ upper fails: {values}")
            break
    if body.get("fallback"):
        problems.append(
            f"the fallback answered the default forecast: {body.get('fallback_reason')}"
        )
    if not capacity.json().get("peak_instances", 0) >= 1:
        problems.append("capacity: no instances at the peak")
    return problems


def smoke(base: str, model: str, horizon: int) -> dict[str, Any]:
    """A forecast and a capacity request answer, well-formed, from ``model``: the forecast."""
    try:
        forecast = _post(base, "/forecast", {"horizon": horizon})
        capacity = _post(base, "/capacity", {"horizon": horizon})
    except httpx.TransportError as exc:
        raise DeployError(f"smoke test: {base} did not answer: {exc}") from None
    problems = smoke_problems(forecast, capacity, model, horizon)
    if problems:
        raise DeployError("smoke test failed: " + "; ".join(problems))
    answer: dict[str, Any] = forecast.json()
    return answer


# -- validation on fresh actuals ---------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    """The gate's numbers: MAE of each model on the same fresh hours."""

    passed: bool
    text: str
    hours: int = 0
    new_mae: float | None = None
    live_mae: float | None = None


def read_actuals(cfg: ValidationGateConfig, data: DataConfig) -> pd.Series | None:
    """Fresh hourly actuals (the data's timestamp and target columns), or None without any."""
    path = Path(cfg.actuals_file)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame[data.timestamp_column])
    return pd.Series(frame[data.target_column].to_numpy(dtype=float), index=stamps).sort_index()


def forecast_series(answer: dict[str, Any]) -> pd.Series:
    """A `/forecast` answer as a series on its hours."""
    hours = answer["forecast"]
    return pd.Series(
        [h["value"] for h in hours], index=pd.to_datetime([h["timestamp"] for h in hours])
    )


def validation_verdict(
    new: pd.Series, live: pd.Series | None, actuals: pd.Series | None, cfg: ValidationGateConfig
) -> Validation:
    """Compare the models' MAE on the most recent actual hours both forecast."""
    if live is None:
        return Validation(True, "no live model to compare with")
    if actuals is None:
        return Validation(not cfg.required, f"no fresh actuals at {cfg.actuals_file}")
    common = actuals.index.intersection(new.index).intersection(live.index)[-cfg.hours :]
    if len(common) == 0:
        return Validation(not cfg.required, "no fresh actual hour falls in both forecasts")
    new_mae = float(np.mean(np.abs(new[common] - actuals[common])))
    live_mae = float(np.mean(np.abs(live[common] - actuals[common])))
    limit = live_mae * (1 + cfg.tolerance_pct / 100)
    passed = new_mae <= limit
    text = (
        f"MAE on {len(common)} fresh hours: new {new_mae:,.0f} vs live {live_mae:,.0f} "
        f"(limit {limit:,.0f}, +{cfg.tolerance_pct:g} %)"
    )
    return Validation(passed, text, len(common), new_mae, live_mae)


def validate(
    new_base: str, live_base: str | None, actuals: pd.Series | None, cfg: ValidationGateConfig
) -> Validation:
    """Ask both colours for a week ahead and score them on the fresh actuals."""
    new = forecast_series(_post(new_base, "/forecast", {"horizon": 168}).json())
    live = (
        None
        if live_base is None
        else forecast_series(_post(live_base, "/forecast", {"horizon": 168}).json())
    )
    verdict = validation_verdict(new, live, actuals, cfg)
    if not verdict.passed:
        raise DeployError(f"validation gate failed: {verdict.text}")
    return verdict


# -- shadow: the new colour's answers against the live one's ---------------------------------


def shadow_difference(new: pd.Series, live: pd.Series) -> float:
    """Mean |new - live| / live over the hours both forecast, in percent."""
    common = new.index.intersection(live.index)
    if len(common) == 0:
        return math.inf
    return float(np.mean(np.abs(new[common] - live[common]) / np.maximum(live[common], 1.0)) * 100)


def shadow_compare(new_base: str, live_base: str, cfg: ShadowConfig) -> float:
    """The percent difference of the default forecasts; a `DeployError` above the limit."""
    request = {"horizon": 168}
    new = forecast_series(_post(new_base, "/forecast", request).json())
    live = forecast_series(_post(live_base, "/forecast", request).json())
    difference = shadow_difference(new, live)
    if difference > cfg.max_diff_pct:
        raise DeployError(
            f"shadow: the new model's forecast differs from the live one's by {difference:.1f} % "
            f"(limit {cfg.max_diff_pct:g} %)"
        )
    return difference


# -- canary: the new colour's answers through the router during a step ------------------------


@dataclass(frozen=True)
class StepVerdict:
    """What the access log says about the new colour during one canary step."""

    passed: bool
    text: str
    requests: int


def canary_verdict(lines: list[str], upstream: str, since: float, cfg: CanaryConfig) -> StepVerdict:
    """Error rate and p99 of the new colour's answers logged after ``since`` (epoch seconds)."""
    # The router's JSON lines (the shadow's copies are logged in HAProxy's own format: skipped).
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    ours = [e for e in entries if e["time"] >= since and upstream in e["upstream"]]
    if len(ours) < max(cfg.min_requests, 1):
        ok = len(ours) >= cfg.min_requests
        return StepVerdict(
            ok, f"{len(ours)} requests to judge (minimum {cfg.min_requests})", len(ours)
        )
    errors = sum(1 for e in ours if e["status"] >= 500)
    p99_ms = float(np.quantile([e["request_ms"] for e in ours], 0.99))
    rate = errors / len(ours)
    passed = rate <= cfg.max_error_rate and p99_ms <= cfg.max_p99_ms
    text = (
        f"{len(ours)} requests, {rate:.1%} errors (limit {cfg.max_error_rate:.1%}), "
        f"p99 {p99_ms:.1f} ms (limit {cfg.max_p99_ms:g} ms)"
    )
    return StepVerdict(passed, text, len(ours))
