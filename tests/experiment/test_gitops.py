"""The experiment's GitOps side: where the report is posted, and what a promotion proposes.

CML talks to GitHub, unreachable here: a stand-in ``cml`` on PATH records each call (its
arguments, the commit it was run at, the trigger commit it was given) and posts nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.repos import git
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import PipelineInputError
from traffic_forecast.data.observations import OBSERVATION_COLUMNS, Batch
from traffic_forecast.data.store import ObservationStore, default_url
from traffic_forecast.deploy.slots import prediction_log_path
from traffic_forecast.deploy.state import STATE_DIR_ENV, State, save
from traffic_forecast.experiment import gitops
from traffic_forecast.experiment.gitops import (
    NoExperimentError,
    combined_actuals,
    comment_target,
    promote,
)
from traffic_forecast.experiment.record import CHALLENGER as CHALLENGER_ARM
from traffic_forecast.experiment.record import CHAMPION as CHAMPION_ARM
from traffic_forecast.experiment.record import Arm, Experiment

EXPERIMENT_ID = "exp-20250701"
RECORD = f"reports/experiments/{EXPERIMENT_ID}.md"  # committed on the promotion branch
START = "2025-07-01T00:00"
HORIZON = 24
CHAMPION = Arm("blue", "traffic-forecast:champ", "traffic-forecast-model:champ", "a" * 40)
REPORT = "## Champion vs challenger\n\nDecision: **promote**\n"
# The stand-in: one JSON line per call, with what CML would read from its environment.
FAKE_CML = """#!{python}
import json, os, subprocess, sys
head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
with open({log!r}, "a", encoding="utf-8") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "head": head.strip(),
                          "github_sha": os.environ.get("GITHUB_SHA")}}) + "\\n")
print("https://github.invalid/stand-in/pull/9")
"""


def _experiment(commit: str = "b" * 40, **where: int | None) -> Experiment:
    challenger = Arm("green", "traffic-forecast:chall", "traffic-forecast-model:chall", commit)
    return Experiment(
        id=EXPERIMENT_ID,
        mode="shadow",
        share=0.5,
        client_header="X-Client-Id",
        champion=CHAMPION,
        challenger=challenger,
        started_at=0.0,
        **where,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("where", "commit", "target"),
    [
        ({"pull_request": 7, "issue": 3}, "b" * 40, "pr/7"),
        ({"issue": 3}, "b" * 40, "issue/3"),
        ({}, "c" * 40, f"commit/{'c' * 40}"),
    ],
    ids=["pull-request-first", "issue-without-pr", "commit-without-either"],
)
def test_the_report_goes_to_the_pr_else_the_issue_else_the_commit(
    where: dict[str, int], commit: str, target: str
) -> None:
    assert comment_target(_experiment(commit, **where)) == target


def test_an_experiment_with_nowhere_to_post_is_a_clear_error() -> None:
    with pytest.raises(NoExperimentError, match="no pull request, issue or challenger commit"):
        comment_target(_experiment(""))


def test_the_store_wins_the_hours_both_hold_and_the_raw_history_fills_the_rest() -> None:
    hours = pd.date_range("2025-07-01", periods=4, freq="h")
    raw = pd.Series([1.0, 2.0, 3.0], index=hours[:3])
    stored = pd.Series([20.0, 40.0], index=hours[[1, 3]])  # a correction, and a new hour
    combined = combined_actuals(raw, stored)
    assert combined.to_dict() == {hours[0]: 1.0, hours[1]: 20.0, hours[2]: 3.0, hours[3]: 40.0}
    assert combined_actuals(raw, pd.Series(dtype=float)).equals(raw)
    assert combined_actuals(pd.Series(dtype=float), stored).equals(stored)


# -- with a deploy state, a repository and the stand-in cml ------------------------------------


@dataclasses.dataclass(frozen=True)
class Checkout:
    """A repository with ``main`` checked out and the challenger's commit on a branch."""

    path: Path
    main: str
    challenger: str
    cfg: Config
    calls: Path

    def cml_calls(self) -> list[dict[str, Any]]:
        """What the stand-in cml was asked to do, in order."""
        if not self.calls.is_file():
            return []
        return [json.loads(line) for line in self.calls.read_text(encoding="utf-8").splitlines()]

    def report(self, decision: str) -> None:
        """The analysis files as `experiment analyse` writes them, with ``decision``."""
        reports = Path(self.cfg.paths.reports_dir)
        reports.mkdir(parents=True, exist_ok=True)
        payload = {"experiment": EXPERIMENT_ID, "verdict": {"decision": decision}}
        (reports / gitops.REPORT_JSON).write_text(json.dumps(payload))
        (reports / gitops.REPORT_MD).write_text(REPORT)


@pytest.fixture
def checkout(tmp_path: Path, config_in: Config, monkeypatch: pytest.MonkeyPatch) -> Checkout:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch", "main")
    (repo / "README.md").write_text("the template\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "--quiet", "-m", "base")
    git(repo, "checkout", "--quiet", "-b", "challenger")
    (repo / "README.md").write_text("the template, with another model\n")
    git(repo, "commit", "--quiet", "-am", "challenger: another model")
    challenger = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "--quiet", "main")
    state_dir = tmp_path / "deploy"
    save(
        state_dir, State(live="blue", experiment=_experiment(challenger, pull_request=7).as_json())
    )
    monkeypatch.setenv(STATE_DIR_ENV, str(state_dir))
    calls, bin_dir = tmp_path / "cml.jsonl", tmp_path / "bin"
    bin_dir.mkdir()
    cml = bin_dir / "cml"
    cml.write_text(FAKE_CML.format(python=sys.executable, log=str(calls)))
    cml.chmod(cml.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(repo)
    paths = dataclasses.replace(config_in.paths, reports_dir="reports")  # inside the repository
    cfg = dataclasses.replace(config_in, paths=paths)
    return Checkout(repo, git(repo, "rev-parse", "HEAD"), challenger, cfg, calls)


@pytest.mark.parametrize("decision", ["continue", "keep champion"])
def test_promote_does_nothing_unless_the_decision_is_promote(
    checkout: Checkout, decision: str
) -> None:
    checkout.report(decision)
    done = promote(checkout.cfg, Path("reports"), propose=True, target_branch="release")
    assert done == f"nothing to promote: the decision is {decision!r}"
    assert checkout.cml_calls() == []
    assert git(checkout.path, "branch", "--list", "experiment/*") == ""
    assert git(checkout.path, "rev-parse", "HEAD") == checkout.main


def test_promote_opens_a_pr_into_release_from_the_challengers_commit(checkout: Checkout) -> None:
    checkout.report("promote")
    done = promote(checkout.cfg, Path("reports"), propose=True, target_branch="release")
    assert "https://github.invalid/stand-in/pull/9" in done
    [call] = checkout.cml_calls()
    title = gitops.proposal_title(_experiment(checkout.challenger))
    assert call["argv"] == [
        "pr", "create", "--branch", "experiment/exp-20250701", "--target-branch=release",
        "--title", title, "--body", REPORT, "--message", title, RECORD,
    ]  # fmt: skip
    # CML branches from its trigger commit: the challenger's, where the work tree stands too.
    assert call["github_sha"] == checkout.challenger
    assert call["head"] == checkout.challenger
    assert Path(RECORD).read_text(encoding="utf-8") == REPORT
    assert "traffic-forecast-model:chall" in title


def test_without_ci_promote_makes_a_local_branch_and_leaves_the_checkout_alone(
    checkout: Checkout,
) -> None:
    checkout.report("promote")
    done = promote(checkout.cfg, Path("reports"), propose=False, target_branch="release")
    assert done.startswith("proposed on the local branch experiment/exp-20250701")
    branch = "experiment/exp-20250701"
    assert git(checkout.path, "rev-parse", f"{branch}^") == checkout.challenger
    assert git(checkout.path, "show", f"{branch}:{RECORD}") + "\n" == REPORT
    changed = git(checkout.path, "show", "--name-only", "--format=", branch)
    assert changed == RECORD
    assert git(checkout.path, "rev-parse", "HEAD") == checkout.main  # nothing checked out
    assert git(checkout.path, "diff", "--cached", "--name-only") == ""
    assert not (checkout.path / RECORD).exists()  # and nothing left in the work tree
    assert checkout.cml_calls() == []


def test_a_challenger_commit_missing_from_the_clone_is_named(checkout: Checkout) -> None:
    missing = "d" * 40
    save(
        Path(os.environ[STATE_DIR_ENV]),
        State(live="blue", experiment=_experiment(missing, pull_request=7).as_json()),
    )
    checkout.report("promote")
    with pytest.raises(PipelineInputError, match=f"{missing} is not in this clone"):
        promote(checkout.cfg, Path("reports"), propose=True, target_branch="release")
    assert checkout.cml_calls() == []


def test_post_updates_one_watermarked_comment_on_the_pr(checkout: Checkout) -> None:
    checkout.report("continue")
    assert gitops.post(checkout.cfg, Path("reports")) == "pr/7"
    gitops.post(checkout.cfg, Path("reports"))  # the next day: the same comment, updated
    calls = checkout.cml_calls()
    assert [call["argv"] for call in calls] == 2 * [
        [
            "comment", "update", "--target=pr/7",
            "--watermark-title=traffic-forecast experiment exp-20250701", "--no-publish",
            "reports/experiment.md",
        ]
    ]  # fmt: skip


def test_without_an_experiment_the_commands_say_so_in_one_line(
    checkout: Checkout, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops, "load_config", lambda _: checkout.cfg)
    save(Path(os.environ[STATE_DIR_ENV]), State(live="blue"))
    checkout.report("promote")
    assert gitops.promote_main([]) == 1
    [error] = caplog.messages
    assert error.startswith("error: no experiment in ")
    assert "experiment start" in error
    assert len(error.splitlines()) == 1


def test_a_report_of_another_experiment_is_not_promoted(checkout: Checkout) -> None:
    checkout.report("promote")
    save(
        Path(os.environ[STATE_DIR_ENV]),
        State(live="blue", experiment=dataclasses.replace(_experiment(), id="exp-next").as_json()),
    )
    with pytest.raises(PipelineInputError, match="experiment exp-20250701's"):
        promote(checkout.cfg, Path("reports"), propose=True, target_branch="release")
    assert checkout.cml_calls() == []


# -- analyse, end to end on a deploy host's state --------------------------------------------


def _logged(
    experiment: Experiment, actuals: pd.Series, errors: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Both arms' answers, one per hourly origin: the actuals plus the arm's known errors."""
    origins = pd.date_range(START, periods=len(errors[CHAMPION_ARM]), freq="h")
    return [
        {
            "experiment": experiment.id,
            "arm": arm,
            "model_version": experiment.arm(arm).model,
            "origin": origin.isoformat(),
            "what_if": False,
            "fallback": False,
            "value": (actuals[origin:][:HORIZON].to_numpy() + errors[arm][i]).tolist(),
        }
        for i, origin in enumerate(origins)
        for arm in (CHAMPION_ARM, CHALLENGER_ARM)
    ]


def test_analyse_scores_the_logs_against_the_raw_history_and_the_store(
    tmp_path: Path,
    config_in: Config,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = config_in
    settings = cfg.experiment
    days = settings.min_days + 2
    start = pd.Timestamp(START)
    history = pd.Timedelta(weeks=settings.scale_weeks, hours=settings.season)
    hours = pd.date_range(start - history, start + pd.Timedelta(days=days, hours=HORIZON), freq="h")
    position = np.arange(len(hours))
    actuals = pd.Series(1000 + 400 * np.sin(2 * np.pi * position / 24), index=hours)
    rng = np.random.default_rng(7)
    champion_errors = rng.normal(0, 80, (days * 24, HORIZON))
    errors = {CHAMPION_ARM: champion_errors, CHALLENGER_ARM: champion_errors / 2}
    experiment = _experiment(pull_request=7)
    # Declared at its start, so it decides whatever conf/experiment says now (98 days).
    experiment.settings = dataclasses.asdict(dataclasses.replace(settings, max_days=28))
    state_dir = tmp_path / "deploy"
    monkeypatch.setenv(STATE_DIR_ENV, str(state_dir))
    save(state_dir, State(live="blue", experiment=experiment.as_json()))
    entries = _logged(experiment, actuals, errors)
    for colour, arm in (("blue", CHAMPION_ARM), ("green", CHALLENGER_ARM)):
        log = prediction_log_path(state_dir, colour)
        log.parent.mkdir(parents=True, exist_ok=True)
        mine = [json.dumps(e) + "\n" for e in entries if e["arm"] == arm]
        log.write_text("".join(mine), encoding="utf-8")
    # The raw history reaches a day into the experiment, those hours garbled: the store's
    # values (the actuals) must win them.
    raw = actuals[: start + pd.Timedelta(days=1)].copy()
    raw[start:] *= 10
    traffic = Path(cfg.data.traffic_file)
    traffic.parent.mkdir(parents=True)
    pd.DataFrame({"timestamp": raw.index, "sessions": raw.to_numpy()}).to_csv(traffic, index=False)
    stored = actuals[start:]
    frame = pd.DataFrame({"timestamp": stored.index, "target": stored.to_numpy()})
    store = ObservationStore(default_url(state_dir))
    store.write(Batch(frame.reindex(columns=list(OBSERVATION_COLUMNS)), "the test"))
    store.close()
    monkeypatch.setattr(gitops, "load_config", lambda _: cfg)

    assert gitops.analyse_main([]) == 0

    reports = Path(cfg.paths.reports_dir)
    assert capsys.readouterr().out.startswith("decision: promote")
    written = json.loads((reports / gitops.REPORT_JSON).read_text(encoding="utf-8"))
    assert written["experiment"] == EXPERIMENT_ID
    assert written["verdict"]["decision"] == "promote"
    assert written["scored_origins"] == days * 24
    # Scored against the store's hours, not the garbled raw ones: the errors made.
    assert written["champion"]["mae"] == pytest.approx(np.abs(champion_errors).mean())
    assert written["challenger"]["mae"] == pytest.approx(np.abs(champion_errors).mean() / 2)
    assert written["scale"]["value"] is not None  # the raw history before the start
    assert EXPERIMENT_ID in (reports / gitops.REPORT_MD).read_text(encoding="utf-8")


def test_analyse_without_an_experiment_is_a_one_line_error(
    tmp_path: Path,
    config_in: Config,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "deploy"))
    monkeypatch.setattr(gitops, "load_config", lambda _: config_in)
    assert gitops.analyse_main([]) == 1
    [error] = caplog.messages
    assert error.startswith("error: no experiment in ")
    assert not (Path(config_in.paths.reports_dir) / gitops.REPORT_JSON).exists()
