"""The fleet's commands: ``fleet-data``, ``fleet-validate``, ``fleet-train``, ``batch-predict``.

Thin: each reads its settings, starts the Spark session of ``conf/spark/`` and calls the fleet
modules. They load ``data=fleet`` unless another ``data=`` option is given, so a user need not
repeat it on every command (the single-series pipeline stays the default everywhere else).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.errors
from omegaconf import OmegaConf

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.io import write_atomic
from traffic_forecast.core.lineage import config_hash, data_version_of
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.fleet_files import partition_files, read_fleet
from traffic_forecast.data.schemas import sale_events_schema
from traffic_forecast.data.simulate import SimulationConfig, simulate
from traffic_forecast.data.simulate.fleet import write_fleet_tables
from traffic_forecast.fleet.batch import Lineage, publish
from traffic_forecast.fleet.series import SeriesJob
from traffic_forecast.fleet.spark import running_session
from traffic_forecast.fleet.train import fleet_forecasts, train_fleet
from traffic_forecast.fleet.validation import REPORT_MD, validate_and_publish
from traffic_forecast.pipeline import outputs

log = logging.getLogger(__name__)

FLEET_DATA = "data=fleet"
# What decides a forecast's numbers; where Spark runs (ops) and the PR gate do not.
MODEL_SECTIONS = ("seed", "data", "features", "model", "baseline")
_FAILURES_SHOWN = 5


def fleet_config(overrides: list[str]) -> Config:
    """The settings with ``data=fleet`` first, unless the overrides choose the data themselves."""
    chosen = any(o.split("=", 1)[0].lstrip("+~") == "data" for o in overrides)
    return load_config(overrides if chosen else [FLEET_DATA, *overrides])


def series_job(cfg: Config) -> SeriesJob:
    """What each series' Spark task runs: the configured model and baseline, folds, features."""
    return SeriesJob(cfg.model, cfg.baseline, cfg.backtest, cfg.features, cfg.data.sale_kinds)


def read_sale_calendar(cfg: Config) -> pd.DataFrame:
    """The fleet's sale calendar, checked like the single series' (`SaleEventsRaw`)."""
    path = Path(cfg.data.fleet.sale_events_file)
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: write the fleet first (`fleet-data`)")
    try:
        return sale_events_schema(cfg.data.sale_kinds).validate(pd.read_parquet(path), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(_FAILURES_SHOWN)
        found = "; ".join(f"column {r.column}, check {r.check}" for r in cases.itertuples())
        raise PipelineInputError(
            f"{path}: {len(exc.failure_cases)} failed checks ({found}); rewrite it (`fleet-data`)"
        ) from exc


def model_version(cfg: Config) -> str:
    """The hash of the settings that decide the forecasts (the fleet's models are not stored)."""
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    assert isinstance(resolved, dict)
    return config_hash({key: resolved[key] for key in MODEL_SECTIONS})


def fleet_data_version(cfg: Config) -> str:
    """``data.dvc``'s version where it tracks the fleet's files, else a hash of their MD5s."""
    fleet = cfg.data.fleet
    files = [*partition_files(Path(fleet.raw_dir)), Path(fleet.sale_events_file)]
    described: dict[str, dict[str, Any]] = {
        str(file): {"md5": hashlib.md5(file.read_bytes(), usedforsecurity=False).hexdigest()}
        for file in files
    }
    return data_version_of(described)


def default_run_id(data_version: str, model: str) -> str:
    """The same data and settings give the same run id: a rerun replaces its run."""
    return f"{data_version}-{model}"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda staged: frame.to_csv(staged, index=False, lineterminator="\n"))


def _data(args: argparse.Namespace) -> int:
    cfg = fleet_config(args.overrides)
    fleet = cfg.data.fleet
    tables = simulate(SimulationConfig(**asdict(cfg.data.simulator)))
    frame = write_fleet_tables(tables, fleet)
    log.info(
        "fleet: %d series x %d hours into %s; sale calendar %s",
        frame["series_id"].nunique(),
        len(tables.traffic),
        fleet.raw_dir,
        fleet.sale_events_file,
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    cfg = fleet_config(args.overrides)
    fleet, reports = cfg.data.fleet, Path(cfg.paths.reports_dir)
    read_sale_calendar(cfg)
    with running_session(cfg.spark) as spark:
        result = validate_and_publish(
            spark, Path(fleet.raw_dir), Path(fleet.validated_dir), reports
        )
    if result.passed:
        log.info("fleet validation passed: %d series into %s", result.series, fleet.validated_dir)
        log.info("report: %s", reports / REPORT_MD)
        return 0
    log.error(
        "fleet validation failed: %d series (%s); nothing downstream was touched",
        len(result.failed_series),
        ", ".join(result.failed_series[:_FAILURES_SHOWN]),
    )
    log.error("report: %s", reports / REPORT_MD)
    return 1


def _train(args: argparse.Namespace) -> int:
    cfg = fleet_config(args.overrides)
    calendar = read_sale_calendar(cfg)
    with running_session(cfg.spark) as spark:
        frame = read_fleet(spark, Path(cfg.data.fleet.validated_dir))
        training = train_fleet(frame, calendar, cfg.data.fleet, series_job(cfg))
    _write_csv(training.metrics, outputs.FLEET_METRICS.path(cfg.paths))
    _write_csv(training.excluded, outputs.FLEET_EXCLUDED.path(cfg.paths))
    log.info(
        "fleet %s: %d series scored, %d excluded, in %.0f s: %s",
        cfg.data.fleet.model,
        len(training.metrics),
        len(training.excluded),
        training.seconds,
        outputs.FLEET_METRICS.path(cfg.paths),
    )
    return 0


def _batch_predict(args: argparse.Namespace) -> int:
    cfg = fleet_config(args.overrides)
    fleet = cfg.data.fleet
    calendar = read_sale_calendar(cfg)
    version = model_version(cfg)
    lineage = Lineage(
        model_version=version, data_version=fleet_data_version(cfg), config_hash=version
    )
    run_id = args.run_id or default_run_id(lineage.data_version, version)
    with running_session(cfg.spark) as spark:
        frame = read_fleet(spark, Path(fleet.validated_dir))
        published = publish(
            fleet_forecasts(frame, calendar, fleet, series_job(cfg)),
            Path(fleet.predictions_dir),
            run_id,
            lineage,
        )
    log.info(
        "batch forecast %s: %d series x %d hours, %d rows in %s",
        published.run_id,
        published.series,
        cfg.features.horizon,
        published.rows,
        published.path,
    )
    return 0


def data_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast fleet-data``: simulate the fleet and write it as partitioned Parquet."""
    parser = command.parser(
        "fleet-data",
        "Simulate the site (data.simulator), split it into the fleet's series (data.fleet) and "
        "write them to data.fleet.raw_dir, partitioned by series and month, with the sale "
        "calendar at data.fleet.sale_events_file. Loads data=fleet unless told otherwise.",
    )
    return command.run(parser, _data, argv)


def validate_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast fleet-validate``: validate the fleet on Spark."""
    parser = command.parser(
        "fleet-validate",
        "Validate every series of data.fleet.raw_dir on Spark (reports/fleet_validation.md); "
        "only when all pass, write data.fleet.validated_dir. Exit 1 on any failure.",
    )
    return command.run(parser, _validate, argv)


def train_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast fleet-train``: backtest every series against seasonal naive."""
    parser = command.parser(
        "fleet-train",
        "Backtest every validated series on Spark (data.fleet.model: local or global) against "
        "seasonal naive on the same folds; write reports/fleet_metrics.csv (one row a series) "
        "and reports/fleet_excluded.csv (series too short, with the reason).",
    )
    return command.run(parser, _train, argv)


def batch_predict_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast batch-predict``: the next ``features.horizon`` hours of every series."""
    parser = command.parser(
        "batch-predict",
        "Fit the fleet's models (data.fleet.model: one per series, or one global) on the whole "
        "history and publish every series' next "
        "features.horizon hours to data.fleet.predictions_dir with lineage (model version, "
        "data version, origin). A run id is published whole or not at all; rerunning it "
        "replaces it.",
    )
    parser.add_argument(
        "--run-id",
        default=None,
        help="the run to publish (default: from the data version and the settings' hash, so a "
        "rerun on the same data and settings replaces its run)",
    )
    return command.run(parser, _batch_predict, argv)
