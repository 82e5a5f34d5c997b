"""Stage 1, validate: check every raw table at once and write them, typed, for the features stage.

On any failure the stage writes ``reports/validation.md`` and ``.json`` listing every failed
check (file, column, check, count, lines), exits non-zero, and leaves the validated data of the
last good run where it was, so nothing downstream is trained on bad data. On success it also
writes what the raw data was (``data.json``: data version, each file's MD5, rows and hours),
which the features stage passes on to the model card.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from traffic_forecast.core import command
from traffic_forecast.core.config import Config, DataConfig
from traffic_forecast.core.io import write_json_atomic, write_parquet_atomic, write_text_atomic
from traffic_forecast.core.lineage import data_version_of
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.validation import (
    ValidationResult,
    describe_files,
    read_raw,
    validate_raw,
)
from traffic_forecast.data.validation_report import render_json, render_markdown
from traffic_forecast.pipeline import outputs

log = logging.getLogger(__name__)


def data_lineage(data: DataConfig, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the raw data was: its name in ``conf/data/``, its version, each file's description."""
    return {"name": data.name, "version": data_version_of(files), "files": files}


def run(cfg: Config) -> ValidationResult:
    """Validate, write the reports, and on success write the validated tables and lineage."""
    texts, read_failures = read_raw(cfg.data)
    result = validate_raw(cfg.data, texts, read_failures)
    paths = cfg.paths
    files = describe_files(cfg.data, result)
    write_text_atomic(
        outputs.VALIDATION_MD.path(paths),
        render_markdown(result.failures, result.rows, result.notes),
    )
    write_json_atomic(
        outputs.VALIDATION_JSON.path(paths),
        render_json(result.failures, result.rows, result.notes, files),
    )
    if result.passed:
        for key, frame in result.tables.items():
            write_parquet_atomic(frame, outputs.VALIDATED_TABLES[key].path(paths))
        write_json_atomic(outputs.VALIDATED_DATA.path(paths), data_lineage(cfg.data, files))
    return result


def validate_and_log(cfg: Config) -> int:
    """Run the stage and tell the user where the report is; the stage's exit code."""
    result = run(cfg)
    report = outputs.VALIDATION_MD.path(cfg.paths)
    if result.passed:
        read = ", ".join(f"{file} ({rows:,} rows)" for file, rows in result.rows.items())
        log.info("validation passed: %s", read)
        log.info("report: %s", report)
        return 0
    files = ", ".join(sorted({f.file for f in result.failures}))
    log.error(
        "validation failed: %d checks on %s; nothing downstream was touched",
        len(result.failures),
        files,
    )
    log.error("report: %s", report)
    return 1


def _run(args: argparse.Namespace) -> int:
    return validate_and_log(load_config(args.overrides))


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast validate [overrides…]`` (DVC: ``python -m …pipeline.validate``)."""
    return command.run(command.parser("validate", __doc__), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
