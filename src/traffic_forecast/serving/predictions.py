"""The prediction log: every forecast served, as one JSON line, written off the request path.

A request only puts its entry on a bounded queue (microseconds, never blocking); a thread turns
entries into JSON and writes them to a size-rotated file. When the queue is full the entry is
dropped and counted, rather than slowing the API. The monitor (``traffic-forecast monitor``)
reads these files to score the forecasts that were really served against the actuals.
"""

from __future__ import annotations

import glob
import json
import logging
import logging.handlers
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ENV = "TRAFFIC_FORECAST_PREDICTION_LOG"  # the file; unset, nothing is logged
QUEUE_SIZE = 10_000
_STOP = object()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [round(float(v), 3) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class PredictionLog:
    """A JSON-lines file of served forecasts, rotated at ``max_bytes`` with ``backups`` kept."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        on_drop: Callable[[], None] = lambda: None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._on_drop = on_drop
        self._thread = threading.Thread(target=self._write, name="prediction-log", daemon=True)
        self._thread.start()

    def record(self, entry: dict[str, Any]) -> bool:
        """Queue ``entry`` (numpy arrays allowed); False when it was dropped, the queue full."""
        entry.setdefault("time", datetime.now(UTC).isoformat(timespec="milliseconds"))
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._on_drop()
            return False
        return True

    def _write(self) -> None:
        while (entry := self._queue.get()) is not _STOP:
            line = json.dumps(_plain(entry), separators=(",", ":"))
            self._handler.handle(logging.makeLogRecord({"msg": line, "args": None}))
            self._queue.task_done()
        self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued entry is written (tests, shutdown)."""
        self._queue.join()
        self._handler.flush()

    def close(self) -> None:
        """Write what is queued, then stop the thread and close the file."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        self._handler.close()


def per_worker(path: Path, worker: int | None) -> Path:
    """One file per worker process (``predictions-blue.jsonl`` → ``predictions-blue.2.jsonl``).

    Two processes rotating one file would lose entries; the monitor reads them all by glob.
    """
    return path if worker is None else path.with_name(f"{path.stem}.{worker}{path.suffix}")


def log_files(pattern: str) -> list[Path]:
    """The files matching ``pattern`` (rotated ones included), oldest first."""
    # glob.glob, not Path.glob: the pattern may be absolute (a deploy host's state directory).
    found = [Path(path) for path in glob.glob(pattern)] if pattern else []  # noqa: PTH207
    return sorted(found, key=lambda path: (path.stat().st_mtime_ns, path.name))


def read(paths: list[Path]) -> list[dict[str, Any]]:
    """Every entry of the given log files, in their order."""
    entries = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries
