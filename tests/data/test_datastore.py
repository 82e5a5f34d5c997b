"""`traffic-forecast data` end to end: real `git clone`s of the repository, real DVC, no mocks.

Every clone gets its own remote through the one setting a team would change
(``dvc remote modify --local storage url …``), so no test touches the shared default remote.
The CLI runs as a subprocess from the clone's root, as ``make data`` runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from traffic_forecast.data.datastore import RECORD_VERSION

DATA_DVC = "data.dvc"
RAW = Path("data/raw")
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    "TRAFFIC_FORECAST_LOG": "INFO",  # the CLI says how it got the data at INFO
}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = _run([sys.executable, "-m", "dvc", *args], repo)
    assert result.returncode == 0, result.stderr
    return result


def _data(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``traffic-forecast data [args…]`` from the clone's root; its messages are on stderr."""
    return _run([sys.executable, "-m", "traffic_forecast.cli", "data", *args], repo)


def _clone(parent: Path, remote: Path) -> Path:
    """A `git clone` of the committed HEAD whose default DVC remote is ``remote``."""
    parent.mkdir(parents=True, exist_ok=True)
    repo = parent / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(repo)], check=True, env=ENV)
    _dvc(repo, "remote", "modify", "--local", "storage", "url", str(remote))
    return repo


def _status(repo: Path) -> dict[str, object]:
    """``dvc status data.dvc --json``: ``{}`` when data/raw is the version data.dvc names."""
    status: dict[str, object] = json.loads(_dvc(repo, "status", DATA_DVC, "--json").stdout)
    return status


def _remote_objects(remote: Path) -> set[str]:
    root = remote / "files" / "md5"
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def _object(md5: str) -> str:
    """Where DVC 3 stores an object: ``files/md5/<first 2 hex>/<rest>`` under cache or remote."""
    return f"{md5[:2]}/{md5[2:]}"


def _tracked(repo: Path) -> dict[str, object]:
    """The one output ``data.dvc`` names (md5 of the .dir manifest, nfiles, path)."""
    out: dict[str, object] = yaml.safe_load((repo / DATA_DVC).read_text())["outs"][0]
    return out


def _file_md5s(repo: Path) -> dict[str, str]:
    """``relpath → md5`` from the .dir manifest in the clone's cache."""
    manifest = repo / ".dvc" / "cache" / "files" / "md5" / _object(str(_tracked(repo)["md5"]))
    return {entry["relpath"]: entry["md5"] for entry in json.loads(manifest.read_text())}


def _raw_files(repo: Path) -> dict[str, bytes]:
    raw = repo / RAW
    return {
        path.relative_to(raw).as_posix(): path.read_bytes()
        for path in sorted(raw.rglob("*"))
        if path.is_file()
    }


def _assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # DataVersionError, not a crash or a config error
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@dataclass(frozen=True)
class Seeded:
    """A first clone that found its remote empty, regenerated the data and pushed it."""

    repo: Path
    remote: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    root = tmp_path_factory.mktemp("seeded")
    remote = root / "remote"
    repo = _clone(root / "first", remote)
    return Seeded(repo=repo, remote=remote, result=_data(repo))


@dataclass(frozen=True)
class Partial:
    """A copy of the seeded remote that lost one file object (traffic.csv's), not its .dir."""

    remote: Path
    lost_md5: str


@pytest.fixture
def partial(seeded: Seeded, tmp_path: Path) -> Partial:
    remote = tmp_path / "partial-remote"
    shutil.copytree(seeded.remote, remote)
    lost_md5 = _file_md5s(seeded.repo)["traffic.csv"]
    (remote / "files" / "md5" / _object(lost_md5)).unlink()
    return Partial(remote=remote, lost_md5=lost_md5)


@pytest.mark.slow
def test_empty_remote_regenerates_and_pushes_then_a_fresh_clone_pulls(
    seeded: Seeded, tmp_path: Path
) -> None:
    first = seeded.result
    assert first.returncode == 0, first.stderr
    assert "(regenerated)" in first.stderr
    assert _status(seeded.repo) == {}
    tracked = _tracked(seeded.repo)
    objects = _remote_objects(seeded.remote)
    assert _object(str(tracked["md5"])) in objects  # the .dir manifest
    assert {_object(md5) for md5 in _file_md5s(seeded.repo).values()} <= objects
    assert len(objects) == int(str(tracked["nfiles"])) + 1

    second = _clone(tmp_path / "second", seeded.remote)
    result = _data(second)
    assert result.returncode == 0, result.stderr
    assert "(pulled)" in result.stderr
    assert "regenerat" not in result.stderr
    assert _status(second) == {}
    assert _raw_files(second) == _raw_files(seeded.repo)


@pytest.mark.slow
def test_data_in_sync_is_reported_present(seeded: Seeded) -> None:
    assert seeded.result.returncode == 0, seeded.result.stderr
    result = _data(seeded.repo)
    assert result.returncode == 0, result.stderr
    assert "(present)" in result.stderr
    assert "dvc pull" not in result.stderr  # the cheap path: one `dvc status`, nothing fetched


@pytest.mark.slow
def test_partial_remote_fails_without_regeneration(partial: Partial, tmp_path: Path) -> None:
    repo = _clone(tmp_path / "clone", partial.remote)

    result = _data(repo, "--no-regenerate")
    # DVC names the object it could not fetch by its md5, not by the file's name.
    _assert_clean_failure(result, "could not fetch every file", partial.lost_md5)
    assert "regenerating" not in result.stderr
    assert _status(repo) != {}  # the pipeline's input is not the version data.dvc names
    # DVC 3.67 checks nothing out when a file of the directory is missing: no partial data/raw.
    assert not (repo / RAW).exists()

    # Data the simulator did not make cannot be regenerated: the same pull failure is final.
    external = _data(repo, "data.source=external")
    _assert_clean_failure(external, "could not fetch every file")
    assert "regenerating" not in external.stderr
    assert _status(repo) != {}
    assert not (repo / RAW).exists()


@pytest.mark.slow
def test_regenerating_over_a_partial_remote_warns_that_push_cannot_repair_it(
    partial: Partial, tmp_path: Path
) -> None:
    repo = _clone(tmp_path / "clone", partial.remote)
    result = _data(repo)
    assert result.returncode == 0, result.stderr
    assert "(regenerated)" in result.stderr
    assert _status(repo) == {}
    # `dvc push` sees the .dir manifest on the remote and uploads nothing: the file stays lost,
    # and the command says so instead of claiming the next clone will pull.
    assert _object(partial.lost_md5) not in _remote_objects(partial.remote)
    assert "the remote still lacks data/raw/traffic.csv" in result.stderr


@pytest.mark.slow
def test_a_read_only_run_with_a_local_remote_regenerates_without_pushing(tmp_path: Path) -> None:
    # A fork's pull request (the embedded default remote, on its own runner): nothing shared to
    # lack the data, so it is regenerated, and nothing is pushed. A shared remote: test_s3_remote.
    remote = tmp_path / "remote"
    repo = _clone(tmp_path / "clone", remote)
    result = _data(repo, "--read-only", "--verify")
    assert result.returncode == 0, result.stderr
    assert "(regenerated)" in result.stderr
    assert "not pushed: --read-only was given" in result.stderr
    assert "verified: every file of data/raw hashes to what data.dvc records" in result.stderr
    assert not remote.exists() or not _remote_objects(remote)


@pytest.mark.slow
def test_changed_simulator_output_fails_with_how_to_make_it_the_version(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo = _clone(tmp_path / "clone", remote)
    result = _data(repo, "data.simulator.seed=7")
    _assert_clean_failure(result, "does not hash to the version data.dvc names", RECORD_VERSION)
    assert _status(repo) != {}
    assert not remote.exists() or not _remote_objects(remote)  # nothing wrong was pushed
    # What the message says to do makes the regenerated data the version data.dvc names.
    venv = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    subprocess.run(["bash", "-c", RECORD_VERSION], cwd=repo, env={**ENV, **venv}, check=True)
    assert _status(repo) == {}
    assert _remote_objects(remote)
