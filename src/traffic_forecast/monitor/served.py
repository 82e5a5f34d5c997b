"""The forecasts really served, hour by hour: for each hour, the answer that was live when it came.

The service moves its origin forward with the actuals, so the prediction logs hold answers from
many origins. Each hour is scored with the newest default answer (neither a what-if nor the
fallback) of the watched model whose origin is at or before that hour. Without such answers the
packaged model's own default forecast, from its training end, is scored instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from traffic_forecast.serving import predictions
from traffic_forecast.serving.artifacts import ModelArtifacts
from traffic_forecast.serving.engine import ForecastEngine

BANDS = ("value", "lower", "upper")
_FIELDS = ["model_version", "what_if", "fallback", "origin", "coverage", *BANDS]
_SAME_ANSWER = ["origin", "preferred"]  # answers alike in these share their values hour by hour


@dataclass(frozen=True)
class Served:
    """The model being watched and, per hour, the forecast it served (or serves) for it."""

    tag: str
    artifacts: ModelArtifacts
    forecast: pd.DataFrame  # index: hour; value, lower, upper, origin, coverage
    source: str  # prediction log, or recomputed
    logged: bool  # from the prediction logs (else the packaged model's own forecast)

    def nominal(self, hours: pd.Index) -> float | None:
        """The mean coverage the answers scored on ``hours`` promised (None: no such hour)."""
        scored = self.forecast.index.intersection(hours)
        return float(self.forecast.loc[scored, "coverage"].mean()) if len(scored) else None

    def origins(self, hours: pd.Index) -> int:
        """How many forecast origins the answers scored on ``hours`` come from."""
        return int(self.forecast.loc[self.forecast.index.intersection(hours), "origin"].nunique())


def default_answers(entries: list[dict[str, Any]], tag: str, coverage: float) -> pd.DataFrame:
    """The logged default answers of ``tag``, one row each, in log order.

    Columns: origin, coverage (``coverage`` where the entry names none), preferred (answered at
    ``coverage``, the model's default), order (position in the logs), length, value, lower, upper.
    """
    frame = pd.DataFrame(entries, columns=_FIELDS)
    frame["order"] = np.arange(len(frame))
    default = (
        frame["model_version"].eq(tag) & ~frame["what_if"].eq(True) & ~frame["fallback"].eq(True)
    )
    frame = frame[default & frame["value"].map(lambda v: isinstance(v, list) and len(v) > 0)]
    origin = pd.to_datetime(frame["origin"], format="ISO8601")
    if isinstance(origin.dtype, pd.DatetimeTZDtype):
        origin = origin.dt.tz_convert("UTC").dt.tz_localize(None)
    frame = frame.assign(
        origin=origin.astype("datetime64[ns]"),
        coverage=pd.to_numeric(frame["coverage"], errors="coerce").fillna(coverage),
        length=frame["value"].map(len),
    )
    frame = frame[frame["origin"].notna()]
    return frame.assign(preferred=np.isclose(frame["coverage"].to_numpy(float), coverage))


def _unshadowed(answers: pd.DataFrame) -> pd.DataFrame:
    """The answers not hidden by a later one from the same origin, as long or longer.

    Such a later answer wins every hour the earlier one covers, so dropping the earlier one
    first changes no hour's pick: thousands of identical answers per origin become one.
    """
    newest_first = answers.sort_values([*_SAME_ANSWER, "order"], ascending=[True, True, False])
    keys = [newest_first[key] for key in _SAME_ANSWER]
    later = newest_first.groupby(keys)["length"].shift(fill_value=0)
    longest_later = later.groupby(keys).cummax()
    return newest_first[newest_first["length"] > longest_later]


def per_hour(answers: pd.DataFrame) -> pd.DataFrame:
    """For each hour an answer covers, the one live then: newest origin, default coverage, last.

    An answer covers its origin and the hours after it, so its origin is at or before each of
    them. Index: hour; columns value, lower, upper, origin, coverage.
    """
    kept = _unshadowed(answers)
    lengths = kept["length"].to_numpy(dtype=int)
    first_row = np.repeat(np.cumsum(lengths) - lengths, lengths)
    ahead = (np.arange(lengths.sum()) - first_row).astype("timedelta64[h]")
    origins = np.repeat(kept["origin"].to_numpy(), lengths)
    hourly = pd.DataFrame(
        {
            "hour": origins + ahead,
            "origin": origins,
            "preferred": np.repeat(kept["preferred"].to_numpy(bool), lengths),
            "order": np.repeat(kept["order"].to_numpy(), lengths),
            "coverage": np.repeat(kept["coverage"].to_numpy(float), lengths),
            **{band: _flat(kept[band], lengths) for band in BANDS},
        }
    )
    live = hourly.sort_values(["hour", "origin", "preferred", "order"], kind="stable")
    live = live.drop_duplicates("hour", keep="last").set_index("hour")
    live.index = pd.DatetimeIndex(live.index, name=None)
    return live[[*BANDS, "origin", "coverage"]]


def _flat(column: pd.Series, lengths: np.ndarray[Any, np.dtype[Any]]) -> np.ndarray[Any, Any]:
    """One float per hour: the answers' arrays end to end, each cut or padded to its length."""
    flat = np.full(int(lengths.sum()), np.nan)
    start = 0
    # One slice per kept answer (a few per origin), not per hour.
    for values, length in zip(column.tolist(), lengths.tolist(), strict=True):
        part = np.asarray(values if isinstance(values, list) else [], dtype=float)[:length]
        flat[start : start + len(part)] = part
        start += length
    return flat


def served_forecast(tag: str, loaded: ModelArtifacts, log_glob: str) -> Served:
    """Per hour, the default forecast the logs say ``tag`` served for it; else the model's own."""
    entries = predictions.read(predictions.log_files(log_glob))
    answers = default_answers(entries, tag, loaded.serving.default_coverage)
    if not answers.empty:
        origins = answers["origin"].nunique()
        return Served(
            tag,
            loaded,
            per_hour(answers),
            f"prediction log ({len(answers)} default answers from {origins} origins; each hour "
            "scored with the newest origin's forecast for it)",
            logged=True,
        )
    engine = ForecastEngine(loaded)
    answer = engine.default(engine.max_horizon, loaded.serving.default_coverage)
    frame = pd.DataFrame(
        {
            "value": answer.value,
            "lower": answer.lower,
            "upper": answer.upper,
            "origin": engine.origin,
            "coverage": answer.coverage,
        },
        index=answer.timestamps,
    )
    source = "recomputed from the packaged model (no prediction log)"
    return Served(tag, loaded, frame, source, logged=False)
