"""What a slot's `bentoml serve` is given."""

from __future__ import annotations

from pathlib import Path

from traffic_forecast.deploy import slots


def test_the_prediction_log_path_given_to_a_slot_is_absolute() -> None:
    # `bentoml serve <bento>` runs in the Bento's directory: a relative path would land there.
    path = slots.prediction_log_path(Path(".deploy"), "green")
    assert path.is_absolute()
    assert path == Path.cwd() / ".deploy" / "logs" / "predictions-green.jsonl"
