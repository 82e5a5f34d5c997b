"""The one way every command gets its settings: ``params.yaml``, ``conf/ops.yaml``, overrides.

- The pipeline's settings (seed, paths, data, features, model, baseline, backtest, explain) are
  composed from ``conf/config.yaml`` into ``params.yaml``, which DVC tracks as the stages'
  params. ``dvc exp run -S …`` composes it (DVC's Hydra integration); ``traffic-forecast params``
  (``make params``, and ``make repro`` before it runs) composes it the same way, byte for byte.
- The settings of what comes after the pipeline (gate, capacity, serving, deploy, monitor) are
  composed from ``conf/ops.yaml`` when a command runs. No stage reads them, so a new deploy port
  never makes DVC retrain.
- Overrides on a command line apply on top of both. A group option (``model=theta``,
  ``model@baseline=theta``, ``data=csv``) replaces that section with the option in ``conf/``; a
  setting (``backtest.n_folds=8``) changes that value. Everything else stays as loaded, including
  what ``dvc exp run -S`` wrote into ``params.yaml``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from traffic_forecast.core import command
from traffic_forecast.core.config import OPS_SECTIONS, PIPELINE_SECTIONS, Config, to_typed
from traffic_forecast.core.errors import ConfigError

log = logging.getLogger(__name__)

CONF_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")
PIPELINE_ROOT = "config"  # conf/config.yaml: what DVC composes into params.yaml
OPS_ROOT = "ops"  # conf/ops.yaml: composed at run time
_ABSENT = object()


def hydra_reason(exc: Exception) -> str:
    """Hydra's message in one line: what is wrong and its hint, without the search path."""
    text = str(exc).split("Config search path:")[0]
    lines = [line.strip() for line in text.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("See https://"))


def compose(
    root: str = PIPELINE_ROOT, overrides: list[str] | None = None, conf_dir: Path = CONF_DIR
) -> DictConfig:
    """Compose ``conf/<root>.yaml`` with Hydra overrides, resolved."""
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose(config_name=root, overrides=overrides or [])
    except HydraException as exc:
        raise ConfigError(f"{conf_dir}/{root}.yaml: {hydra_reason(exc)}") from None
    OmegaConf.resolve(cfg)
    OmegaConf.set_struct(cfg, False)  # plain data: the typed schema is what refuses unknown keys
    return cfg


def _parse(overrides: list[str]) -> list[Override]:
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"override: {hydra_reason(exc)}") from None
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(
                f"override {override.input_line}: a sweep runs one experiment per value: "
                "`dvc exp run --queue -S …`, then `dvc exp run --run-all`"
            )
    return parsed


def _is_group(override: Override, conf_dir: Path) -> bool:
    return (conf_dir / override.key_or_group).is_dir()


def _replace_sections(raw: DictConfig, groups: list[Override], conf_dir: Path) -> DictConfig:
    """Each group override's section, composed from ``conf/``, in place of the loaded one."""
    for override in groups:
        if (override.package or override.key_or_group) not in {*PIPELINE_SECTIONS, *OPS_SECTIONS}:
            raise ConfigError(f"override {override.input_line}: no section takes that option")
        if override.type == OverrideType.DEL:
            raise ConfigError(f"override {override.input_line}: a section cannot be removed")
    for root, sections in ((PIPELINE_ROOT, PIPELINE_SECTIONS), (OPS_ROOT, OPS_SECTIONS)):
        mine = [o for o in groups if (o.package or o.key_or_group) in sections]
        if mine:
            composed = compose(root, [str(o.input_line) for o in mine], conf_dir)
            for override in mine:
                package = override.package or override.key_or_group
                raw[package] = composed[package]
    return raw


def _set_value(raw: DictConfig, override: Override) -> None:
    key = override.key_or_group
    current = OmegaConf.select(raw, key, default=_ABSENT)
    if override.type == OverrideType.DEL:
        if current is _ABSENT:
            raise ConfigError(f"override {override.input_line}: there is no setting '{key}'")
        parent, _, leaf = key.rpartition(".")
        node: Any = OmegaConf.select(raw, parent) if parent else raw
        del node[leaf]
        return
    if current is _ABSENT and override.type == OverrideType.CHANGE:
        section = key.split(".")[0]
        known = ", ".join(raw[section]) if isinstance(raw.get(section), DictConfig) else None
        hint = f" ({section} has: {known})" if known else ""
        raise ConfigError(
            f"override {override.input_line}: there is no setting '{key}'{hint}; "
            f"to add one where a section takes any key, use +{override.input_line}"
        )
    OmegaConf.update(raw, key, override.value(), merge=False, force_add=True)


def apply_overrides(raw: DictConfig, overrides: list[str], conf_dir: Path = CONF_DIR) -> DictConfig:
    """``raw`` with the overrides applied on top: group options first, then settings."""
    parsed = _parse(overrides)
    groups = [o for o in parsed if _is_group(o, conf_dir)]
    raw = _replace_sections(raw, groups, conf_dir)
    for override in parsed:
        if override not in groups:
            _set_value(raw, override)
    return raw


def _is_ops(override: str) -> bool:
    parsed = _parse([override])[0]
    return (parsed.package or parsed.key_or_group).split(".")[0] in OPS_SECTIONS


def _mapping(path: Path) -> DictConfig:
    loaded = OmegaConf.load(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: not a mapping of settings")
    return loaded


def load_config(
    overrides: list[str] | None = None,
    *,
    params_file: Path | None = PARAMS_FILE,
    conf_dir: Path = CONF_DIR,
) -> Config:
    """The settings of a command: ``params.yaml`` + ``conf/ops.yaml`` + ``overrides`` on top.

    Without a ``params_file``, the pipeline's settings are ``conf/config.yaml`` as committed
    (what tests and benchmarks start from).
    """
    if params_file is None:
        raw, origin = compose(PIPELINE_ROOT, [], conf_dir), f"{conf_dir}/{PIPELINE_ROOT}.yaml"
    elif params_file.is_file():
        raw, origin = _mapping(params_file), str(params_file)
    else:
        raise ConfigError(f"{params_file} not found: run `make params` (or `dvc exp run`) first")
    raw.merge_with(compose(OPS_ROOT, [], conf_dir))
    origin += f" + {conf_dir}/{OPS_ROOT}.yaml"
    if overrides:
        raw = apply_overrides(raw, list(overrides), conf_dir)
        origin += f" with {' '.join(overrides)}"
    return to_typed(raw, origin=origin)


def write_params(
    overrides: list[str] | None = None, output: Path = PARAMS_FILE, conf_dir: Path = CONF_DIR
) -> None:
    """Compose ``conf/config.yaml`` with Hydra overrides into ``output``, as DVC does.

    Overrides of what follows the pipeline (``deploy.router_port=9080``) are no pipeline
    setting: they are left to the commands that read them, so one ``ARGS`` serves a whole
    ``make demo``. A misspelt key fails before ``output`` is touched.
    """
    overrides = [o for o in overrides or [] if not _is_ops(o)]
    # DVC's own writer, so params.yaml has the bytes `dvc exp run` writes. Imported here: a
    # stage only reads params.yaml and need not import DVC.
    from dvc.utils.hydra import compose_and_dump  # noqa: PLC0415

    # Keep the suffix: DVC picks its YAML writer by it.
    staged = output.with_name(f".{output.stem}.staged{output.suffix}")
    try:
        try:
            compose_and_dump(
                staged, str(conf_dir.resolve()), None, PIPELINE_ROOT, str(Path.cwd()),
                overrides or [],
            )  # fmt: skip
        except HydraException as exc:
            raise ConfigError(f"{conf_dir}/{PIPELINE_ROOT}.yaml: {hydra_reason(exc)}") from None
        written = _mapping(staged)
        stray = sorted(set(map(str, written.keys())) - set(PIPELINE_SECTIONS))
        if stray:
            raise ConfigError(
                f"{conf_dir}/{PIPELINE_ROOT}.yaml composes {stray}: only the pipeline's settings "
                f"belong in params.yaml; put the rest in {conf_dir}/{OPS_ROOT}.yaml"
            )
        to_typed(written, origin=f"{conf_dir}/{PIPELINE_ROOT}.yaml")
        staged.replace(output)
    finally:
        staged.unlink(missing_ok=True)


def _params(args: argparse.Namespace) -> int:
    write_params(args.overrides)
    log.info("wrote %s", PARAMS_FILE)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast params [overrides…]``."""
    doc = (
        "Compose conf/config.yaml into params.yaml, as `dvc exp run -S` does (DVC's Hydra "
        "integration): the pipeline's settings, which DVC tracks as the stages' params."
    )
    return command.run(command.parser("params", doc), _params, argv)


if __name__ == "__main__":
    sys.exit(main())
