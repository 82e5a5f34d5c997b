"""Compose ``conf/`` into ``params.yaml`` exactly as DVC's Hydra integration does.

``dvc exp run -S model=ets`` writes ``params.yaml`` itself; ``dvc repro`` reads the committed
file. This command keeps the committed file in step with ``conf/`` (a test fails when not).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dvc.utils.hydra import compose_and_dump

from traffic_forecast.cli import run_stage
from traffic_forecast.config import CONF_DIR, PARAMS_FILE, load_params


def write_params(
    overrides: list[str] | None = None, output: Path = PARAMS_FILE, conf_dir: Path = CONF_DIR
) -> None:
    """Compose ``conf_dir`` with Hydra overrides into ``output``; check it against the schema."""
    # Keep the suffix: DVC picks its YAML writer by it, and params.yaml must match DVC's bytes.
    staged = output.with_name(f".{output.stem}.staged{output.suffix}")
    try:
        compose_and_dump(
            staged, str(conf_dir.resolve()), None, "config", str(Path.cwd()), overrides or []
        )
        load_params(staged)  # a misspelt key fails here, and params.yaml stays as it was
        staged.replace(output)
    finally:
        staged.unlink(missing_ok=True)


def _main(overrides: list[str]) -> int:
    write_params(overrides)
    print(f"wrote {PARAMS_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast params [overrides…]``."""
    return run_stage(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
