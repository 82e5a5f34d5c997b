"""The observations store on SQLite and PostgreSQL, and an SQLite file failing under it.

Both backends: revisions, corrections, all-or-nothing batches, two writers at once. SQLite: the
store file deleted, replaced or read-only under an open store, and a writer killed mid-write.
PostgreSQL is a real server the tests start (`tests.data.postgres`); the crash tests kill a
real writer process with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.data.postgres import PostgresServer, postgres_server
from traffic_forecast.data.observations import OBSERVATION_COLUMNS, Batch, check_batch
from traffic_forecast.data.store import (
    STORE_FILE,
    ObservationStore,
    StoreUnavailableError,
    default_url,
    observations,
)

START = pd.Timestamp("2024-03-01")
NOW = pd.Timestamp("2030-01-01")  # every hour of these tests has been observed by then


def _hour(offset: int) -> pd.Timestamp:
    return START + pd.Timedelta(hours=offset)


def _batch(
    values: dict[int, float], *, instances: dict[int, int] | None = None, source: str = "test"
) -> Batch:
    """Hours (offsets from START) and their sessions, checked as the API checks a batch."""
    text = pd.DataFrame(
        {
            "timestamp": [_hour(offset).isoformat() for offset in values],
            "target": [repr(value) for value in values.values()],
        }
    )
    if instances is not None:
        text["instances"] = [
            str(instances[offset]) if offset in instances else None for offset in values
        ]
    return check_batch(text, source, now=NOW, max_future_hours=0)


def _hours(frame: pd.DataFrame) -> list[pd.Timestamp]:
    return list(frame["timestamp"])


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One server for the module; each test gets a database of its own."""
    with postgres_server() as server:
        yield server


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)],
    ids=["sqlite", "postgresql"],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store's URL: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return default_url(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def store(store_url: str) -> Iterator[ObservationStore]:
    """The store at `store_url`, closed afterwards."""
    opened = ObservationStore(store_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[ObservationStore]:
    """An embedded store in ``tmp_path``, closed afterwards."""
    opened = ObservationStore(default_url(tmp_path))
    yield opened
    opened.close()


def test_an_empty_store_has_head_zero_and_no_hours(store: ObservationStore) -> None:
    assert store.head() == 0
    assert store.current().empty
    changed, head = store.changed_since(0)
    assert changed.empty
    assert head == 0
    assert list(store.current().columns) == ["id", *OBSERVATION_COLUMNS]


def test_a_batch_counts_new_unchanged_and_corrected_hours(store: ObservationStore) -> None:
    first = _batch({0: 10.0, 1: 11.0, 2: 12.0}, instances={0: 3})
    written = store.write(first)
    assert (written.new, written.corrected, written.unchanged) == (3, 0, 0)
    assert written.head == 3

    # Re-sent as it is (hours 1 and 2 without instances both times): nothing appended.
    again = store.write(first)
    assert (again.new, again.corrected, again.unchanged, again.head) == (0, 0, 3, 3)

    # Hour 0 corrected in an infrastructure column only, hour 2 in its sessions, hour 3 new.
    mixed = store.write(_batch({0: 10.0, 1: 11.0, 2: 99.0, 3: 13.0}, instances={0: 4}))
    assert (mixed.new, mixed.corrected, mixed.unchanged) == (1, 2, 1)
    assert (mixed.stored, mixed.head) == (3, 6)
    assert store.head() == 6


def test_a_correction_keeps_the_earlier_value_and_current_is_the_newest(
    store: ObservationStore,
) -> None:
    store.write(_batch({5: 100.0, 6: 7.0}, source="first"))
    store.write(_batch({5: 120.0}, source="second"))

    revisions = store.revisions(_hour(5))
    assert revisions["target"].tolist() == [100.0, 120.0]
    assert revisions["source"].tolist() == ["first", "second"]
    assert revisions["id"].is_monotonic_increasing
    assert len(store.revisions(_hour(6))) == 1
    current = store.current()
    assert _hours(current) == [_hour(5), _hour(6)]
    assert current["target"].tolist() == [120.0, 7.0]
    assert store.corrections() == 1


def test_changed_since_returns_only_the_touched_hours_and_the_head(
    store: ObservationStore,
) -> None:
    seen = store.write(_batch({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})).head
    newest = store.write(_batch({1: 2.0, 2: 30.0, 7: 8.0})).head  # hour 1 re-sent as it was

    changed, head = store.changed_since(seen)
    assert head == newest
    assert _hours(changed) == [_hour(2), _hour(7)]
    assert changed["target"].tolist() == [30.0, 8.0]
    assert (changed["id"] > seen).all()

    nothing, head = store.changed_since(newest)
    assert nothing.empty
    assert head == newest

    everything, _ = store.changed_since(0)
    assert _hours(everything) == [_hour(h) for h in (0, 1, 2, 3, 7)]
    assert everything["target"].tolist() == [1.0, 2.0, 30.0, 4.0, 8.0]


def test_hours_older_than_stored_ones_and_unordered_batches(store: ObservationStore) -> None:
    store.write(_batch({10: 1.0, 11: 2.0, 12: 3.0}))
    in_order = _batch({3: 30.0, 5: 50.0, 11: 22.0}).frame
    unordered = Batch(in_order.iloc[[2, 0, 1]], "unordered")  # 11, 3, 5

    written = store.write(unordered)
    assert (written.new, written.corrected, written.unchanged) == (2, 1, 0)
    current = store.current()
    assert _hours(current) == [_hour(h) for h in (3, 5, 10, 11, 12)]
    assert current["target"].tolist() == [30.0, 50.0, 1.0, 22.0, 3.0]
    after = store.current(after=_hour(10))
    assert _hours(after) == [_hour(11), _hour(12)]


def _stored_count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(observations)).scalar_one())


def test_a_batch_failing_part_way_stores_nothing(
    store: ObservationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(_batch({0: 1.0}))
    insert = ObservationStore._insert
    inside: list[int] = []

    def insert_half_then_fail(self: ObservationStore, conn: sa.Connection, rows: Any) -> None:
        insert(self, conn, rows[: len(rows) // 2])
        inside.append(_stored_count(conn))  # what the transaction holds when it fails
        raise sa.exc.OperationalError("INSERT", None, OSError("disk full (the test's own)"))

    monkeypatch.setattr(ObservationStore, "_insert", insert_half_then_fail)
    with pytest.raises(StoreUnavailableError, match="refused the write: disk full"):
        store.write(_batch({h: float(h) for h in range(1, 11)}))
    monkeypatch.undo()

    assert inside == [1 + 5]  # half of the batch had been inserted when it failed
    assert store.head() == 1
    assert _hours(store.current()) == [_hour(0)]
    assert store.write(_batch({1: 1.0})).new == 1  # and the store still takes writes


def test_a_value_the_database_refuses_stores_nothing_of_its_batch(
    store: ObservationStore,
) -> None:
    store.write(_batch({0: 1.0}))
    frame = _batch({h: float(h) for h in range(1, 11)}).frame
    frame.loc[6, "target"] = np.nan  # past the checks: the NOT NULL column refuses row 7 of 10

    with pytest.raises(StoreUnavailableError, match="refused the write"):
        store.write(Batch(frame, "bypassing the checks"))
    assert store.head() == 1
    assert _hours(store.current()) == [_hour(0)]


# -- two writers at once ----------------------------------------------------------------------

WRITERS = {"a": (range(0, 200), 0.0), "b": (range(10, 210), 1.0)}  # hours, odd hours' offset
WRITER_BATCH = 20


def _value(hour: int, odd_offset: float) -> float:
    """The writers agree on even hours and differ on odd ones."""
    return hour * 10.0 + (odd_offset if hour % 2 else 0.0)


def _write_in_turn(url: str, name: str, start: Any, results: Any) -> None:
    """A writer process: its batches in hour order, once both writers are ready."""
    hours, odd_offset = WRITERS[name]
    store = ObservationStore(url)
    try:
        # Built as `check_batch` returns them, without its checks (they cost more than the writes).
        batches = [
            Batch(
                pd.DataFrame(
                    {
                        "timestamp": [_hour(h) for h in chunk],
                        "target": [_value(h, odd_offset) for h in chunk],
                    }
                ).reindex(columns=list(OBSERVATION_COLUMNS)),
                name,
            )
            for chunk in (hours[i : i + WRITER_BATCH] for i in range(0, len(hours), WRITER_BATCH))
        ]
        start.wait(timeout=120)
        written = [store.write(batch) for batch in batches]
        results.put((name, [(w.new, w.corrected, w.unchanged, w.head) for w in written]))
    except Exception as exc:  # the parent reports it
        results.put((name, repr(exc)))
    finally:
        store.close()


@pytest.mark.slow
def test_two_processes_writing_overlapping_batches_at_once(store_url: str) -> None:
    ObservationStore(store_url).close()  # the table exists before either writer starts
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(len(WRITERS)), context.Queue()
    writers = [
        context.Process(target=_write_in_turn, args=(store_url, name, start, results))
        for name in WRITERS
    ]
    for writer in writers:
        writer.start()
    outcomes = dict(results.get(timeout=180) for _ in writers)
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0

    for name, outcome in outcomes.items():
        assert isinstance(outcome, list), f"writer {name}: {outcome}"
        heads = [head for *_, head in outcome]
        assert heads == sorted(set(heads)), f"writer {name}: heads {heads}"
    per_batch = np.array([written[:3] for outcome in outcomes.values() for written in outcome])
    new, corrected, unchanged = per_batch.sum(axis=0)
    overlap = range(10, 200)  # 95 even hours both send alike, 95 odd ones they do not
    assert (new, corrected, unchanged) == (210, len(overlap) // 2, len(overlap) // 2)

    store = ObservationStore(store_url)
    try:
        with store.engine.connect() as conn:
            query = sa.select(observations.c.id, observations.c.timestamp, observations.c.target)
            rows = conn.execute(query).all()
        head = store.head()
    finally:
        store.close()
    per_value = Counter((pd.Timestamp(stamp), target) for _, stamp, target in rows)
    assert max(per_value.values()) == 1  # no value of an hour stored twice
    expected = {(_hour(h), _value(h, offset)) for hours, offset in WRITERS.values() for h in hours}
    assert set(per_value) == expected
    assert len(rows) == len({row_id for row_id, *_ in rows}) == head == 210 + len(overlap) // 2


# -- SQLite: the file under a running service -----------------------------------------------


def test_a_deleted_store_file_is_named_and_takes_no_write(
    sqlite_store: ObservationStore, tmp_path: Path
) -> None:
    sqlite_store.write(_batch({0: 1.0}))
    path = tmp_path / STORE_FILE
    wal = path.with_name(path.name + "-wal")  # where a write into the deleted file would go
    wal_before = wal.read_bytes()
    path.unlink()

    reason = sqlite_store.unwritable()
    assert reason == f"the store file {path} was deleted"
    with pytest.raises(StoreUnavailableError, match="deleted"):
        sqlite_store.write(_batch({1: 2.0}))
    assert not path.exists()  # no new, empty store made in its place
    assert wal.read_bytes() == wal_before


def test_a_replaced_store_file_is_named_and_takes_no_write(
    sqlite_store: ObservationStore, tmp_path: Path
) -> None:
    sqlite_store.write(_batch({0: 1.0}))
    other = ObservationStore(default_url(tmp_path / "other"))
    other.write(_batch({5: 5.0}))
    other.close()
    path = tmp_path / STORE_FILE
    wal = path.with_name(path.name + "-wal")
    wal_before = wal.read_bytes()
    replacement = path.with_name("replacement")
    (tmp_path / "other" / STORE_FILE).replace(replacement)
    replacement_before = replacement.read_bytes()
    replacement.replace(path)

    reason = sqlite_store.unwritable()
    assert reason == f"the store file {path} was replaced since it was opened"
    with pytest.raises(StoreUnavailableError, match="replaced"):
        sqlite_store.write(_batch({1: 2.0}))
    assert wal.read_bytes() == wal_before
    assert path.read_bytes() == replacement_before


def test_a_read_only_store_file_is_named_and_takes_no_write(
    sqlite_store: ObservationStore, tmp_path: Path
) -> None:
    sqlite_store.write(_batch({0: 1.0}))
    path = tmp_path / STORE_FILE
    path.chmod(0o444)
    try:
        reason = sqlite_store.unwritable()
        assert reason == f"the store file {path} is read-only"
        with pytest.raises(StoreUnavailableError, match="read-only"):
            sqlite_store.write(_batch({1: 2.0}))
    finally:
        path.chmod(0o644)
    assert sqlite_store.head() == 1
    assert sqlite_store.unwritable() is None


# -- SQLite: a writer killed --------------------------------------------------------------------

BIG_BATCH = 200_000
BIG_START = "2030-01-01"  # far from the hours written beforehand
# A writer process: prints "writing" just before the write, "acked <head>" once it returned;
# with "half" it stops (and waits to be killed) halfway through the insert.
WRITER = """
import sys, time
import numpy as np, pandas as pd
from traffic_forecast.data.observations import OBSERVATION_COLUMNS, Batch
from traffic_forecast.data.store import ObservationStore

url, rows, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "half"
stamps = pd.date_range(sys.argv[4], periods=rows, freq="h")
frame = pd.DataFrame({"timestamp": stamps, "target": np.arange(rows, dtype=float)})
batch = Batch(frame.reindex(columns=list(OBSERVATION_COLUMNS)), "writer")
store = ObservationStore(url)
if pause:
    insert = ObservationStore._insert
    def insert_half(self, conn, rows):
        insert(self, conn, rows[: len(rows) // 2])
        print("half inserted", flush=True)
        time.sleep(600)
    ObservationStore._insert = insert_half
print("writing", flush=True)
written = store.write(batch)
print("acked", written.head, flush=True)
time.sleep(600)
"""


def _start_writer(url: str, rows: int, *, pause: bool = False) -> subprocess.Popen[str]:
    args = [url, str(rows), "half" if pause else "whole", BIG_START]
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, *args], stdout=subprocess.PIPE, text=True
    )


def _kill(writer: subprocess.Popen[str]) -> None:
    with writer:  # closes its stdout
        writer.send_signal(signal.SIGKILL)
        writer.wait()


def _kill_at(writer: subprocess.Popen[str], line: str) -> str:
    """SIGKILL the writer as soon as it prints a line starting with ``line``; that line."""
    assert writer.stdout is not None
    for printed in writer.stdout:
        if printed.startswith(line):
            _kill(writer)
            return printed
    _kill(writer)
    raise AssertionError(f"the writer exited ({writer.returncode}) before printing {line!r}")


def _integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.slow
def test_an_acknowledged_batch_survives_the_writer_being_killed(tmp_path: Path) -> None:
    # The process dies, not the machine: this shows the batch was committed before `write`
    # returned, not that it reached the disk (synchronous=FULL is SQLite's promise for that).
    url = default_url(tmp_path)
    acked = _kill_at(_start_writer(url, 48), "acked")

    store = ObservationStore(url)
    try:
        assert store.head() == int(acked.split()[1]) == 48
        current = store.current()
        assert current["target"].tolist() == list(map(float, range(48)))
    finally:
        store.close()
    assert _integrity(tmp_path / STORE_FILE) == "ok"


@pytest.mark.slow
# Here a 200,000-row write reads the store until ~0.1 s, builds its rows until ~0.7 s, inserts
# until ~2.8 s, then commits; a slower machine moves the kills earlier, "half" pins one.
@pytest.mark.parametrize(
    "kill_after", [0.05, 0.5, 1.5, "half"], ids=["0.05s", "0.5s", "1.5s", "half-inserted"]
)
def test_a_writer_killed_mid_batch_leaves_none_or_all_of_it(
    tmp_path: Path, kill_after: float | str
) -> None:
    url = default_url(tmp_path)
    store = ObservationStore(url)
    store.write(_batch({0: 1.0, 1: 2.0}))
    store.close()

    writer = _start_writer(url, BIG_BATCH, pause=kill_after == "half")
    if isinstance(kill_after, str):
        _kill_at(writer, "half inserted")
    else:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "writing\n"
        time.sleep(kill_after)  # somewhere inside the write: the outcome may not depend on it
        _kill(writer)

    store = ObservationStore(url)
    try:
        head, stored = store.head(), len(store.current())
    finally:
        store.close()
    assert (head, stored) in {(2, 2), (2 + BIG_BATCH, 2 + BIG_BATCH)}
    if kill_after == "half":
        assert stored == 2  # killed with half the batch inserted and nothing committed
    assert _integrity(tmp_path / STORE_FILE) == "ok"
