"""``traffic-forecast retrain``: new actuals into a new data version, retrain, propose it as a PR.

When ``reports/monitoring.json`` asks for it (drift, decay, or the cadence): the new raw tables
are appended to ``data/raw`` (a new DVC data version: the old one stays in the cache and the
remote), sale kinds the model did not know are added to the data config, the pipeline reruns
with ``dvc exp run``, data and outputs are pushed, and the change is proposed for review:
``cml pr create`` in CI, a local branch otherwise. A person merges; the PR workflow reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from traffic_forecast.core import command
from traffic_forecast.core.config import Config, PathsConfig
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.core.io import write_text_atomic
from traffic_forecast.core.lineage import data_version
from traffic_forecast.core.proc import run_checked
from traffic_forecast.core.settings import load_config, write_params
from traffic_forecast.data.remote import push_refusal
from traffic_forecast.data.schemas import SaleEventsRaw
from traffic_forecast.data.validation import raw_files
from traffic_forecast.monitor.watch import REPORT_JSON
from traffic_forecast.pipeline import outputs

log = logging.getLogger(__name__)

RETRAIN_MD = "retrain.md"
DATA_CONF_DIR = Path("conf/data")
PROPOSED = ["data.dvc", "dvc.lock", "params.yaml", "conf/data", "reports"]


def merge_table(old: pd.DataFrame, new: pd.DataFrame, key: list[str], order: str) -> pd.DataFrame:
    """``old`` with the rows of ``new`` whose ``key`` it lacks, sorted by ``order``."""
    seen = set(old[key].astype(str).agg("|".join, axis=1))
    added = new[~new[key].astype(str).agg("|".join, axis=1).isin(seen)]
    return pd.concat([old, added], ignore_index=True).sort_values(order, kind="stable")


def ingest(cfg: Config, incoming: Path) -> dict[str, int]:
    """Append the incoming raw tables to ``data/raw``; rows added per file."""
    stamp = cfg.data.timestamp_column
    # Hours are their own key; a sale is known by its name and start (ids are per file).
    keys = {
        "traffic": ([stamp], stamp),
        "infrastructure": (["timestamp"], "timestamp"),
        "sale_events": ([SaleEventsRaw.name, SaleEventsRaw.start], SaleEventsRaw.start),
    }
    added = {}
    for table, file in raw_files(cfg.data).items():
        source = incoming / Path(file).name
        if not source.is_file():
            continue
        old = pd.read_csv(file, dtype=str, keep_default_na=False)
        new = pd.read_csv(source, dtype=str, keep_default_na=False)
        merged = merge_table(old, new, *keys[table])
        if table == "sale_events":
            merged[SaleEventsRaw.event_id] = [str(i) for i in range(1, len(merged) + 1)]
        added[file] = len(merged) - len(old)
        target = Path(file)
        target.unlink()  # never write through a link into the DVC cache
        merged.to_csv(target, index=False)
    return added


def add_sale_kinds(cfg: Config, kinds: list[str]) -> Path | None:
    """Add ``kinds`` to the ``sale_kinds`` list of the data config file in use."""
    if not kinds:
        return None
    path = DATA_CONF_DIR / f"{cfg.data.name}.yaml"
    text = path.read_text(encoding="utf-8")
    known = [*cfg.data.sale_kinds, *(k for k in kinds if k not in cfg.data.sale_kinds)]
    updated, found = re.subn(
        r"^sale_kinds: \[.*\]", f"sale_kinds: [{', '.join(known)}]", text, flags=re.MULTILINE
    )
    if found != 1:
        raise PipelineInputError(f"{path}: no one-line `sale_kinds: [...]` to extend with {kinds}")
    path.write_text(updated, encoding="utf-8")
    return path


def _dvc(*args: str) -> str:
    return run_checked(sys.executable, "-m", "dvc", *args)


def new_period_error(paths: PathsConfig, since: pd.Timestamp) -> float | None:
    """The retrained backtest's MAPE on the folds after ``since`` (the new period), in percent."""
    path = outputs.FORECAST_PLOT_DATA.path(paths)
    if not path.is_file():
        return None
    folds = pd.read_csv(path, parse_dates=["timestamp"])
    new = folds[folds["timestamp"] > since]
    if new.empty:
        return None
    return float(
        ((new["model"] - new["actual"]).abs() / new["actual"].clip(lower=1.0)).mean() * 100
    )


def summary(
    monitoring: dict[str, Any], paths: PathsConfig, added: dict[str, int], kinds_file: Path | None
) -> str:
    """The retrain proposal, for the PR body and ``reports/retrain.md``."""
    metrics = outputs.read_json(outputs.METRICS, paths)
    since = pd.Timestamp(monitoring["training_end"])
    live = monitoring["quality"]
    candidate = new_period_error(paths, since)
    lines = [
        "## Retrain proposed by the monitor",
        "",
        f"Why: {'; '.join(monitoring['reasons']) or 'requested'}.",
        "",
        "- new data: " + ", ".join(f"`{f}` +{n:,} rows" for f, n in added.items()),
        f"- data version: `{data_version()}`",
    ]
    if kinds_file is not None:
        lines.append(
            f"- new sale kinds {', '.join(monitoring['new_sale_kinds'])} added to `{kinds_file}`"
        )
    lines += [
        "",
        f"**On the new period** (after {since:%Y-%m-%d %H:%M}):",
        "",
        "| | MAPE | how it was measured |",
        "|---|---:|---|",
    ]
    if live.get("mape") is not None:
        lines.append(
            f"| live model | {live['mape']:.1f} % | served forecast vs actuals, {live['hours']} h |"
        )
    if candidate is not None:
        lines.append(
            f"| retrained | {candidate:.1f} % | backtest folds inside the new period, 24 h ahead |"
        )
    lines += [
        "",
        f"Retrained backtest: MASE {metrics['model']['mase']:.3f} vs seasonal naive "
        f"{metrics['baseline']['mase']:.3f} over {metrics['backtest']['folds']} folds. The PR "
        "report compares it with the base branch; the monitor's report is in the run's artifact.",
    ]
    return "\n".join(lines) + "\n"


def retrain(cfg: Config, incoming: Path, *, propose: bool, force: bool) -> str | None:
    """Ingest, retrain and propose; the proposal's text, or None when no retrain is due."""
    reports = Path(cfg.paths.reports_dir)
    path = reports / REPORT_JSON
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: run `traffic-forecast monitor` first")
    monitoring = json.loads(path.read_text(encoding="utf-8"))
    if not monitoring["retrain"] and not force:
        log.info("no retrain due: %s", monitoring["headline"])
        return None
    if refusal := push_refusal(os.environ):  # checked first: it pushes only after retraining
        raise PipelineInputError(f"retrain pushes a new data version to the remote: {refusal}")
    added = ingest(cfg, incoming)
    kinds_file = add_sale_kinds(cfg, monitoring["new_sale_kinds"])
    write_params()  # the data config may have new sale kinds: compose it as dvc exp run will
    _dvc("commit", "--force", "data.dvc")  # the new data version, into the cache
    log.info("retraining on %s: dvc exp run", data_version())
    _dvc("exp", "run")
    _dvc("push")
    text = summary(monitoring, cfg.paths, added, kinds_file)
    write_text_atomic(reports / RETRAIN_MD, text)
    branch = f"retrain/{data_version()[:12]}"
    title = f"Retrain on data {data_version()[:12]}: {monitoring['headline']}"
    if propose:
        run_checked("cml", "pr", "create", "--branch", branch, "--title", title, "--body", text,
             "--message", title, *PROPOSED)  # fmt: skip
    else:
        run_checked("git", "checkout", "-B", branch)
        run_checked("git", "add", "--", *PROPOSED)
        run_checked("git", "commit", "--quiet", "-m", title)
        log.info("proposed on the local branch %s (in CI: a pull request, `--propose`)", branch)
    return text


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    text = retrain(
        cfg, args.actuals or Path(cfg.monitor.actuals_dir), propose=args.propose, force=args.force
    )
    print(text or "no retrain due")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``traffic-forecast retrain [--actuals DIR] [--propose] [--force] [overrides…]``."""
    parser = command.parser("retrain", __doc__)
    parser.add_argument("--actuals", type=Path, default=None, help="default: monitor.actuals_dir")
    parser.add_argument("--propose", action="store_true", help="open the PR with `cml pr create`")
    parser.add_argument("--force", action="store_true", help="retrain even if none is due")
    return command.run(parser, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
