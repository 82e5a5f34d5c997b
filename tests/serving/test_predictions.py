"""The prediction log: every entry written, rotated by size, and dropped (counted) when full."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from traffic_forecast.serving import predictions


def _entry(i: int) -> dict[str, object]:
    return {"model_version": "m:1", "i": i, "value": np.array([1.23456, 2.0])}


def test_entries_are_written_as_json_lines_and_rotated_by_size(tmp_path: Path) -> None:
    log = predictions.PredictionLog(tmp_path / "p.jsonl", max_bytes=2_000, backups=50)
    for i in range(200):
        assert log.record(_entry(i))
    log.close()
    files = predictions.log_files(str(tmp_path / "p.jsonl*"))
    assert len(files) > 5  # rotated
    assert all(f.stat().st_size <= 2_000 for f in files)
    entries = predictions.read(files)
    assert [e["i"] for e in entries] == list(range(200))  # none lost, oldest file first
    assert entries[0]["value"] == [1.235, 2.0]
    assert "time" in entries[0]


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    drops: list[int] = []
    log = predictions.PredictionLog(
        tmp_path / "p.jsonl", 10**6, 1, on_drop=lambda: drops.append(1), queue_size=5
    )
    log._handler.acquire()  # a stalled disk: the writer blocks on its first entry
    try:
        accepted = sum(log.record(_entry(i)) for i in range(50))
    finally:
        log._handler.release()
    log.close()
    assert len(drops) == 50 - accepted >= 44  # at most the queue and the one being written
    assert len(predictions.read([tmp_path / "p.jsonl"])) == accepted


def test_each_worker_has_its_own_file() -> None:
    path = Path("/logs/predictions-blue.jsonl")
    assert predictions.per_worker(path, None) == path
    assert predictions.per_worker(path, 2) == Path("/logs/predictions-blue.2.jsonl")
