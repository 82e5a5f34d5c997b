"""``traffic-forecast bento``: save the model, then build the Bento (service + that model).

The Bento's Python requirements are the locked ones (``uv export`` of ``uv.lock``), so the
container built from it on a runner with Docker (``bentoml containerize``) runs what the tests
ran. Prints the Bento tag on stdout, for scripts (the release workflow, ``make deploy``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import bentoml

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.proc import cause_first, run_checked
from traffic_forecast.core.settings import load_config
from traffic_forecast.serving import package

log = logging.getLogger(__name__)

BENTOFILE = Path("bentofile.yaml")
REQUIREMENTS = Path("build/requirements.txt")  # bentofile.yaml's python.requirements_txt


def export_requirements(output: Path = REQUIREMENTS) -> None:
    """The locked runtime dependencies, without the project itself (the Bento has its code)."""
    uv = shutil.which("uv")
    if uv is None:
        raise PipelineInputError("uv is not on PATH: run through make (`make bento`)")
    output.parent.mkdir(parents=True, exist_ok=True)
    run_checked(uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
                "--quiet", "-o", str(output))  # fmt: skip


def model_of(bento_tag: str) -> str:
    """The model version a Bento was built with."""
    services = bentoml.get(bento_tag).info.services
    return str(services[0].models[0].tag)


def build_bento(name: str | None = None) -> str:
    """Build a Bento from bentofile.yaml; it takes the newest model in the store.

    In a process of its own: BentoML resolves the service's ``BentoModel`` once per process
    and keeps it, so a second build here would package the first build's model again.
    ``name``: another Bento name than the service's (an experiment's challenger), so that
    ``traffic-forecast:latest`` stays the pipeline's newest.
    """
    export_requirements()
    named = ["--name", name] if name else []
    printed = run_checked(
        sys.executable, "-m", "bentoml", "build", "-f", str(BENTOFILE), *named,
        "--output", "tag", ".",
    )  # fmt: skip
    tags = re.findall(r"__tag__:(\S+)", printed)
    if not tags:
        raise PipelineInputError(f"bentoml build printed no Bento tag: {cause_first(printed)}")
    return str(tags[-1])


def build(
    cfg: Config, edit: Callable[[Path], None] | None = None, name: str | None = None
) -> tuple[str, str]:
    """Save a new model version and build a Bento with it; (model tag, Bento tag).

    ``edit``: changes the packaged folder first (`package.save`); ``name``: the Bento's, when
    not the service's (`build_bento`).
    """
    model_tag = package.save(cfg, edit)
    bento_tag = build_bento(name)
    if model_of(bento_tag) != model_tag:  # another model was saved meanwhile
        raise PipelineInputError(f"{bento_tag} holds {model_of(bento_tag)}, not {model_tag}")
    return model_tag, bento_tag


def image_name(bento_tag: str, registry: str) -> str:
    """``<registry>/<name>:<version>`` for a Bento tag (``name:version``)."""
    name, version = bento_tag.split(":", 1)
    return f"{registry.rstrip('/')}/{name}:{version}"


def container_commands(bento_tag: str, registry: str) -> list[list[str]]:
    """Build the image with BentoML and Docker, then push it (needs a Docker engine)."""
    image = image_name(bento_tag, registry)
    return [
        [sys.executable, "-m", "bentoml", "containerize", bento_tag, "--image-tag", image],
        ["docker", "push", image],
    ]


def _container(args: argparse.Namespace) -> int:
    registry = os.environ.get("REGISTRY")
    if not registry:
        raise PipelineInputError("REGISTRY is not set (e.g. ghcr.io/<owner>)")
    tag = args.bento
    if tag.endswith(".bento") and Path(tag).is_file():
        tag = str(bentoml.import_bento(str(Path(tag).resolve())).tag)
    for step in container_commands(tag, registry):
        run_checked(*step)
    print(image_name(tag, registry))
    return 0


def container_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast container <bento>``."""
    parser = command.parser(
        "container",
        "bentoml containerize a Bento and push the image to $REGISTRY: the step that runs on "
        "GitHub's runners (Docker), not on the machines without a Docker engine.",
        overrides=False,
    )
    parser.add_argument("bento", help="a Bento tag, or an exported .bento file")
    return command.run(parser, _container, argv)


def _run(args: argparse.Namespace) -> int:
    model_tag, bento_tag = build(load_config(args.overrides))
    log.info("built %s with model %s", bento_tag, model_tag)
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        bentoml.export_bento(bento_tag, str(args.export.resolve()))  # BentoML: absolute only
        log.info("exported %s to %s", bento_tag, args.export)
    print(bento_tag)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast bento [--export FILE] [overrides…]``."""
    parser = command.parser("bento", __doc__)
    parser.add_argument("--export", type=Path, help="also export the Bento to this file")
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
