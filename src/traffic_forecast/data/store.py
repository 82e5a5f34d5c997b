"""The store of observed hours that every colour of the service reads: SQLite or PostgreSQL.

One append-only table through SQLAlchemy: every value ever acknowledged is a row (a revision),
and an hour's value is its newest revision. Re-sending a value is a no-op; a different value
is a correction, appended, so the earlier one is never lost. Revision ids only grow, so a
reader asks "what changed since id N" and a second colour starts current by reading it all.

- Embedded: ``sqlite:///…`` in WAL mode with ``synchronous=FULL``: a write is on disk when it
  is acknowledged, readers never block the writer, and it needs no server.
- Production: ``postgresql+psycopg://…``, shared by every replica (README, "Live actuals").

Writers are serialised (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL transaction-level advisory
lock): ids then commit in order, so a reader never skips a revision committed late.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from traffic_forecast.core.errors import TrafficForecastError
from traffic_forecast.data.observations import OBSERVATION_COLUMNS, Batch
from traffic_forecast.data.schemas import OBSERVED_INFRASTRUCTURE, TrafficRaw

log = logging.getLogger(__name__)

STORE_FILE = "observations.db"  # the embedded store's file in deploy.state_dir
_LOCK_KEY = 0x7472_6166  # "traf": the advisory lock PostgreSQL writers take
_VALUE_COLUMNS = (TrafficRaw.target, *OBSERVED_INFRASTRUCTURE)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"

_metadata = sa.MetaData()
observations = sa.Table(
    "observations",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(TrafficRaw.timestamp, sa.DateTime, nullable=False),
    sa.Column(TrafficRaw.target, sa.Float, nullable=False),
    sa.Column("instances", sa.Integer, nullable=True),
    sa.Column("cpu_utilization", sa.Float, nullable=True),
    sa.Column("p95_latency_ms", sa.Float, nullable=True),
    sa.Column("error_rate", sa.Float, nullable=True),
    sa.Column("received_at", sa.DateTime, nullable=False),  # UTC
    sa.Column("source", sa.String(200), nullable=False),
    sa.Index("observations_by_hour", TrafficRaw.timestamp, "id"),
    sqlite_autoincrement=True,  # ids never reused, even after the newest row is gone
)


class StoreUnavailableError(TrafficForecastError):
    """The store cannot be written (or read): deleted, read-only, unreachable."""


@dataclass(frozen=True)
class Written:
    """What a batch did: hours new to the store, corrected, and re-sent unchanged."""

    new: int
    corrected: int
    unchanged: int
    head: int  # the newest revision id after the write

    @property
    def stored(self) -> int:
        """Revisions appended (new hours and corrections)."""
        return self.new + self.corrected


def default_url(state_dir: Path) -> str:
    """The embedded store: SQLite in the deploy state directory."""
    return f"sqlite:///{(state_dir / STORE_FILE).resolve()}"


def shown_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


class ObservationStore:
    """Observed hours: write a checked batch, read the current values, or what changed."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.path = Path(parsed.database) if self.is_sqlite and parsed.database else None
        options: dict[str, Any] = {}
        if self.is_sqlite:
            if self.path is None or str(self.path) == ":memory:":
                raise StoreUnavailableError(
                    f"{url}: the SQLite store needs a file (sqlite:////path)"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Transactions are begun here (BEGIN IMMEDIATE for writers), not by the driver.
            options["connect_args"] = {"check_same_thread": False, "isolation_level": None}
        self.engine = sa.create_engine(url, pool_pre_ping=not self.is_sqlite, **options)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            _metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"{shown_url(url)}: {_first_line(exc)}") from None
        self._identity = self._file_identity()

    # -- health -------------------------------------------------------------------------------

    def _file_identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        info = self.path.stat()
        return info.st_dev, info.st_ino

    def unwritable(self) -> str | None:
        """Why a write would fail or be lost now, else None.

        An SQLite file deleted or replaced under an open connection still takes writes, into
        the unlinked file, and root ignores permissions: both are checked here instead.
        """
        if self.path is not None:
            try:
                info = self.path.stat()
            except FileNotFoundError:
                return f"the store file {self.path} was deleted"
            if (info.st_dev, info.st_ino) != self._identity:
                return f"the store file {self.path} was replaced since it was opened"
            if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(
                self.path, os.W_OK
            ):
                return f"the store file {self.path} is read-only"
            return None
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            return f"the store {shown_url(self.url)} is unreachable: {_first_line(exc)}"
        return None

    # -- writing ------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            else:
                with conn.begin():
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
                    yield conn

    def write(self, batch: Batch, *, received_at: pd.Timestamp | None = None) -> Written:
        """Append the batch's new hours and corrections in one transaction, durable once done."""
        why = self.unwritable()
        if why is not None:
            raise StoreUnavailableError(why)
        frame = batch.frame
        received = (received_at or pd.Timestamp.now(tz="UTC")).tz_localize(None)
        try:
            with self._writing() as conn:
                current = self._current(
                    conn, frame[TrafficRaw.timestamp].min(), frame[TrafficRaw.timestamp].max()
                )
                merged = frame.merge(
                    current, on=TrafficRaw.timestamp, how="left", suffixes=("", "_stored")
                )
                known = merged["id"].notna().to_numpy()
                same = known & _same_values(merged)
                appended = frame[~same]
                if len(appended):
                    rows = _rows(appended, received, batch.source, as_text=self.is_sqlite)
                    self._insert(conn, rows)
                head = self._head(conn)
        except SQLAlchemyError as exc:
            reason = f"the store refused the write: {_first_line(exc)}"
            raise StoreUnavailableError(reason) from None
        new = int((~known).sum())
        return Written(new=new, corrected=len(appended) - new, unchanged=int(same.sum()), head=head)

    # -- reading ------------------------------------------------------------------------------

    def head(self) -> int:
        """The newest revision id (0: empty)."""
        with self.engine.connect() as conn:
            return self._head(conn)

    def current(self, after: pd.Timestamp | None = None) -> pd.DataFrame:
        """Every hour's current value (after ``after``), in time order, with its revision id."""
        with self.engine.connect() as conn:
            return self._current(conn, after, None, inclusive=False)

    def changed_since(
        self, revision: int, after: pd.Timestamp | None = None
    ) -> tuple[pd.DataFrame, int]:
        """Current values of the hours (after ``after``) revised since ``revision``; the head."""
        with self.engine.connect() as conn:
            head = self._head(conn)
            if head <= revision:
                return _empty(), head
            stamp, revision_id = observations.c.timestamp, observations.c.id
            touched = sa.select(stamp).where(revision_id > revision, revision_id <= head)
            within: list[sa.ColumnElement[bool]] = [stamp.in_(touched)]
            if after is not None:
                within.append(stamp > after.to_pydatetime())
            return _frame(conn.execute(_current_query(*within))), head

    def revisions(self, hour: pd.Timestamp) -> pd.DataFrame:
        """Every value stored for ``hour``, oldest first: the audit trail of its corrections."""
        query = (
            sa.select(observations)
            .where(observations.c.timestamp == hour.to_pydatetime())
            .order_by(observations.c.id)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())

    def corrections(self) -> int:
        """Revisions that replaced an earlier value."""
        query = sa.select(sa.func.count() - sa.func.count(sa.distinct(observations.c.timestamp)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def _insert(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        # The driver's own executemany, inside the same transaction: SQLAlchemy's per-row
        # parameter processing cost more than SQLite's inserts (50,000 rows: 0.44 s of 0.6 s).
        columns = [TrafficRaw.timestamp, *_VALUE_COLUMNS, "received_at", "source"]
        marker = "?" if self.is_sqlite else "%s"
        sql = (
            f"INSERT INTO {observations.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join([marker] * len(columns))})"
        )
        driver_error = self.engine.dialect.loaded_dbapi.Error
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
        except driver_error as exc:
            # Raised as SQLAlchemy raises every other statement's error, so `write` reports a
            # refused insert (disk full, a constraint) as the store's, not as a crash.
            raise sa.exc.DBAPIError.instance(sql, None, exc, driver_error) from exc
        finally:
            cursor.close()

    def _head(self, conn: Connection) -> int:
        newest = sa.select(sa.func.coalesce(sa.func.max(observations.c.id), 0))
        return int(conn.execute(newest).scalar_one())

    def _current(
        self,
        conn: Connection,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        *,
        inclusive: bool = True,
    ) -> pd.DataFrame:
        stamp = observations.c.timestamp
        within = []
        if start is not None:
            first = pd.Timestamp(start).to_pydatetime()
            within.append(stamp >= first if inclusive else stamp > first)
        if end is not None:
            within.append(stamp <= pd.Timestamp(end).to_pydatetime())
        return _frame(conn.execute(_current_query(*within)))


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
    cursor.execute("PRAGMA synchronous=FULL")  # each commit is fsynced: acknowledged = on disk
    cursor.execute("PRAGMA busy_timeout=30000")  # two colours writing at once wait, not fail
    cursor.close()


def _current_query(*within: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Each hour's newest revision, of the hours ``within`` selects."""
    newest = (
        sa.select(sa.func.max(observations.c.id))
        .where(*within)
        .group_by(observations.c.timestamp)
        .scalar_subquery()
    )
    columns = [observations.c.id, *(observations.c[name] for name in OBSERVATION_COLUMNS)]
    return (
        sa.select(*columns).where(observations.c.id.in_(newest)).order_by(observations.c.timestamp)
    )


def _frame(result: Any) -> pd.DataFrame:
    rows = result.all()
    if not rows:
        return _empty()
    frame = pd.DataFrame(rows, columns=["id", *OBSERVATION_COLUMNS])
    frame[TrafficRaw.timestamp] = pd.to_datetime(frame[TrafficRaw.timestamp]).astype(
        "datetime64[ns]"
    )
    for name in _VALUE_COLUMNS:
        frame[name] = frame[name].astype(float)
    return frame


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=float) for name in ["id", *OBSERVATION_COLUMNS]})
    frame[TrafficRaw.timestamp] = frame[TrafficRaw.timestamp].astype("datetime64[ns]")
    return frame


def _same_values(merged: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    same = np.ones(len(merged), dtype=bool)
    for name in _VALUE_COLUMNS:
        sent = merged[name].to_numpy(dtype=float, na_value=np.nan)
        stored = merged[f"{name}_stored"].to_numpy(dtype=float, na_value=np.nan)
        same &= (sent == stored) | (np.isnan(sent) & np.isnan(stored))
    return same


def _rows(
    frame: pd.DataFrame, received: pd.Timestamp, source: str, *, as_text: bool
) -> list[tuple[Any, ...]]:
    """The insert's rows: timestamp, the values (None for NA), received_at, source.

    ``as_text``: times as SQLAlchemy's SQLite ``DateTime`` stores them, so it reads them back.
    """
    stamps = frame[TrafficRaw.timestamp]
    if as_text:
        hours: list[Any] = stamps.dt.strftime(_SQLITE_TIME).tolist()
        when: Any = f"{received:{_SQLITE_TIME}}"
    else:
        hours, when = stamps.dt.to_pydatetime().tolist(), received.to_pydatetime()
    values = []
    for name in _VALUE_COLUMNS:
        column = frame[name].astype(float)
        cast = int if name == "instances" else float
        values.append([None if math.isnan(v) else cast(v) for v in column.tolist()])
    return list(zip(hours, *values, repeat(when), repeat(source)))


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]
