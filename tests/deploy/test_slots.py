"""What a slot's `bentoml serve` is given."""

from __future__ import annotations

from pathlib import Path

from traffic_forecast.deploy import slots


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
