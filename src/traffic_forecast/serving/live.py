"""Live actuals: the served model follows the store of observed hours, off the request path.

Each worker polls the store (``serving.observations_poll_s``) for revisions newer than the last
it saw, and after its own writes. New hours right after the model's last observed one advance
the model (`ForecastEngine.advanced`, no refit); a correction of an hour the model has already
seen rebuilds its state from the packaged model. Either way the new engine is made beside the
old one, which keeps answering until the service swaps the new one in whole.

The model only moves through consecutive hours: after a gap it waits for the missing hours and
says so (`Freshness`), instead of inventing them. Hours before the training data ends are
stored but never rewind the model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.data.store import ObservationStore, StoreUnavailableError, shown_url
from traffic_forecast.serving.engine import ForecastEngine

log = logging.getLogger(__name__)

HOUR = pd.Timedelta(hours=1)
STORE_ENV = "TRAFFIC_FORECAST_OBSERVATIONS"  # the store's SQLAlchemy URL, set by deploy/serve


def site_now() -> pd.Timestamp:
    """The site-local wall clock, naive like the data's hours."""
    return pd.Timestamp(datetime.now())


@dataclass(frozen=True)
class Freshness:
    """How current the model is: its newest hour, a gap holding it back, and staleness."""

    last_observed: pd.Timestamp  # the newest hour the model has been told
    newest_stored: pd.Timestamp | None  # the newest hour after training in the store
    gap: tuple[pd.Timestamp, pd.Timestamp] | None  # first and last missing hour, if any
    age_hours: float  # from the end of last_observed to now
    stale_reason: str | None

    @property
    def stale(self) -> bool:
        """True when answers should say they are out of date."""
        return self.stale_reason is not None

    def as_json(self) -> dict[str, object]:
        """For ``/metadata``."""
        return {
            "last_observed": self.last_observed.isoformat(),
            "newest_stored": None if self.newest_stored is None else self.newest_stored.isoformat(),
            "gap": None if self.gap is None else [stamp.isoformat() for stamp in self.gap],
            "data_age_hours": round(self.age_hours, 3),
            "stale": self.stale,
            "stale_reason": self.stale_reason,
        }


def freshness(
    last_observed: pd.Timestamp,
    newest_stored: pd.Timestamp | None,
    gap: tuple[pd.Timestamp, pd.Timestamp] | None,
    now: pd.Timestamp,
    max_age_hours: float,
) -> Freshness:
    """Judge the model's state at ``now``: stale past ``max_age_hours``, or behind a gap."""
    age = (now - (last_observed + HOUR)) / HOUR
    reason = None
    if gap is not None:
        first, last = gap
        hours = int((last - first) / HOUR) + 1
        reason = (
            f"{hours} hour(s) missing from {first:%Y-%m-%dT%H:%M} to {last:%Y-%m-%dT%H:%M}: the "
            f"forecast starts at the gap until they are sent (newer hours are stored)"
        )
    elif age > max_age_hours:
        reason = (
            f"no actual after {last_observed:%Y-%m-%dT%H:%M}: older than "
            f"serving.max_data_age_hours ({max_age_hours:g} h)"
        )
    return Freshness(last_observed, newest_stored, gap, max(age, 0.0), reason)


class Actuals:
    """The current value of every stored hour after the training data (what the model may use)."""

    def __init__(self, training_end: pd.Timestamp) -> None:
        self.training_end = training_end
        self.values = pd.Series(dtype=float, index=pd.DatetimeIndex([]))

    def merge(self, changed: pd.DataFrame) -> pd.Timestamp | None:
        """Take the store's changed hours; the earliest changed hour after training, if any.

        Hours up to the training end are the model's own data: they never rewind it.
        """
        stamps = pd.DatetimeIndex(changed[TrafficRaw.timestamp])
        after = stamps > self.training_end
        if not after.any():
            return None
        values = changed[TrafficRaw.target].to_numpy(dtype=float)[after]
        new = pd.Series(values, index=stamps[after])
        earliest = pd.Timestamp(new.index.min())
        self.values = new.combine_first(self.values).sort_index()
        return earliest

    def run(self) -> pd.Series:
        """The consecutive hours from the one after training: all the model can be told."""
        start = self.training_end + HOUR
        if self.values.empty or self.values.index[0] != start:
            return self.values.iloc[:0]
        expected = pd.date_range(start, periods=len(self.values), freq="h")
        breaks = (self.values.index != expected).nonzero()[0]
        return self.values if len(breaks) == 0 else self.values.iloc[: breaks[0]]

    def gap(self, run_length: int) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The missing hours between the run and the next stored hour, if any are stored."""
        if run_length == len(self.values):
            return None
        first_missing = self.training_end + HOUR * (run_length + 1)
        next_stored = pd.Timestamp(self.values.index[run_length])
        return first_missing, next_stored - HOUR

    @property
    def newest(self) -> pd.Timestamp | None:
        """The newest stored hour after training."""
        return None if self.values.empty else pd.Timestamp(self.values.index[-1])


Swap = Callable[[ForecastEngine, Freshness], None]


class LiveModel:
    """One worker's model, kept current with the store; ``swap`` publishes each new state."""

    def __init__(
        self,
        packaged: ForecastEngine,
        store_url: str | None,
        *,
        max_age_hours: float,
        poll_s: float,
        swap: Swap,
        clock: Callable[[], pd.Timestamp] = site_now,
    ) -> None:
        self.packaged, self.engine = packaged, packaged
        self.store_url = store_url
        self.store: ObservationStore | None = None
        self.max_age_hours, self.poll_s, self.clock = max_age_hours, poll_s, clock
        self._swap = swap
        self.actuals = Actuals(packaged.last_observed)
        self.revision = 0
        self.problem = None if store_url else f"no observations store: {STORE_ENV} is unset"
        self.update_error: str | None = None
        self.freshness = self._judge()
        self._lock = threading.Lock()  # one refresh at a time: the poll's or an ingest's
        self._opening = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the store ----------------------------------------------------------------------------

    def open_store(self) -> ObservationStore | None:
        """The store, opened on first use (and again after it failed to open)."""
        with self._opening:  # requests and the poll thread may ask first at the same time
            if self.store is None and self.store_url:
                try:
                    self.store = ObservationStore(self.store_url)
                except StoreUnavailableError as exc:
                    self.problem = f"the observations store {shown_url(self.store_url)}: {exc}"
            return self.store

    def check_store(self) -> str | None:
        """Why the store cannot take a write now (checked now, not at the last poll), or None."""
        store = self.open_store()
        if store is not None:
            self.problem = store.unwritable()
        return self.problem

    # -- following it -------------------------------------------------------------------------

    def start(self) -> None:
        """Read the store once, then follow it from a background thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._follow, name="live-actuals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following the store and close it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.store is not None:
            self.store.close()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # the thread must outlive any one bad cycle
                log.exception("following the observations store failed")

    def refresh(self) -> bool:
        """Take what changed in the store; True when the engine moved."""
        with self._lock:
            moved, head = self._take_changes()
            judged, before = self._judge(), self.freshness
            self.freshness = judged  # its age moves every cycle; answers only carry the verdict
            if moved or (judged.stale_reason, judged.newest_stored) != (
                before.stale_reason,
                before.newest_stored,
            ):
                self._swap(self.engine, judged)
            # Only now: who sees this revision (``observe --wait``) sees the answers after it.
            self.revision = head
            return moved

    def _take_changes(self) -> tuple[bool, int]:
        """Whether the engine moved, and the store's revision it has now taken."""
        store = self.open_store()
        if store is None:
            return False, self.revision
        problem = store.unwritable()
        try:
            changed, head = store.changed_since(self.revision, after=self.actuals.training_end)
        except StoreUnavailableError as exc:
            problem = problem or str(exc)
            changed, head = None, self.revision
        except Exception as exc:  # SQLAlchemy errors of a store gone away
            problem = problem or f"the observations store cannot be read: {exc}"
            changed, head = None, self.revision
        if problem != self.problem:
            (log.error if problem else log.info)("observations store: %s", problem or "available")
        self.problem = problem
        if changed is None or changed.empty:
            return False, head
        earliest = self.actuals.merge(changed)
        return earliest is not None and self._advance(earliest), head

    def _advance(self, earliest: pd.Timestamp) -> bool:
        run = self.actuals.run()
        try:
            if earliest <= self.engine.last_observed:  # a correction of a seen hour: start over
                engine = self.packaged.advanced(run) if len(run) else self.packaged
            else:
                unseen = run[run.index > self.engine.last_observed]
                if unseen.empty:
                    return False
                engine = self.engine.advanced(unseen)
        except Exception as exc:  # the model keeps its last good state
            self.update_error = f"the model could not take the new actuals: {exc}"
            log.exception("%s", self.update_error)
            return False
        self.engine, self.update_error = engine, None
        return True

    def _judge(self) -> Freshness:
        gap = self.actuals.gap(len(self.actuals.run()))
        return freshness(
            self.engine.last_observed,
            self.actuals.newest,
            gap,
            self.clock(),
            self.max_age_hours,
        )
