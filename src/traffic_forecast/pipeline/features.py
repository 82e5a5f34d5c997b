"""Stage 2, features: the model-ready hourly frame for the history and the forecast horizon.

Reads the validated tables, builds the known-in-advance features
(`traffic_forecast.forecasting.features`) and writes ``history.parquet`` and ``future.parquet``,
with the raw data's lineage (``data.json``) passed on for the model card.
"""

from __future__ import annotations

import argparse
import logging
import sys

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.io import write_json_atomic, write_parquet_atomic
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.forecasting.features import ModelInputs, build_features, exogenous_columns
from traffic_forecast.pipeline import outputs

log = logging.getLogger(__name__)


def run(cfg: Config) -> ModelInputs:
    """Build the features from the validated tables and write them."""
    paths = cfg.paths
    traffic, events = outputs.read_validated(paths, with_events=bool(cfg.data.sale_events_file))
    inputs = build_features(traffic, events, cfg.data.sale_kinds, cfg.features)
    write_parquet_atomic(inputs.history, outputs.HISTORY.path(paths))
    write_parquet_atomic(inputs.future, outputs.FUTURE.path(paths))
    write_json_atomic(
        outputs.FEATURES_DATA.path(paths), outputs.read_json(outputs.VALIDATED_DATA, paths)
    )
    return inputs


def _run(args: argparse.Namespace) -> int:
    inputs = run(load_config(args.overrides))
    history = inputs.history[TrafficRaw.timestamp]
    log.info(
        "features: %d history hours (%s → %s), %d future hours, %d exogenous columns",
        len(history),
        history.iloc[0],
        history.iloc[-1],
        len(inputs.future),
        len(exogenous_columns(inputs.future)),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast features [overrides…]`` (DVC: ``python -m …pipeline.features``)."""
    return command.run(command.parser("features", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
