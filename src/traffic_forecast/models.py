"""Build forecasters from config and feed them: y and X from the model-ready frames.

Every forecaster is a ``_target_`` block in ``conf/model/`` instantiated by Hydra. Settings that
cannot work (an unknown class, a misspelt argument, a season longer than the data) fail here with
the setting's name, before any long computation starts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from threadpoolctl import threadpool_limits

from traffic_forecast.config import ModelConfig
from traffic_forecast.errors import ConfigError
from traffic_forecast.schemas import TrafficRaw

HOURLY = "h"
SEASON_KEYS = frozenset({"sp"})  # sktime's name for a season length, wherever it is nested


# sktime 1.2 announces on every forecaster it builds (each fold clones several) that the
# default of ``remember_data`` changes in 1.3. Both defaults keep what our forecasters need, and
# sktime resets FutureWarning filters after its first fit, so a filter cannot silence it.
_ANNOUNCEMENT = "The default of config ``remember_data``"


@contextmanager
def running_sktime() -> Iterator[None]:
    """Wrap sktime work: OpenMP on one thread, and only sktime's announcement dropped.

    On these 2-core machines a gradient-boosting fit with the default threads took anywhere
    from 0.2 to 2.3 s depending on other load; one thread is steady. Parallelism belongs to
    whole folds (``backtest.backend``), not to threads inside one fit. Every other warning
    raised inside is re-issued when the block ends.
    """
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="openmp"):
        warnings.simplefilter("always")  # record everything; the caller's filters apply below
        yield
    for record in caught:
        if not str(record.message).startswith(_ANNOUNCEMENT):
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)


def build_forecaster(model: ModelConfig, *, setting: str = "model") -> Any:
    """Instantiate ``model.forecaster``; any failure is a `ConfigError` naming the setting."""
    try:
        with running_sktime():
            forecaster = instantiate(OmegaConf.create(model.forecaster), _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(f"{setting}.forecaster ({model.name}) cannot be built: {cause}") from None
    if not hasattr(forecaster, "fit") or not hasattr(forecaster, "predict"):
        raise ConfigError(
            f"{setting}.forecaster ({model.name}) is not a forecaster: {forecaster!r}"
        )
    return forecaster


def season_lengths(block: Any, path: str = "") -> Iterator[tuple[str, int]]:
    """Every season length (``sp``) in a forecaster config, with its dotted setting name."""
    if isinstance(block, dict):
        for key, value in block.items():
            where = f"{path}.{key}" if path else str(key)
            if key in SEASON_KEYS and isinstance(value, int):
                yield where, value
            else:
                yield from season_lengths(value, where)
    elif isinstance(block, list):
        for i, value in enumerate(block):
            yield from season_lengths(value, f"{path}[{i}]")


def check_fits_history(model: ModelConfig, n_hours: int, *, setting: str = "model") -> None:
    """A season must fit twice into the training data, or the model has nothing to learn from."""
    for where, sp in season_lengths(model.forecaster, f"{setting}.forecaster"):
        if sp < 1 or 2 * sp > n_hours:
            raise ConfigError(
                f"{where}={sp}: a season length must be ≥ 1 and fit twice into the "
                f"{n_hours} training hours"
            )


def target_series(history: pd.DataFrame) -> pd.Series:
    """The target as a float series on an hourly `DatetimeIndex` (what sktime expects)."""
    index = pd.DatetimeIndex(history[TrafficRaw.timestamp], freq=HOURLY)
    return pd.Series(history[TrafficRaw.target].to_numpy(dtype=float), index=index, name="y")


def exogenous(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The exogenous features as floats on an hourly `DatetimeIndex`."""
    index = pd.DatetimeIndex(frame[TrafficRaw.timestamp], freq=HOURLY)
    return pd.DataFrame(frame[columns].to_numpy(dtype=float), index=index, columns=columns)
