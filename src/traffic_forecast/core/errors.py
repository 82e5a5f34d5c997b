"""The project's exception hierarchy: every error a user can cause, with what to do about it."""

from __future__ import annotations


class TrafficForecastError(Exception):
    """Base class: an error the CLI reports in one line, without a traceback."""

    exit_code: int = 1


class ConfigError(TrafficForecastError):
    """A setting in ``conf/`` or ``params.yaml`` is missing, misspelt or out of range."""

    exit_code = 2


class DataLoadError(TrafficForecastError):
    """A raw file cannot be read at all (missing, empty, not UTF-8, not CSV)."""


class DataValidationError(TrafficForecastError):
    """The data was read but breaks its schema; the report lists every failure."""


class DataVersionError(TrafficForecastError):
    """The data in the workspace is not the version ``data.dvc`` names (or could not be fetched)."""


class PipelineInputError(TrafficForecastError):
    """A stage's input is missing or stale: run the stages before it (``dvc repro``)."""


class BatchPublishError(TrafficForecastError):
    """Batch predictions cannot be published (bad run id, bad columns, duplicate rows, no run)."""
