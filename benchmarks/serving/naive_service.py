"""For reference: the service as it is often first written, calling sktime's predict per request.

Same model, same packaged folder, same BentoML; no precomputation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from traffic_forecast.forecasting.forecasters import exogenous
from traffic_forecast.serving import artifacts


@bentoml.service(name="naive-forecast", workers=1, logging={"access": {"enabled": False}})
class NaiveForecast:
    """Loads the model, and forecasts from scratch on every request."""

    model = bentoml.models.BentoModel(
        os.environ.get("TRAFFIC_FORECAST_MODEL", "traffic-forecast:latest")
    )

    def __init__(self) -> None:
        self.loaded = artifacts.load(Path(self.model.path))

    @bentoml.api(route="/forecast")
    def forecast(self, horizon: int = 24) -> dict[str, Any]:
        """The forecaster's predict for the first ``horizon`` hours, per request."""
        future = self.loaded.future.iloc[:horizon]
        stamps = future["timestamp"]
        fh = ForecastingHorizon(pd.DatetimeIndex(stamps, freq="h"), is_relative=False)
        columns = self.loaded.card["exogenous_columns"]
        X = exogenous(future, columns) if columns else None
        values = self.loaded.forecaster.predict(fh, X=X).to_numpy()
        return {
            "forecast": [
                {"timestamp": f"{t:%Y-%m-%dT%H:%M:%S}", "value": float(v)}
                for t, v in zip(stamps, values, strict=True)
            ]
        }
