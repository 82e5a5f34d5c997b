"""The pipeline's stages on real data: the UCI bike-sharing hours from ``../shared/data``.

Validate, features and evaluate run in-process, as DVC would run them with ``data=bike_sharing``,
every output under a temporary folder. Skipped where ``../shared/data`` is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import needs_shared_data
from traffic_forecast.core.settings import load_config
from traffic_forecast.pipeline import evaluate, features, outputs, validate

FILLED_HOURS = 165  # hours with no rentals, absent from hour.csv
MIN_FOLDS = 26


@pytest.mark.slow
@needs_shared_data()
def test_default_model_beats_seasonal_naive_on_bike_sharing(tmp_path: Path) -> None:
    overrides = [
        "data=bike_sharing",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"paths.validated_dir={tmp_path / 'validated'}",
        f"paths.features_dir={tmp_path / 'features'}",
        f"paths.model_dir={tmp_path / 'models'}",
    ]
    config = load_config(overrides, params_file=None)

    result = validate.run(config)
    assert result.passed, result.failures
    assert any(f"{FILLED_HOURS} missing hours filled" in note for note in result.notes)

    inputs = features.run(config)
    assert len(inputs.history) == sum(result.rows.values()) + FILLED_HOURS

    metrics = evaluate.run(config)
    model, baseline = metrics["model"]["mase"], metrics["baseline"]["mase"]
    print(
        f"\nbike sharing, {metrics['backtest']['folds']} folds: "
        f"{config.model.name} MASE {model:.3f}, {config.baseline.name} MASE {baseline:.3f}"
    )
    assert metrics["backtest"]["folds"] >= MIN_FOLDS
    assert model < baseline
    assert outputs.METRICS.path(config.paths).is_file()
