"""The S3 remote against a real S3 API: moto's server, with IAM enforced, on a local port.

The bucket and two IAM users are made with the README's own policies: the read-write one that
main and release use, and the read-only one that pull requests get. Then, as the workflows run
it: main regenerates the data and pushes it; the release build pulls it into a fresh clone and
verifies every file; a pull request reads but cannot write, and the code refuses to push before
S3 does; and an object corrupted in the bucket fails the release build's verification, naming
the file, where DVC's own status sees nothing wrong. A small repository (this working tree's
settings and data.dvc), no pipeline run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from tests.conftest import REPO_ROOT
from tests.repos import working_tree_repository
from traffic_forecast.data.integrity import object_path

pytestmark = [pytest.mark.slow, pytest.mark.serial]

BUCKET = "my-bucket"
PREFIX = "traffic-forecast"
REGION = "us-east-1"
# The README's commands that point the remote at S3 and record it (run verbatim below).
USE_S3 = "dvc remote modify storage url s3://my-bucket/traffic-forecast"
COMMIT_AND_PUSH = 'git commit -am "Store data versions in S3" && dvc push'
# The statements of the README's two permission policies, by Sid.
READ_ONLY = {"ListDataVersions", "ReadDataVersions"}
READ_WRITE = READ_ONLY | {"WriteDataVersions"}
# What `traffic-forecast data` reads: the settings and data.dvc, not the pipeline.
SMALL = (".dvc", ".dvcignore", ".gitignore", "conf", "data.dvc", "params.yaml")
VENV_BIN = str(Path(sys.executable).parent)
NO_AWS_FILE = Path(__file__).with_name("no-such-aws-file")  # nothing of this machine's ~/.aws


@dataclass(frozen=True)
class Keys:
    """An IAM user's access key."""

    key_id: str
    secret: str


@dataclass(frozen=True)
class Store:
    """moto's S3 endpoint, and the keys of the read-write (main, release) and PR users."""

    endpoint: str
    read_write: Keys
    pull_request: Keys

    def client(self, keys: Keys) -> Any:
        """An S3 client of moto's signing with ``keys``."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=keys.key_id,
            aws_secret_access_key=keys.secret,
        )

    def objects(self) -> dict[str, bytes]:
        """``files/md5/…`` → bytes of every object under the remote's prefix."""
        s3 = self.client(self.read_write)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])
        return {
            item["Key"].removeprefix(f"{PREFIX}/"): s3.get_object(Bucket=BUCKET, Key=item["Key"])[
                "Body"
            ].read()
            for item in listed
        }


def readme_policies() -> dict[frozenset[str], dict[str, Any]]:
    """The README's IAM permission policies (```json blocks), by the Sids of their statements."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    policies = {}
    for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL):
        policy = json.loads(block)
        if isinstance(policy, dict) and "Statement" in policy:
            sids = frozenset(str(statement.get("Sid")) for statement in policy["Statement"])
            policies[sids] = policy
    return policies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _moto_api(endpoint: str, path: str, body: bytes | None = None) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}",
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
    )
    with urllib.request.urlopen(request, timeout=2):
        pass


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``moto_server`` on a free port, stopped at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(Path(VENV_BIN) / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _moto_api(endpoint, "")
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "moto_server did not answer in 30 s"
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def store(moto_endpoint: str) -> Store:
    """The bucket and the two users with the README's policies; then IAM is enforced.

    moto checks signatures and policies once INITIAL_NO_AUTH_ACTION_COUNT requests have been
    served (an environment variable, or ``/moto-api/reset-auth`` at run time): the setup runs
    before, as the account's administrator would, then the count is set to 0.
    """
    setup = {
        "endpoint_url": moto_endpoint,
        "region_name": REGION,
        "aws_access_key_id": "setup",
        "aws_secret_access_key": "setup",
    }
    boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **setup)
    policies = readme_policies()
    keys = {}
    for user, sids in (("release", READ_WRITE), ("pull-request", READ_ONLY)):
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="dvc-remote",
            PolicyDocument=json.dumps(policies[frozenset(sids)]),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = Keys(key["AccessKeyId"], key["SecretAccessKey"])
    _moto_api(moto_endpoint, "reset-auth", b"0")
    return Store(moto_endpoint, keys["release"], keys["pull-request"])


def _env(keys: Keys, event: str) -> dict[str, str]:
    """A workflow step's environment: its keys, its event, nothing from this machine's AWS."""
    base = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {
        **base,
        "AWS_ACCESS_KEY_ID": keys.key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(NO_AWS_FILE),
        "AWS_SHARED_CREDENTIALS_FILE": str(NO_AWS_FILE),
        "AWS_EC2_METADATA_DISABLED": "true",
        "GITHUB_EVENT_NAME": event,
        "PATH": os.pathsep.join([VENV_BIN, os.environ["PATH"]]),
        "TRAFFIC_FORECAST_LOG": "INFO",
    }


def _run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, check=False)


def _ok(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = _run(repo, env, *args)
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done


def _tf(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``traffic-forecast …`` from the repository's root, as ``make`` runs it."""
    return _run(repo, env, sys.executable, "-m", "traffic_forecast.cli", *args)


def _point_at_moto(repo: Path, store: Store) -> None:
    """Point the checkout's S3 endpoint at moto (``.dvc/config.local``, never committed)."""
    _ok(repo, _env(store.read_write, "push"), "dvc", "remote", "modify", "--local", "storage",
        "endpointurl", store.endpoint)  # fmt: skip


def _clone(source: Path, target: Path, store: Store) -> Path:
    """A checkout as a workflow makes one, pointed at moto."""
    subprocess.run(["git", "clone", "--quiet", str(source), str(target)], check=True)
    _point_at_moto(target, store)
    return target


def _manifest(repo: Path) -> dict[str, str]:
    """``relpath → md5`` of data/raw, from the .dir manifest in ``repo``'s cache."""
    md5 = yaml.safe_load((repo / "data.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    manifest = repo / ".dvc" / "cache" / object_path(md5)
    return {entry["relpath"]: entry["md5"] for entry in json.loads(manifest.read_text())}


def _raw(repo: Path) -> dict[str, bytes]:
    raw = repo / "data" / "raw"
    return {
        path.relative_to(raw).as_posix(): path.read_bytes()
        for path in sorted(raw.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class Main:
    """main after pointing the remote at S3 and pushing the data with read-write keys."""

    repo: Path
    committed: subprocess.CompletedProcess[str]
    data: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def main(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Main:
    repo = working_tree_repository(tmp_path_factory.mktemp("s3") / "main", only=SMALL)
    env = _env(store.read_write, "push")
    _ok(repo, env, "bash", "-c", USE_S3)
    _point_at_moto(repo, store)
    # Committed first: `dvc data status` reads the remote's settings from HEAD's .dvc/config
    # merged with config.local, and an S3-only option over HEAD's local URL is a config error.
    committed = _run(repo, env, "bash", "-c", COMMIT_AND_PUSH)  # nothing to push yet
    data = _tf(repo, env, "data")  # main's run: the bucket is empty, so regenerated and pushed
    return Main(repo, committed, data)


def test_main_pushes_the_data_version_with_read_write_keys(main: Main, store: Store) -> None:
    assert main.committed.returncode == 0, main.committed.stderr
    assert main.data.returncode == 0, main.data.stderr
    assert "(regenerated)" in main.data.stderr
    manifest = _manifest(main.repo)
    assert set(store.objects()) == {
        object_path(md5)
        for md5 in [*manifest.values(), yaml.safe_load((main.repo / "data.dvc").read_text())[
            "outs"][0]["md5"]]
    }  # fmt: skip


def test_the_release_build_pulls_and_verifies_every_file(
    main: Main, store: Store, tmp_path: Path
) -> None:
    release = _clone(main.repo, tmp_path / "release", store)
    done = _tf(release, _env(store.read_write, "push"), "data", "--verify")
    assert done.returncode == 0, done.stderr
    assert "(pulled)" in done.stderr
    assert "verified: every file of data/raw hashes to what data.dvc records" in done.stderr
    assert _raw(release) == _raw(main.repo)


def test_a_pull_request_reads_but_cannot_write(main: Main, store: Store, tmp_path: Path) -> None:
    env = _env(store.pull_request, "pull_request")
    pr = _clone(main.repo, tmp_path / "pr", store)
    pulled = _tf(pr, env, "data")
    assert pulled.returncode == 0, pulled.stderr
    assert "(pulled)" in pulled.stderr
    before = store.objects()

    # The author makes a new data version and forgets to push it. Were the PR's code to push
    # anyway (a changed Makefile can), its keys are refused by S3 itself.
    traffic = pr / "data" / "raw" / "traffic.csv"
    lines = traffic.read_text(encoding="utf-8").splitlines(keepends=True)
    stamp, sessions = lines[1].rstrip("\n").split(",")
    traffic.unlink()  # never write through a link into the DVC cache
    changed = f"{stamp},{int(sessions) + 1}\n"
    traffic.write_text("".join([lines[0], changed, *lines[2:]]), encoding="utf-8")
    _ok(pr, env, "dvc", "commit", "--force", "data.dvc")
    _ok(pr, env, "git", "commit", "--quiet", "-am", "data: a new version, not pushed")
    refused = _run(pr, env, "dvc", "push", "data.dvc")
    assert refused.returncode != 0
    assert "AccessDenied" in refused.stdout + refused.stderr, refused.stderr[-2000:]
    assert store.objects() == before

    # The PR's run (a fresh checkout of its branch) fails, saying what to do, and never
    # regenerates or pushes.
    checkout = _clone(pr, tmp_path / "pr-checkout", store)
    done = _tf(checkout, env, "data")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert "a pull request's run (GITHUB_EVENT_NAME=pull_request) is read-only" in done.stderr
    assert "push it from your machine with write credentials (`dvc push data.dvc`)" in done.stderr
    assert "regenerating" not in done.stderr
    assert store.objects() == before


def test_a_corrupted_object_fails_the_release_verification_naming_the_file(
    main: Main, store: Store, tmp_path: Path
) -> None:
    md5 = _manifest(main.repo)["traffic.csv"]
    key = f"{PREFIX}/{object_path(md5)}"
    s3 = store.client(store.read_write)
    good = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=good.replace(b",", b";", 1))
    try:
        release = _clone(main.repo, tmp_path / "release", store)
        env = _env(store.read_write, "push")
        done = _tf(release, env, "data", "--verify")
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert "Traceback" not in output
        assert "data/raw/traffic.csv hashes to " in done.stderr
        assert f", not {md5} (object {object_path(md5)})" in done.stderr
        assert "sale_events.csv" not in done.stderr  # only the corrupted file is named

        # Why the re-hash: DVC recorded the md5 it expected for what it downloaded, so its own
        # status (all a run without --verify asks) takes the corrupted file as the version.
        status = _ok(release, env, "dvc", "status", "data.dvc", "--json")
        assert json.loads(status.stdout) == {}
    finally:
        s3.put_object(Bucket=BUCKET, Key=key, Body=good)


def test_even_the_read_write_keys_cannot_delete_a_version(main: Main, store: Store) -> None:
    # Deleting history (`dvc gc --cloud`) is a person's job, with the account's own credentials.
    key = f"{PREFIX}/{next(iter(store.objects()))}"
    with pytest.raises(ClientError, match="AccessDenied"):
        store.client(store.read_write).delete_object(Bucket=BUCKET, Key=key)
