"""The report's thin I/O: read the PR's files, the base's through git and DVC, write the report."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from traffic_forecast.core import command
from traffic_forecast.core.config import CapacityConfig, Config, PathsConfig
from traffic_forecast.core.errors import PipelineInputError, TrafficForecastError
from traffic_forecast.core.io import write_json_atomic, write_text_atomic
from traffic_forecast.core.lineage import DATA_DVC, data_version
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.remote import REMOTE_FILE
from traffic_forecast.forecasting.capacity import learn_capacity
from traffic_forecast.pipeline import outputs
from traffic_forecast.report.fleet import fleet_checks, fleet_verdict, parse_fleet_metrics
from traffic_forecast.report.gate import apply_gate, lock_checks
from traffic_forecast.report.lockcheck import LOCK_FILE
from traffic_forecast.report.notes import remote_line, run_url
from traffic_forecast.report.redact import private_values
from traffic_forecast.report.render import ReportInputs, render_json, render_markdown
from traffic_forecast.report.sections import CapacityImpact

log = logging.getLogger(__name__)

DEFAULT_BASE = "main"


def _run(args: list[str]) -> str | None:
    """A command's stdout, or None when it fails."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        log.debug("%s failed: %s", " ".join(args), getattr(exc, "stderr", exc))
        return None
    return done.stdout


def git_show(ref: str, path: str) -> str | None:
    """A file's content at ``ref``, or None where it does not exist."""
    return _run(["git", "show", f"{ref}:{path}"])


def _dvc(*args: str) -> dict[str, Any]:
    out = _run([sys.executable, "-m", "dvc", *args, "--json"])
    try:
        parsed = json.loads(out) if out else {}
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def params_changed(base: str) -> dict[str, tuple[Any, Any]]:
    """``dvc params diff <base>``: changed keys (every params file) as (base, PR)."""
    changed: dict[str, tuple[Any, Any]] = {}
    for file, keys in _dvc("params", "diff", base).items():
        prefix = "" if file == "params.yaml" else f"{file}:"
        for key, change in keys.items():
            changed[prefix + key] = (change.get("old"), change.get("new"))
    return changed


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def base_metrics(base: str, paths: PathsConfig) -> dict[str, Any] | None:
    """The base's committed metrics: ``dvc metrics diff``, else ``git show``."""
    metrics_file = outputs.METRICS.path(paths).as_posix()
    diff = _dvc("metrics", "diff", base, "--all").get(metrics_file, {})
    # A key only the PR has comes with old None: leave it out, or a base without `selection`
    # would seem to have one (every candidate with no figures).
    old = {key: change["old"] for key, change in diff.items() if change.get("old") is not None}
    if old:
        nested = _unflatten(old)
        if "model" in nested:
            return nested
    text = git_show(base, metrics_file)
    return json.loads(text) if text else None


def _read_csv(text: str | None) -> pd.DataFrame | None:
    return pd.read_csv(io.StringIO(text)) if text else None


def _file(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _base_data_version(base: str) -> str | None:
    text = git_show(base, str(DATA_DVC))
    if text is None:
        return None
    outs = (yaml.safe_load(text) or {}).get("outs", [])
    return str(outs[0]["md5"]) if outs else "unknown"


def _peak(forecast: pd.DataFrame | None) -> tuple[float, str] | None:
    if forecast is None:
        return None
    for column in ("upper", "model"):
        if column in forecast and forecast[column].notna().any():
            return float(forecast[column].max()), column
    return None


def capacity_impact(
    capacity_cfg: CapacityConfig,
    paths: PathsConfig,
    forecast_pr: pd.DataFrame | None,
    forecast_base: pd.DataFrame | None,
) -> tuple[CapacityImpact | None, str]:
    """Instances at the peak, PR vs base, or why the section is skipped."""
    traffic, infra = outputs.TRAFFIC.path(paths), outputs.INFRASTRUCTURE.path(paths)
    if not infra.is_file() or not traffic.is_file():
        return None, (
            f"Skipped: no infrastructure table (`{infra}`), so no per-instance capacity to learn "
            "(bring-your-own data without `infrastructure.csv`, or `dvc repro validate` not run)."
        )
    peak = _peak(forecast_pr)
    if peak is None:
        return None, "Skipped: no forecast in `reports/plots/forecast.csv`."
    try:
        capacity = learn_capacity(
            pd.read_parquet(traffic),
            pd.read_parquet(infra),
            window_hours=capacity_cfg.window_hours,
            min_cpu=capacity_cfg.min_cpu,
        )
    except TrafficForecastError as exc:
        return None, f"Skipped: {exc}."
    base_peak = None
    if forecast_base is not None and peak[1] in forecast_base:
        base_peak = float(forecast_base[peak[1]].max())  # same column on both sides
    impact = CapacityImpact(capacity, capacity_cfg.target_utilisation, peak[0], base_peak, peak[1])
    return impact, ""


def _json(text: str | None) -> dict[str, Any] | None:
    parsed = json.loads(text) if text else None
    return parsed if isinstance(parsed, dict) else None


def remote_record(reports: Path) -> dict[str, Any] | None:
    """What ``traffic-forecast remote`` recorded about the DVC remote of this run (URLs too)."""
    return _json(_file(reports / REMOTE_FILE))


def fleet_metrics(paths: PathsConfig, base: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The per-series fleet metrics of the PR (workspace) and of ``base`` (git), where they exist.

    A PR table that breaks the contract stops the report; a base's is only left out (with a
    warning), as it may predate the contract.
    """
    path = outputs.FLEET_METRICS.path(paths)
    text = _file(path)
    pr = None if text is None else parse_fleet_metrics(text, str(path))
    base_text = git_show(base, path.as_posix())
    try:
        theirs = None if base_text is None else parse_fleet_metrics(base_text, f"{base}:{path}")
    except PipelineInputError as exc:
        log.warning("base fleet metrics left out: %s", exc)
        theirs = None
    return pr, theirs


@dataclass(frozen=True)
class PullRequest:
    """What the report takes from a GitHub ``pull_request`` event: the base commit, the labels."""

    base_sha: str
    labels: list[str]


def pull_request_event(path: str | None) -> PullRequest | None:
    """The pull request in a GitHub event payload (``GITHUB_EVENT_PATH``), if it is one.

    Read from the file, never from the workflow's command line: branch names and labels are
    chosen by whoever opens the pull request, and must not pass through a shell.
    """
    if not path or not Path(path).is_file():
        return None
    pull = (_json(Path(path).read_text(encoding="utf-8")) or {}).get("pull_request")
    if not isinstance(pull, dict):
        return None
    labels = [str(label.get("name", "")) for label in pull.get("labels", [])]
    return PullRequest(str(pull["base"]["sha"]), [label for label in labels if label])


def _ref_label(ref: str) -> str:
    """``main (1a2b3c4)``, or the short hash alone when the ref is a commit hash."""
    short = (_run(["git", "rev-parse", "--short", f"{ref}^{{commit}}"]) or "").strip()
    return short if not short or ref.startswith(short) else f"{ref} ({short})"


def gather(base: str, labels: list[str] | None, cfg: Config) -> ReportInputs:
    """Read everything the report shows, for the PR (workspace) and ``base`` (git, DVC).

    ``labels`` are the pull request's, or None when this run was not told them.
    """
    if _run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"]) is None:
        raise PipelineInputError(f"base {base!r} is not a commit here: fetch it first")
    paths = cfg.paths
    reports = Path(paths.reports_dir)
    validation = outputs.read_json(outputs.VALIDATION_JSON, paths)
    metrics_text = _file(outputs.METRICS.path(paths))
    pr_metrics = json.loads(metrics_text) if metrics_text else None
    base_m = base_metrics(base, paths)
    base_validation = _json(git_show(base, outputs.VALIDATION_JSON.path(paths).as_posix()))
    verdict = None
    base_version = _base_data_version(base)
    fleet_pr, fleet_base = fleet_metrics(paths, base)
    if validation.get("passed"):
        lock = _json(_file(reports / LOCK_FILE))
        same = base_version in {None, data_version()}
        if pr_metrics is not None:
            verdict = apply_gate(pr_metrics, base_m, cfg.gate, labels or [], lock, same_data=same)
        if fleet_pr is not None:
            checks = fleet_checks(fleet_pr, fleet_base, cfg.gate, same_data=same)
            locked = lock_checks(cfg.gate, lock)
            verdict = fleet_verdict(verdict, checks, cfg.gate, labels or [], locked)
    forecast_pr = _read_csv(_file(outputs.FORECAST_PLOT_DATA.path(paths)))
    forecast_base = _read_csv(git_show(base, outputs.FORECAST_PLOT_DATA.path(paths).as_posix()))
    impact, reason = capacity_impact(cfg.capacity, paths, forecast_pr, forecast_base)
    explain = _file(outputs.EXPLAIN_CSV.path(paths))
    commit = (_run(["git", "rev-parse", "--short", "HEAD"]) or "unknown").strip()
    remote = remote_record(reports)
    return ReportInputs(
        base_ref=_ref_label(base),
        commit=commit,
        validation=validation,
        validation_md=_file(outputs.VALIDATION_MD.path(paths)) or "",
        data_version_pr=data_version(),
        data_version_base=base_version,
        base_validation=base_validation,
        params_changed=params_changed(base),
        pr_metrics=pr_metrics,
        base_metrics=base_m,
        nominal_coverage=cfg.backtest.coverage,
        verdict=verdict,
        forecast_pr=forecast_pr,
        forecast_base=forecast_base,
        horizon_pr=_read_csv(_file(outputs.HORIZON_PLOT_DATA.path(paths))),
        horizon_base=_read_csv(git_show(base, outputs.HORIZON_PLOT_DATA.path(paths).as_posix())),
        capacity=impact,
        capacity_reason=reason,
        explain=_read_csv(explain),
        fleet_pr=fleet_pr,
        fleet_base=fleet_base,
        gate=cfg.gate,
        remote_note=remote_line(remote),
        override_label=cfg.gate.override_label,
        labels=None if labels is None else tuple(labels),
        run_url=run_url(os.environ),
        private=private_values(os.environ, remote, Path.cwd(), Path.home()),
    )


def _report(args: argparse.Namespace) -> int:
    event = pull_request_event(os.environ.get("GITHUB_EVENT_PATH"))
    base = args.base or (event.base_sha if event else DEFAULT_BASE)
    labels: list[str] | None = event.labels if event else None  # None: not known here
    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    cfg = load_config()
    inputs = gather(base, labels, cfg)
    reports = Path(cfg.paths.reports_dir)
    write_text_atomic(reports / "report.md", render_markdown(inputs))
    write_json_atomic(reports / "report.json", render_json(inputs))
    log.info("%s\nwrote %s", render_json(inputs)["headline"], reports / "report.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast report [--base <ref>] [--labels a,b]``."""
    parser = command.parser("report", __doc__, overrides=False)
    parser.add_argument(
        "--base",
        default=None,
        help=f"git ref to compare with (default: the pull request's base commit in "
        f"GITHUB_EVENT_PATH, else {DEFAULT_BASE})",
    )
    parser.add_argument(
        "--labels", default=None, help="PR labels, comma-separated (default: from the event)"
    )
    return command.run(parser, _report, argv)


if __name__ == "__main__":
    sys.exit(main())
