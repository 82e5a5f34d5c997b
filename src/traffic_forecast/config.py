"""Typed configuration: the schema of ``conf/`` and the one way every stage loads its settings.

DVC composes ``conf/`` into ``params.yaml`` (its Hydra integration), and each stage reads
``params.yaml``. Both paths merge into the dataclasses below, so a misspelt or unknown key fails
at once with the key's name, before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from traffic_forecast.errors import ConfigError

CONF_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")
FILL_GAPS = ("none", "zero")
DATA_SOURCES = ("simulator", "external")


@dataclass
class PathsConfig:
    """Where stages read and write, relative to the repository root."""

    raw_dir: str = "data/raw"
    validated_dir: str = "data/validated"
    features_dir: str = "data/features"
    model_dir: str = "models"
    reports_dir: str = "reports"


@dataclass
class SimulatorConfig:
    """The knobs of the example-data simulator that a user is expected to turn."""

    seed: int = 20240101
    start: str = "2024-01-01"
    end: str = "2025-06-30 23:00"
    drift_start: str = "2025-07-01"
    drift_end: str = "2025-09-30 23:00"


@dataclass
class DataConfig:
    """Which raw files to read and how their columns map onto the pipeline's names."""

    name: str = "example"
    source: str = "simulator"  # simulator: data.dvc can be regenerated; external: it cannot
    traffic_file: str = "data/raw/traffic.csv"
    timestamp_column: str = "timestamp"
    hour_column: str | None = None  # set when the hour sits in its own column (date + hour)
    target_column: str = "sessions"
    event_columns: list[str] = field(default_factory=list)  # 0/1 flags in the traffic file
    sale_events_file: str | None = "data/raw/sale_events.csv"
    infrastructure_file: str | None = "data/raw/infrastructure.csv"
    sale_kinds: list[str] = field(default_factory=list)
    strict_columns: bool = True  # False: ignore columns the config does not name
    fill_gaps: str = "none"  # none: report gaps; zero: fill missing hours with 0, and say so
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)

    def __post_init__(self) -> None:
        if self.fill_gaps not in FILL_GAPS:
            raise ConfigError(f"data.fill_gaps={self.fill_gaps!r}: choose one of {FILL_GAPS}")
        if self.source not in DATA_SOURCES:
            raise ConfigError(f"data.source={self.source!r}: choose one of {DATA_SOURCES}")


@dataclass
class Config:
    """The whole composed configuration (``conf/config.yaml`` and its groups)."""

    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    backtest: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)


def to_typed(raw: DictConfig | dict[str, Any], *, origin: str) -> Config:
    """Merge a raw config into the schema; unknown keys and wrong types raise `ConfigError`."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
        typed = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{origin}: setting '{key}' is invalid: {exc.msg}") from None
    assert isinstance(typed, Config)
    return typed


def load_params(path: Path = PARAMS_FILE) -> Config:
    """Load the ``params.yaml`` that DVC composed from ``conf/``."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `make params` (or `dvc exp run`) first")
    return to_typed(OmegaConf.load(path), origin=str(path))  # type: ignore[arg-type]


def compose(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> DictConfig:
    """Compose ``conf/`` with Hydra overrides, as DVC does for ``params.yaml``."""
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides or [])
    except HydraException as exc:
        raise ConfigError(f"conf/: {exc}") from None
    OmegaConf.resolve(cfg)
    return cfg


def load_config(overrides: list[str] | None = None) -> Config:
    """Settings for a stage: ``params.yaml`` as DVC wrote it, or ``conf/`` plus overrides."""
    if overrides:
        return to_typed(compose(overrides), origin=f"conf/ with {' '.join(overrides)}")
    return load_params()
