"""Forecasters from config: build, feed (y and X from the model-ready frames), fit, save, load.

Every forecaster is a ``_target_`` block in ``conf/model/`` instantiated by Hydra. Settings that
cannot work (an unknown class, a misspelt argument, a season longer than the data) fail here with
the setting's name, before any long computation starts. A saved forecaster is the same bytes
for the same data, code and config, whatever process saved it.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sktime.base import load as sktime_load
from threadpoolctl import ThreadpoolController, threadpool_limits

from traffic_forecast.core.config import ModelConfig
from traffic_forecast.core.errors import ConfigError, PipelineInputError
from traffic_forecast.core.io import write_atomic
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.forecasting import ensemble, mstl
from traffic_forecast.forecasting.features import exogenous_columns

HOURLY = "h"
# The project's own classes that conf/model/ names as `_target_`s: imported here so that every
# stage building a forecaster depends on them in dvc.yaml (`traffic-forecast stage-deps` follows
# imports, not config strings), and a change to them re-runs what they build.
PROJECT_TARGETS = (ensemble.stacked, mstl.MSTL)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
# sktime's names for season lengths, wherever nested: sp (one), periods (MSTL's list)
SEASON_KEYS = frozenset({"sp", "periods"})
# sktime's and statsmodels' names for a form that divides by the series, and their values
MULTIPLICATIVE_KEYS = frozenset({"model", "seasonal", "trend", "error"})
MULTIPLICATIVE = frozenset({"multiplicative", "mul"})


# sktime 1.2 announces on every forecaster it builds (each fold clones several) that the
# default of ``remember_data`` changes in 1.3. Both defaults keep what our forecasters need.
# sktime resets the FutureWarning filters after its first fit, so a filter cannot silence it:
# the announcement is dropped where warnings are shown, in this process and in the backtest's
# workers (`quiet_worker`, their initializer).
_ANNOUNCEMENT = "The default of config ``remember_data``"
# Also dropped, from the recursive_boosting candidate: sktime's note on every
# RecursiveReductionForecaster built that its interface is experimental (uv.lock pins the
# version), and scikit-learn's complaint on every fit that the reduction hands it y as a column.
_DROPPED = (
    _ANNOUNCEMENT,
    "RecursiveReductionForecaster is experimental",
    "A column-vector y was passed when a 1d array was expected",
)


def quiet_worker() -> None:
    """Initializer of a backtest worker process: it never shows sktime's announcement."""
    show = warnings.showwarning

    def shown(message: Warning | str, category: type[Warning], *where: Any) -> None:
        if not str(message).startswith(_DROPPED):
            show(message, category, *where)

    warnings.showwarning = shown  # type: ignore[assignment]  # same call, fewer names


@cache
def _loaded_openmp() -> ThreadpoolController:
    return ThreadpoolController()


def one_openmp_thread() -> Any:
    """A context: OpenMP on one thread in this thread (microseconds; see `running_sktime`).

    For the lean forms' regressors in serving: their libraries are loaded, so the search of
    the process's OpenMP libraries done once is reused.
    """
    return _loaded_openmp().limit(limits=1, user_api="openmp")


@contextmanager
def running_sktime(*, libraries_loaded: bool = False) -> Iterator[None]:
    """Wrap sktime work: OpenMP on one thread, and only sktime's announcement dropped.

    On these 2-core machines a gradient-boosting fit with the default threads took anywhere
    from 0.2 to 2.3 s depending on other load; one thread is steady. Parallelism belongs to
    whole folds (``backtest.backend``), not to threads inside one fit. Every other warning
    raised inside is re-issued when the block ends.

    Finding the process's OpenMP libraries takes about 4 ms. ``libraries_loaded``: a fitted
    model is in memory, so every library it runs is loaded, and the first search is reused
    (serving, where live actuals move the model several times a second).
    """
    limits = one_openmp_thread() if libraries_loaded else threadpool_limits(1, user_api="openmp")
    with warnings.catch_warnings(record=True) as caught, limits:
        warnings.simplefilter("always")  # record everything; the caller's filters apply below
        yield
    for record in caught:
        if not str(record.message).startswith(_DROPPED):
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


def fit(model: ModelConfig, history: pd.DataFrame, *, setting: str = "model") -> Any:
    """Fit ``model`` on the whole history (with the exogenous features if it uses them)."""
    check_fits_history(model, len(history), setting=setting)
    forecaster = build_forecaster(model, setting=setting)
    y = target_series(history)
    check_fits_values(model, y, setting=setting)
    X = exogenous(history, exogenous_columns(history)) if model.uses_exog else None
    with running_sktime(), fitting(model, y, setting):
        return forecaster.fit(y, X=X)


def multiplicative_settings(block: Any, path: str = "") -> Iterator[str]:
    """Every setting in a forecaster config that asks for a multiplicative form."""
    if isinstance(block, dict):
        for key, value in block.items():
            where = f"{path}.{key}" if path else str(key)
            if key in MULTIPLICATIVE_KEYS and value in MULTIPLICATIVE:
                yield f"{where}={value}"
            else:
                yield from multiplicative_settings(value, where)
    elif isinstance(block, list):
        for i, value in enumerate(block):
            yield from multiplicative_settings(value, f"{path}[{i}]")


def check_fits_values(model: ModelConfig, y: pd.Series, *, setting: str = "model") -> None:
    """Refuse, before any fit, a multiplicative form on a target with zero or negative hours."""
    not_positive = int((y <= 0).sum())
    wanted = list(multiplicative_settings(model.forecaster, f"{setting}.forecaster"))
    if not_positive and wanted:
        raise ConfigError(
            f"{', '.join(wanted)}: a multiplicative form needs positive values, and the target "
            f"has {not_positive} hours at or below 0: use the additive form, or a "
            "LogTransformer with an offset before it"
        )


@contextmanager
def fitting(model: ModelConfig, y: pd.Series, setting: str) -> Iterator[None]:
    """Turn a forecaster that fails on this data into a one-line `ConfigError` naming it.

    Statistical forecasters reject some series deep inside statsmodels (a multiplicative
    step that the config does not spell out, a singular matrix); the user gets the model,
    the reason and the data's range, not a traceback from a worker process.
    """
    try:
        yield
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        raise ConfigError(
            f"{setting}.forecaster ({model.name}) cannot be fitted on this data "
            f"(target from {y.min():g} to {y.max():g}, {int((y <= 0).sum())} hours at or "
            f"below 0): {type(exc).__name__}: {exc}"
        ) from exc


def stable_tags(forecaster: Any) -> Any:
    """``forecaster`` with every list of mtypes in its (and its parts') dynamic tags sorted.

    Some sktime composites (``IgnoreX``) set their inner mtypes from a set, whose order follows
    the process's hash seed: the same model would pickle to other bytes in every process. The
    order is no preference (any listed mtype is taken as is), so sorting changes no forecast.
    """
    seen: set[int] = set()
    pending = [forecaster]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        tags = getattr(node, "_tags_dynamic", None)
        if isinstance(tags, dict):
            for key, value in tags.items():
                if key.endswith("_mtype") and isinstance(value, list):
                    tags[key] = sorted(value)
        if isinstance(node, dict):
            pending += node.values()
        elif isinstance(node, list | tuple):
            pending += node
        elif hasattr(node, "__dict__"):
            pending += vars(node).values()
    return forecaster


def save(forecaster: Any, path: Path) -> None:
    """Save in sktime's format (a zip of ``_metadata`` and ``_obj``), byte-for-byte repeatable.

    sktime's own ``save`` zips through a temporary folder, stamping the current time into the
    archive, so the same model would hash differently on every run and DVC would see a change.
    """
    cls, payload = stable_tags(forecaster).save()  # no path: sktime returns class and pickle

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in (("_metadata", pickle.dumps(cls)), ("_obj", payload)):
                archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), data)

    write_atomic(path, write)


def load(path: Path) -> Any:
    """Load a forecaster saved by `save`."""
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: run the train stage first")
    return sktime_load(path)


def season_lengths(block: Any, path: str = "") -> Iterator[tuple[str, int]]:
    """Every season length (``sp``) in a forecaster config, with its dotted setting name."""
    if isinstance(block, dict):
        for key, value in block.items():
            where = f"{path}.{key}" if path else str(key)
            if key in SEASON_KEYS and isinstance(value, int):
                yield where, value
            elif key in SEASON_KEYS and isinstance(value, list):
                yield from ((f"{where}[{i}]", sp) for i, sp in enumerate(value))
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
