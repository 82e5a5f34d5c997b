"""Whether ``dvc.lock`` records this commit's code, params and data (``check-lock`` command).

The release ships exactly what the pull request's report showed only if the merged commit's
``dvc.lock`` is current. On a fresh checkout DVC reports each cached stage output as ``not in
cache`` and the stages reading it as having a ``deleted`` dependency: that says only that the
pipeline has not run here, and is not staleness. A modified dependency, a changed parameter or
command, or a git-tracked output that differs from its recorded hash is; and so is a stage whose
code deps in ``dvc.yaml`` miss a module it imports, since DVC would not see that module change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from traffic_forecast.core import command
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.io import write_json_atomic
from traffic_forecast.core.proc import run_checked
from traffic_forecast.core.settings import load_config
from traffic_forecast.pipeline import deps

LOCK_FILE = "lock.json"  # in reports/: what the PR report and gate read


def cached_outputs(dvc_yaml: dict[str, Any]) -> set[str]:
    """The outputs DVC caches (``cache: false`` ones are in git and must match)."""
    found = set()
    for stage in dvc_yaml.get("stages", {}).values():
        for out in stage.get("outs", []):
            path, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
            if (options or {}).get("cache", True):
                found.add(path)
    return found


def stale(status: dict[str, Any], cached: set[str]) -> list[str]:
    """What ``dvc status --json`` reports beyond the absence of the cached outputs."""
    found = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                found.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                expected = {"changed outs": "not in cache", "changed deps": "deleted"}.get(kind)
                for path, state in paths.items():
                    if state != expected or path not in cached:
                        found.append(f"{stage}: {kind}: {path}: {state}")
    return found


def check() -> list[str]:
    """Run ``dvc status`` here and return what makes ``dvc.lock`` stale (empty: current)."""
    printed = run_checked(sys.executable, "-m", "dvc", "status", "--json")
    dvc_yaml = yaml.safe_load(Path("dvc.yaml").read_text(encoding="utf-8"))
    incomplete = [
        f"{stage}: dvc.yaml's code deps differ from the modules it imports (`make stage-deps`)"
        for stage in deps.sync(write=False)
    ]
    return incomplete + stale(json.loads(printed or "{}"), cached_outputs(dvc_yaml))


def _run(args: argparse.Namespace) -> int:
    problems = check()
    reports = Path(load_config(args.overrides).paths.reports_dir)
    write_json_atomic(reports / LOCK_FILE, {"current": not problems, "stale": problems})
    if not problems:
        print("dvc.lock records this commit's code, params and data")
        return 0
    message = (
        "dvc.lock does not record this commit (run `dvc repro` and commit dvc.lock):\n  "
        + "\n  ".join(problems)
    )
    if args.record_only:
        print(message)
        return 0
    raise PipelineInputError(message)


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast check-lock [--record-only]``."""
    parser = command.parser("check-lock", __doc__)
    parser.add_argument(
        "--record-only",
        action="store_true",
        help="write reports/lock.json for the PR report and exit 0 even when stale",
    )
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
