"""What a slot's `bentoml serve` is given."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from traffic_forecast.deploy import detached, slots
from traffic_forecast.deploy.state import COLOURS


def test_the_prediction_log_path_given_to_a_slot_is_absolute() -> None:
    # `bentoml serve <bento>` runs in the Bento's directory: a relative path would land there.
    path = slots.prediction_log_path(Path(".deploy"), "green")
    assert path.is_absolute()
    assert path == Path.cwd() / ".deploy" / "logs" / "predictions-green.jsonl"


def test_each_start_logs_afresh_and_keeps_the_previous_log(tmp_path: Path) -> None:
    # A failed start quotes the end of its log: it must be this start's, not an earlier one's.
    path = slots.log_path(tmp_path, "green")
    path.parent.mkdir(parents=True)
    path.write_text("the previous start\n")

    fresh = slots.fresh_log(path)

    assert fresh == path
    assert not path.exists()
    assert path.with_name("green.log.1").read_text() == "the previous start\n"


def test_each_colour_keeps_its_metrics_files_apart_and_serves_from_the_real_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BentoML keeps a server's metrics in $BENTOML_HOME/prometheus_multiproc_dir and empties
    # it when a server starts: one shared home let a starting colour wipe the live one's.
    store = tmp_path / "store"
    monkeypatch.setenv("BENTOML_HOME", str(store))
    state_dir = tmp_path / "state"

    homes = {
        colour: Path(slots.server_env(colour, "model:v1", state_dir, "sqlite://")["BENTOML_HOME"])
        for colour in COLOURS
    }

    assert homes["blue"] != homes["green"]
    for home in homes.values():
        assert home.is_relative_to(state_dir)
        assert not home.is_relative_to(store)
        for name in ("bentos", "models"):
            assert (home / name).resolve() == (store / name).resolve()


def test_a_second_deploy_reuses_the_slot_home_and_follows_a_moved_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "old"))
    first = slots.slot_home(state_dir, "blue")
    assert slots.slot_home(state_dir, "blue") == first  # the same checkout, deployed again

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "new"))
    slots.slot_home(state_dir, "blue")

    assert (first / "bentos").resolve() == (tmp_path / "new" / "bentos").resolve()


def _wait_for_exec(pid: int, program: bytes) -> None:
    """Until /proc shows ``pid`` running ``program`` (just after a fork it may not yet)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + 10
    while not cmdline.read_bytes().startswith(program + b"\0") and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_pid_file_names_our_process_only_while_it_runs_as_ours(tmp_path: Path) -> None:
    """A child this process started is ours at once; another process if its command names us.

    Just after the start, a child's /proc command line may still be empty.
    """
    pid_file = tmp_path / "sleep.pid"
    child = detached.start(["sleep", "30"], tmp_path / "sleep.log")
    pid_file.write_text(str(child.pid), encoding="utf-8")
    assert slots.recorded(pid_file, "prometheus") == child.pid  # our child, whatever it runs
    stranger = subprocess.Popen(["sleep", "30"])  # not started through `detached`
    try:
        _wait_for_exec(stranger.pid, b"sleep")  # as a pid file written by another process
        pid_file.write_text(str(stranger.pid), encoding="utf-8")
        assert slots.recorded(pid_file, "prometheus") is None  # a reused pid is left alone
        assert slots.recorded(pid_file, "sleep") == stranger.pid
    finally:
        stranger.kill()
        stranger.wait()
    pid_file.write_text(str(child.pid), encoding="utf-8")
    slots.stop_recorded(pid_file, "sleep")
    assert not pid_file.exists()
    assert slots.recorded(pid_file, "sleep") is None
    assert child.poll() is not None  # stopped (and reaped)
