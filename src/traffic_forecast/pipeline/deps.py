"""Each stage's code dependencies in ``dvc.yaml``, derived from its imports (``stage-deps``).

A stage depends on every module of this package that running it imports, directly or through
another module, and on the ``__init__.py`` of each package on the way. Listing exactly those
files means a change to any of them re-runs the stage (and ``check-lock``, the release guard,
notices it), while a change elsewhere (the service, the deploy tooling) re-runs nothing.
``make repro`` writes them before it runs DVC; a test fails when ``dvc.yaml`` differs from them.
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
from pathlib import Path

from ruamel.yaml import YAML

from traffic_forecast.core import command
from traffic_forecast.core.errors import PipelineInputError

log = logging.getLogger(__name__)

PACKAGE = "traffic_forecast"
SOURCE_ROOT = Path("src")
DVC_YAML = Path("dvc.yaml")
STAGE_MODULE = PACKAGE + ".pipeline.{stage}"  # what `cmd: python -m …` runs


def module_file(module: str, root: Path = SOURCE_ROOT) -> Path | None:
    """The file of a module of this package (``None`` for anything else)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _packages_of(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(path: Path, module: str) -> set[str]:
    """The package's modules that ``path`` (the file of ``module``) imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package (or the package itself)
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                base = ".".join(anchor[: len(anchor) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # submodules
    return {name for name in found if name.startswith(PACKAGE)}


def closure(module: str, root: Path = SOURCE_ROOT) -> set[Path]:
    """Every file of the package that importing ``module`` runs."""
    files: set[Path] = set()
    pending = [module, *_packages_of(module)]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            continue
        files.add(path)
        for imported in imported_modules(path, name):
            pending += [imported, *_packages_of(imported)]
    return files


def stage_deps(stage: str, root: Path = SOURCE_ROOT) -> list[str]:
    """The code dependencies of a stage, as ``dvc.yaml`` lists them (sorted POSIX paths)."""
    files = closure(STAGE_MODULE.format(stage=stage), root)
    return sorted((Path(root.name) / path.relative_to(root)).as_posix() for path in files)


def _is_code(dep: str) -> bool:
    return dep.startswith(SOURCE_ROOT.as_posix() + "/")


def expected(dvc_yaml: dict[str, object], root: Path = SOURCE_ROOT) -> dict[str, list[str]]:
    """Per stage, its deps as they should be: data deps as written, then the code deps."""
    stages = dvc_yaml.get("stages")
    if not isinstance(stages, dict):
        raise PipelineInputError(f"{DVC_YAML}: no stages")
    wanted = {}
    for name, stage in stages.items():
        deps = [str(dep) for dep in stage.get("deps", [])]
        wanted[name] = [dep for dep in deps if not _is_code(dep)] + stage_deps(name, root)
    return wanted


def sync(path: Path = DVC_YAML, *, write: bool = True, root: Path = SOURCE_ROOT) -> list[str]:
    """The stages whose code deps differ from their imports; rewritten in place when ``write``.

    Comments and layout of ``dvc.yaml`` are kept (a round-trip YAML parser).
    """
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(path.read_text(encoding="utf-8"))
    changed = []
    for name, deps in expected(document, root).items():
        current = document["stages"][name].get("deps", [])
        if [str(dep) for dep in current] != deps:
            changed.append(name)
            current.clear()
            current.extend(deps)
    if changed and write:
        with path.open("w", encoding="utf-8") as out:
            yaml.dump(document, out)
    return changed


def _run(args: argparse.Namespace) -> int:
    changed = sync(write=not args.check)
    if not changed:
        log.info("%s: every stage's code deps match its imports", DVC_YAML)
        return 0
    if args.check:
        log.error(
            "%s: the code deps of %s differ from their imports: run `traffic-forecast "
            "stage-deps` and commit dvc.yaml",
            DVC_YAML,
            ", ".join(changed),
        )
        return 1
    log.info("%s: wrote the code deps of %s", DVC_YAML, ", ".join(changed))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast stage-deps [--check]``."""
    parser = command.parser("stage-deps", __doc__, overrides=False)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when dvc.yaml differs, without writing it"
    )
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
