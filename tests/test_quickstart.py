"""The README's quickstart as a stranger runs it: a fresh checkout, ``make demo``, then again.

The checkout keeps its BentoML store and deploy state inside it (``.bentoml/``, ``.deploy/``), as
the Makefile sets them up, and gets ports and a DVC remote of its own. After each ``make demo``
the checkout is exactly what was committed. Between the two, ``make bento`` builds once more,
with the earlier Bentos inside the build context. Then the local release commands the README
shows run against that deployment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.repos import git, working_tree_repository
from tests.serving.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.serial]

# The test session's BentoML store, deploy state and model: a user has none of them.
SESSION_ONLY = frozenset({"BENTOML_HOME", "TRAFFIC_FORECAST_DEPLOY_DIR", "TRAFFIC_FORECAST_MODEL"})


@dataclass(frozen=True)
class Run:
    """A command in the checkout: exit code and output (stdout and stderr together)."""

    command: str
    returncode: int
    output: str

    def tail(self, lines: int = 30) -> str:
        """The command and the end of its output, for assertion messages."""
        return f"$ {self.command} -> {self.returncode}\n" + "\n".join(
            self.output.splitlines()[-lines:]
        )


@dataclass(frozen=True)
class Checkout:
    """The checkout, and the router's URL and Prometheus's port its config names."""

    repo: Path
    router: str
    prometheus_port: int

    def env(self) -> dict[str, str]:
        """A user's environment: the Makefile's own store and state directory, this code."""
        env = {name: value for name, value in os.environ.items() if name not in SESSION_ONLY}
        return env | {"PYTHONPATH": str(self.repo / "src")}

    def run(self, command: str, *, check: bool = True) -> Run:
        """Run ``command`` with bash in the checkout, as a user would type it."""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.repo,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
            check=False,
        )
        run = Run(command, done.returncode, done.stdout)
        assert not check or run.returncode == 0, run.tail()
        return run

    def status(self) -> str:
        """``git status --porcelain``: empty when the checkout is what was committed."""
        return git(self.repo, "status", "--porcelain")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    root = tmp_path_factory.mktemp("quickstart")
    repo = working_tree_repository(root / "repo")
    ports = {"router_port": free_port(), "blue_port": free_port(), "green_port": free_port()}
    deploy_conf = repo / "conf" / "deploy" / "default.yaml"
    text = deploy_conf.read_text(encoding="utf-8")
    for key, port in ports.items():
        text = re.sub(rf"^{key}: \d+", f"{key}: {port}", text, flags=re.MULTILINE)
    deploy_conf.write_text(text, encoding="utf-8")
    prometheus_conf = repo / "conf" / "prometheus" / "local.yaml"
    text = prometheus_conf.read_text(encoding="utf-8")
    prometheus_port = free_port()
    text = re.sub(r"^port: \d+", f"port: {prometheus_port}", text, flags=re.MULTILINE)
    prometheus_conf.write_text(text, encoding="utf-8")
    git(repo, "commit", "--quiet", "-am", "ports of this machine")
    subprocess.run(  # a remote of its own (.dvc/config.local, not committed)
        [sys.executable, "-m", "dvc", "remote", "modify", "--local", "storage", "url",
         str(root / "dvc-remote")],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip
    for folder in (".venv", ".tools"):  # this tree's install stands in for `make install`
        if (REPO_ROOT / folder).exists():
            (repo / folder).symlink_to(REPO_ROOT / folder)
    (repo / ".venv" / ".installed").touch()
    made = Checkout(repo, f"http://127.0.0.1:{ports['router_port']}", prometheus_port)
    yield made
    made.run("make undeploy", check=False)


@pytest.fixture(scope="module")
def first_demo(checkout: Checkout) -> Run:
    return checkout.run("make demo")


def test_make_demo_deploys_and_prints_a_curl_line_that_answers(
    checkout: Checkout, first_demo: Run
) -> None:
    curl = next(line.strip() for line in first_demo.output.splitlines() if "curl -s" in line)
    assert checkout.router in curl
    answer = checkout.run(curl)
    assert '"forecast"' in answer.output
    assert len(httpx.post(checkout.router + "/forecast", json={}).json()["forecast"]) == 24


def test_make_demo_leaves_the_checkout_as_committed(checkout: Checkout, first_demo: Run) -> None:
    assert checkout.status() == "", first_demo.tail()


@pytest.fixture(scope="module")
def second_demo(checkout: Checkout, first_demo: Run) -> Run:
    checkout.run("make bento")  # a second build, with the first Bentos in the build context
    return checkout.run("make demo")


def test_a_second_build_and_demo_deploy_the_other_colour(
    checkout: Checkout, second_demo: Run
) -> None:
    assert "deploy: green serves" in second_demo.output, second_demo.tail()
    assert checkout.status() == "", second_demo.tail()


def test_make_demo_moves_the_forecast_on_with_a_day_of_actuals(
    checkout: Checkout, first_demo: Run
) -> None:
    verified = [line for line in first_demo.output.splitlines() if "answers from" in line]
    assert "forecasts from 2025-07-01T00:00:00" in verified[0], first_demo.tail()
    assert "forecasts from 2025-07-02T00:00:00" in verified[-1], first_demo.tail()


# The README's "Live actuals" commands, as a user types them (the venv's commands on PATH).
LIVE_TOKEN = "export TRAFFIC_FORECAST_INGEST_TOKEN=change-me"
LIVE_OBSERVE = "traffic-forecast observe data/incoming/traffic.csv --hours 48 --wait"
LIVE_POST = (
    'curl -s -X POST localhost:8080/observations -H "Authorization: Bearer '
    "$TRAFFIC_FORECAST_INGEST_TOKEN\" -H 'Content-Type: application/json' -d "
    """'{"observations": [{"timestamp": "2025-07-03T00:00:00", "sessions": 1250000}]}'"""
)
LIVE_FORECAST = (
    "curl -s -X POST localhost:8080/forecast -H 'Content-Type: application/json' "
    """-d '{"horizon": 3}'"""
)


def test_the_live_actuals_commands_of_the_readme(checkout: Checkout, second_demo: Run) -> None:
    port = checkout.router.rsplit(":", 1)[1]
    session = f"export PATH=$PWD/.venv/bin:$PATH; {LIVE_TOKEN}; "
    deployed = checkout.run(session + "make deploy")  # the token in the new colour's environment
    assert "deploy: blue serves" in deployed.output, deployed.tail()
    checkout.run(session + "traffic-forecast actuals")
    observed = checkout.run(session + LIVE_OBSERVE)
    assert "24 new hour(s), 0 corrected, 24 unchanged" in observed.output, observed.tail()
    assert "now forecasts from 2025-07-03T00:00:00" in observed.output, observed.tail()
    posted = json.loads(checkout.run(session + LIVE_POST.replace("8080", port)).output)
    assert (posted["new"], posted["origin"]) == (1, "2025-07-03T01:00:00")
    answer = json.loads(checkout.run(LIVE_FORECAST.replace("8080", port)).output)
    assert answer["origin"] == "2025-07-03T01:00:00"
    assert answer["forecast"][0]["timestamp"] == "2025-07-03T01:00:00"
    refused = checkout.run(LIVE_POST.replace("8080", port))  # no token in this shell
    assert "Bearer" in refused.output
    assert checkout.status() == ""


def test_the_release_commands_of_the_readme(checkout: Checkout, second_demo: Run) -> None:
    deployed = checkout.run("make deploy")  # the newest Bento again, on the idle colour
    assert "deploy: green serves" in deployed.output, deployed.tail()
    status = checkout.run("make status")
    assert f"router {checkout.router}: running; live: green" in status.output, status.tail()
    # Settings passed through ARGS reach the command; what runs is read from the deploy state.
    elsewhere = checkout.run('make status ARGS="deploy.router_port=1 deploy.blue_port=2"')
    assert f"router {checkout.router}: running; live: green" in elsewhere.output
    verified = checkout.run("make verify").output
    assert "answers from green" in verified
    assert "forecasts from 2025-07-03T01:00:00" in verified  # the new colour started current
    rolled = checkout.run("make rollback")
    assert "rollback: blue serves" in rolled.output, rolled.tail()
    # Alerts: a local Prometheus on what runs, the derived files rewritten as committed.
    observed = checkout.run("make observe")
    assert f"prometheus: http://127.0.0.1:{checkout.prometheus_port}" in observed.output
    status_json = checkout.run("make observe-status").output
    scraped = json.loads(status_json[status_json.index("{") :])
    slots_scraped = {t["colour"] for t in scraped["targets"] if t["job"] == "traffic-forecast"}
    deployed_slots = json.loads((checkout.repo / ".deploy" / "state.json").read_text())["slots"]
    assert slots_scraped == set(deployed_slots) >= {"blue"}
    assert "stopped" in checkout.run("make observe-stop").output
    checkout.run("make observe")  # again, on its data folder
    checkout.run("make alerts")
    undeployed = checkout.run("make undeploy")
    assert "stopped the local prometheus" in undeployed.output
    with pytest.raises(httpx.TransportError):
        httpx.get(checkout.router + "/readyz", timeout=2)
    assert checkout.status() == ""


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        assert server.poll() is None, "make serve exited"
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} was not ready after {timeout:g} s")


README_CURL = (
    "curl -s -X POST localhost:3000/forecast -H 'Content-Type: application/json' "
    """-d '{"horizon": 24}'"""
)


def test_make_serve_answers_the_readmes_curl(checkout: Checkout, second_demo: Run) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["bash", "-c", "make serve"],
        cwd=checkout.repo,
        env=checkout.env() | {"PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", server)
        answer = checkout.run(README_CURL.replace("3000", str(port)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert len(json.loads(answer.output)["forecast"]) == 24


def test_the_pr_report_and_gate_of_the_readme(checkout: Checkout, second_demo: Run) -> None:
    checkout.run("make repro && make report BASE=main")
    report = (checkout.repo / "reports" / "report.md").read_text(encoding="utf-8")
    assert report.startswith("**✅ Gate passed")  # the same commit as its base: nothing worse
    assert "Gate passed" in checkout.run("make gate").output
    assert checkout.status() == ""  # the report is written per run, never committed
