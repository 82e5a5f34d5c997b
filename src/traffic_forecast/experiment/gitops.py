"""The experiment's GitOps side: the daily analysis written, posted with CML, a promotion proposed.

``experiment analyse`` scores what the deployment logged against the hours that came and writes
``reports/experiment.md`` and ``.json``; ``experiment post`` puts the report on the challenger's
pull request (else its tracking issue, else its commit) as one comment, updated each day;
``experiment promote`` proposes the challenger as the release in a pull request a person merges.
Nothing here switches traffic: the router changes only when a release is deployed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from traffic_forecast.core import command
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import (
    DataValidationError,
    PipelineInputError,
    TrafficForecastError,
)
from traffic_forecast.core.io import write_text_atomic
from traffic_forecast.core.proc import run_checked
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.schemas import TrafficRaw
from traffic_forecast.data.store import ObservationStore, StoreUnavailableError, shown_url
from traffic_forecast.data.validation import read_raw, validate_raw
from traffic_forecast.data.validation_report import render_markdown as failures_table
from traffic_forecast.deploy.slots import prediction_log_path
from traffic_forecast.deploy.state import observations_url, state_dir_of
from traffic_forecast.experiment import analysis, report, run
from traffic_forecast.experiment.record import Experiment
from traffic_forecast.serving import predictions

log = logging.getLogger(__name__)

REPORT_MD, REPORT_JSON = "experiment.md", "experiment.json"
# The branch the release workflow deploys from (the Makefile's RELEASE_REF).
RELEASE_BRANCH = "release"
WATERMARK = "traffic-forecast experiment {id}"  # one comment per experiment, updated daily


class NoExperimentError(TrafficForecastError):
    """The deployment has no experiment to analyse, post or promote."""


def _experiment(cfg: Config) -> Experiment:
    state_dir = state_dir_of(cfg.deploy.state_dir)
    found = run.current(state_dir)
    if found is None:
        raise NoExperimentError(
            f"no experiment in {state_dir / 'state.json'}: `traffic-forecast experiment start "
            "<challenger bento>` starts one (TRAFFIC_FORECAST_DEPLOY_DIR names the deploy host's "
            "state directory)"
        )
    return found


# -- analyse ----------------------------------------------------------------------------------


def prediction_logs(cfg: Config) -> list[Path]:
    """``monitor.prediction_logs``, else every colour's log (any worker, rotated ones too)."""
    pattern = cfg.monitor.prediction_logs or (
        str(prediction_log_path(state_dir_of(cfg.deploy.state_dir), "*")) + "*"
    )
    return predictions.log_files(pattern)


def raw_traffic(cfg: Config) -> pd.Series:
    """The raw table's hours (``data.traffic_file``, validated), empty when the file is absent."""
    traffic_only = dataclasses.replace(cfg.data, sale_events_file=None, infrastructure_file=None)
    if not Path(traffic_only.traffic_file).is_file():
        log.warning(
            "%s not found (`make data`): actuals from the store only", cfg.data.traffic_file
        )
        return pd.Series(dtype=float)
    texts, read_failures = read_raw(traffic_only)
    result = validate_raw(traffic_only, texts, read_failures)
    if not result.passed:
        raise DataValidationError(
            f"{cfg.data.traffic_file} fails validation:\n"
            + failures_table(result.failures, result.rows, [])
        )
    table = result.tables["traffic"]
    return pd.Series(
        table[TrafficRaw.target].to_numpy(dtype=float),
        index=pd.DatetimeIndex(table[TrafficRaw.timestamp]),
    )


def stored_traffic(url: str) -> pd.Series:
    """Every hour's current value in the observation store (empty when there is no store)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return pd.Series(dtype=float)  # no service stored an hour here: do not create the file
    store = ObservationStore(url)
    try:
        current = store.current()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreUnavailableError(f"{shown_url(url)}: {reason}") from None
    finally:
        store.close()
    return pd.Series(
        current[TrafficRaw.target].to_numpy(dtype=float),
        index=pd.DatetimeIndex(current[TrafficRaw.timestamp]),
    )


def combined_actuals(raw: pd.Series, stored: pd.Series) -> pd.Series:
    """One hourly series: the raw history and the stored hours, the store's value winning.

    The store holds the corrections received live; the raw table is the versioned history.
    """
    if stored.empty:
        combined = raw
    elif raw.empty:
        combined = stored
    else:
        combined = stored.combine_first(raw)
    return combined.sort_index().astype(float)


def analyse(cfg: Config, reports: Path) -> analysis.Analysis:
    """Score the experiment on the hours that came; write the report; the analysis."""
    experiment = _experiment(cfg)
    files = prediction_logs(cfg)
    entries = predictions.read(files)
    actuals = combined_actuals(raw_traffic(cfg), stored_traffic(observations_url(cfg)))
    if actuals.empty:
        raise PipelineInputError(
            f"no actual hour: neither {cfg.data.traffic_file} (`make data`) nor the observation "
            f"store {shown_url(observations_url(cfg))} holds one"
        )
    log.info(
        "experiment %s: %d logged forecasts in %d files, actuals %s → %s",
        experiment.id, len(entries), len(files), actuals.index[0], actuals.index[-1],
    )  # fmt: skip
    # The settings declared when it started decide it, not today's conf/experiment.
    result = analysis.analyse(entries, actuals, experiment, experiment.config(cfg.experiment))
    report.write(result, reports / REPORT_MD, reports / REPORT_JSON)
    return result


def _analyse(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    reports = Path(cfg.paths.reports_dir)
    result = analyse(cfg, reports)
    print(f"decision: {result.verdict.decision} ({result.verdict.reason})")
    print(f"report: {reports / REPORT_MD}")
    return 0  # the decision is data for the next steps, not a failure


def analyse_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast experiment analyse [overrides…]``: reports/experiment.md and .json."""
    parser = command.parser("experiment analyse", analyse_main.__doc__)
    return command.run(parser, _analyse, argv)


# -- post -------------------------------------------------------------------------------------


def comment_target(experiment: Experiment) -> str:
    """Where the report goes: the challenger's PR, else the tracking issue, else its commit."""
    if experiment.pull_request is not None:
        return f"pr/{experiment.pull_request}"
    if experiment.issue is not None:
        return f"issue/{experiment.issue}"
    if experiment.challenger.git_commit:
        return f"commit/{experiment.challenger.git_commit}"
    raise NoExperimentError(
        f"experiment {experiment.id} names no pull request, issue or challenger commit to post on"
    )


def _cml() -> str:
    found = shutil.which("cml")
    if found is None:
        raise PipelineInputError(
            "cml is not on PATH: the experiment workflow installs it (iterative/setup-cml); "
            "locally, read the report in reports/ instead"
        )
    return found


def _report_file(reports: Path, name: str) -> Path:
    path = reports / name
    if not path.is_file():
        raise PipelineInputError(f"{path} not found: run `traffic-forecast experiment analyse`")
    return path


def post(cfg: Config, reports: Path) -> str:
    """Post (or update) the report's comment with CML; where it went."""
    experiment = _experiment(cfg)
    path = _report_file(reports, REPORT_MD)
    target = comment_target(experiment)
    # --no-publish: CML would upload local images to a third-party host; the report has none.
    run_checked(
        _cml(), "comment", "update", f"--target={target}",
        f"--watermark-title={WATERMARK.format(id=experiment.id)}", "--no-publish", str(path),
    )  # fmt: skip
    return target


def _post(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    print(f"posted on {post(cfg, Path(cfg.paths.reports_dir))}")
    return 0


def post_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast experiment post``: reports/experiment.md as one comment, updated daily."""
    parser = command.parser("experiment post", post_main.__doc__)
    return command.run(parser, _post, argv)


# -- promote ----------------------------------------------------------------------------------


def _git(*args: str, env: dict[str, str] | None = None) -> str:
    return run_checked("git", *args, env=env).strip()


def _commit_with_report(base: str, report_path: Path, text: str, message: str) -> str:
    """A commit of ``base`` plus ``text`` at ``report_path``, the work tree and index untouched."""
    inside = Path(os.path.relpath(report_path.resolve(), _git("rev-parse", "--show-toplevel")))
    with tempfile.TemporaryDirectory(prefix="experiment-index-") as scratch:
        written = Path(scratch) / "report.md"
        written.write_text(text, encoding="utf-8")
        blob = _git("hash-object", "-w", "--", str(written))
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git("read-tree", base, env=env)
        _git("update-index", "--add", "--cacheinfo", f"100644,{blob},{inside.as_posix()}", env=env)
        tree = _git("write-tree", env=env)
    return _git("commit-tree", tree, "-p", base, "-m", message)


def _challenger_commit(experiment: Experiment) -> str:
    commit = experiment.challenger.git_commit
    if not commit:
        raise PipelineInputError(
            f"experiment {experiment.id}: the challenger's git commit is unknown (its Bento "
            "records none), so no release branch can be made from it"
        )
    try:
        _git("cat-file", "-e", f"{commit}^{{commit}}")
    except PipelineInputError:
        raise PipelineInputError(
            f"the challenger's commit {commit} is not in this clone: push it (its pull request's "
            "branch), and check out every branch (the workflow's fetch-depth: 0)"
        ) from None
    return commit


def record_path(reports: Path, experiment_id: str) -> Path:
    """Where the promotion branch keeps the experiment's report: ``reports/experiments/<id>.md``."""
    return reports / "experiments" / f"{experiment_id}.md"


def proposal_title(experiment: Experiment) -> str:
    """The pull request's title and commit message."""
    return (
        f"Release the challenger {experiment.challenger.model}: it beat the champion "
        f"{experiment.champion.model} on live traffic (experiment {experiment.id})"
    )


def promote(cfg: Config, reports: Path, *, propose: bool, target_branch: str) -> str:
    """Propose the challenger as the release when the analysis says so; what was done."""
    payload = json.loads(_report_file(reports, REPORT_JSON).read_text(encoding="utf-8"))
    decision = payload["verdict"]["decision"]
    if decision != analysis.PROMOTE:
        return f"nothing to promote: the decision is {decision!r}"
    experiment = _experiment(cfg)
    if payload["experiment"] != experiment.id:  # a report left from an earlier experiment
        raise PipelineInputError(
            f"{reports / REPORT_JSON} is experiment {payload['experiment']}'s, the deployment's "
            f"is {experiment.id}: run `traffic-forecast experiment analyse` first"
        )
    commit = _challenger_commit(experiment)
    text = _report_file(reports, REPORT_MD).read_text(encoding="utf-8")
    # The decision's record in the release's history: reports/experiment.md is the day's
    # working copy (ignored by git), this one is committed on the branch.
    path = record_path(reports, experiment.id)
    branch, title = f"experiment/{experiment.id}", proposal_title(experiment)
    if not propose:
        _git("branch", "--force", branch, _commit_with_report(commit, path, text, title))
        return (
            f"proposed on the local branch {branch} (the challenger's commit {commit[:12]} and "
            f"the report; in CI, with REPO_TOKEN and cml: a pull request into {target_branch})"
        )
    # CML branches from its trigger commit (GITHUB_SHA): the challenger's, not this run's. The
    # work tree (a CI runner's, disposable: --force) moves there too, and the report, written
    # back over whatever that commit holds, is what CML commits on the branch.
    _git("checkout", "--quiet", "--force", "--detach", commit)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    url = run_checked(
        _cml(), "pr", "create", "--branch", branch, f"--target-branch={target_branch}",
        "--title", title, "--body", text, "--message", title, str(path),
        env={**os.environ, "GITHUB_SHA": commit},
    ).strip()  # fmt: skip
    return (
        f"pull request {url or '(opened)'}: {branch} (the challenger's commit {commit[:12]} and "
        f"the report) into {target_branch}; a person merges it"
    )


def _in_ci() -> bool:
    """A pull request can be opened: a token for CML and CML itself (else a local branch)."""
    return bool(os.environ.get("REPO_TOKEN")) and shutil.which("cml") is not None


def _promote(args: argparse.Namespace) -> int:
    cfg = load_config(args.overrides)
    reports = Path(cfg.paths.reports_dir)
    print(promote(cfg, reports, propose=_in_ci(), target_branch=args.target_branch))
    return 0


def promote_main(argv: list[str] | None = None) -> int:
    """``traffic-forecast experiment promote``: on a "promote" decision, a PR to release it."""
    parser = command.parser("experiment promote", promote_main.__doc__)
    parser.add_argument(
        "--target-branch",
        default=RELEASE_BRANCH,
        help=f"the branch the pull request merges into (default: {RELEASE_BRANCH})",
    )
    return command.run(parser, _promote, argv)
