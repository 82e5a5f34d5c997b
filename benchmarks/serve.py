"""Benchmark the HTTP service per kind of request, against the ceiling of its HTTP stack.

One load tool (wrk, from Debian), the same connections, threads and duration for every run.
Four kinds of request (``--kinds``, `serving/kinds.py`): ``default`` (``POST /forecast
{"horizon": 24}``), ``coverage`` (the same with an arbitrary coverage, a new one per request),
``what-if`` (``POST /forecast``, horizon 48, one planned flash sale in the window, its start and
discount new per request) and ``capacity`` (``POST /capacity {"horizon": 24}``). For each kind:

1. the BentoML service (`traffic_forecast.serving.service`);
2. a bare Starlette app on uvicorn answering the bytes the service answered for a sample of
   that kind (one app per kind, parsing each body as JSON): the ceiling of the HTTP stack;
3. for reference, once, a naive BentoML service calling sktime's predict per request
   (default kind only; ``--skip-naive`` leaves it out).

The service and the bare apps run side by side, ``--workers`` processes each, and are loaded in
alternated rounds (``--rounds``; per round, each kind: service, then bare): on a shared machine
whose speed drifts, all see the drift. Each run follows a 3 s warm-up; wrk's timeout is 10 s, so
slow answers count in the latency instead of as errors. Every row is printed as it is measured:
requests/s, p50 and p99 latency, non-2xx answers, socket errors and, for the service, the
fallbacks it counted during the run (``traffic_forecast_fallbacks_total`` on its /metrics,
budget + error, read once it has answered what wrk left in flight). Then the medians over the
rounds against the targets (met or MISSED): default service/bare >= 0.7; capacity service/bare
>= 0.5; coverage/default service >= 0.9 (same round); what-if >= 300 req/s per worker with no
budget fallback; p99 <= 25 ms for every kind. A contender that answered nothing gives a ratio
of 0 or n/a and a MISSED, never a crash. Exits 0 with the figures, whatever they are; non-zero
only when something failed to start (Ctrl-C stops the load and prints what was measured).
Needs the pipeline's outputs (``make repro``); the model is packaged into a temporary store.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.kinds import NAMES, Kind, compact, kinds
from serving.results import COLUMNS, NAN, Load, Round, parse_wrk, row, summary

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "serving"
VENV_BIN = Path(sys.executable).parent
PROBE = compact({"horizon": 24})  # readiness: a default forecast answers 200
WARM_UP, TIMEOUT = "3s", "10s"
# telemetry.py: requests answered, by endpoint and outcome; fallbacks, by reason.
REQUESTS, FALLBACKS = "traffic_forecast_requests", "traffic_forecast_fallbacks"
SETTLE_S, SETTLE_POLL_S = 15.0, 0.5
SERVICE, BARE, NAIVE = "BentoML service", "bare Starlette/uvicorn", "naive (predict per request)"


@dataclass(frozen=True)
class Servers:
    """Base URLs of the running service and of the bare app for each kind."""

    service: str
    bare: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def post(url: str, body: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=60)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{url}: the server exited with {process.returncode}:\n{tail}")
        try:
            if post(url, PROBE).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout} s (log: {log})")


@contextmanager
def serving(args: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(url, process, log)
            yield
        finally:
            with suppress(ProcessLookupError):  # it may have exited already
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def package_model(home: Path, overrides: tuple[str, ...] = ()) -> str:
    """``traffic-forecast package [overrides]`` into the BentoML store ``home``; the new tag."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(
        [str(VENV_BIN / "traffic-forecast"), "package", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"packaging failed (run `make repro` first):\n{done.stderr}")
    tag: str = re.findall(r"saved (\S+)", done.stderr)[-1]
    return tag


# -- the load -------------------------------------------------------------------------------------


def wrk(url: str, script: Path, args: argparse.Namespace, duration: str) -> Load:
    """One run; a run wrk could not make gives zeros and the reason."""
    options = [f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}", "--latency"]
    done = subprocess.run(
        ["wrk", *options, f"--timeout={TIMEOUT}", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=False,
    )
    load = parse_wrk(done.stdout)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        return Load(0.0, NAN, NAN, 0, load.socket_errors, problem=reason[-1])
    return load


def load_bare(url: str, script: Path, args: argparse.Namespace) -> Load:
    """A warm-up, then the measured run."""
    wrk(url, script, args, WARM_UP)
    return wrk(url, script, args, f"{args.seconds}s")


@dataclass(frozen=True)
class Counters:
    """The service's own counters (all workers): requests answered, fallbacks by reason."""

    requests: int
    fallbacks: dict[str, int]


def scrape(base: str) -> Counters | None:
    """The counters on the service's /metrics now; None if it cannot be read."""
    try:
        text = httpx.get(f"{base}/metrics", timeout=10).raise_for_status().text
    except httpx.HTTPError:
        return None
    requests, fallbacks = 0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{REQUESTS}_total":
                requests += int(sample.value)
            elif sample.name == f"{FALLBACKS}_total":
                fallbacks[sample.labels["reason"]] = int(sample.value)
    return Counters(requests, fallbacks)


def settled(base: str) -> Counters | None:
    """The counters once the service has answered what wrk left in flight.

    What-ifs queue for one thread: their answers (and fallbacks) come after wrk has stopped,
    and would otherwise count in the next run, and load it.
    """
    counters, deadline = scrape(base), time.monotonic() + SETTLE_S
    while counters is not None and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        previous, counters = counters, scrape(base)
        if counters == previous:
            break
    return counters


def _delta(before: Counters | None, after: Counters | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {reason: n - before.fallbacks.get(reason, 0) for reason, n in after.fallbacks.items()}


def load_service(url: str, base: str, script: Path, args: argparse.Namespace) -> Load:
    """A warm-up, then the measured run, with the fallbacks the service counted during it."""
    wrk(url, script, args, WARM_UP)
    before = settled(base)
    load = wrk(url, script, args, f"{args.seconds}s")
    return replace(load, fallbacks=_delta(before, settled(base)))


# -- the run --------------------------------------------------------------------------------------


def _environment(args: argparse.Namespace, home: Path, tag: str) -> dict[str, str]:
    return {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "TRAFFIC_FORECAST_MODEL": tag,
        "TRAFFIC_FORECAST_WORKERS": str(args.workers),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]),
    }


def _bento(service: str, port: int) -> list[str]:
    return [str(VENV_BIN / "bentoml"), "serve", service, "--port", str(port)]


def _bare(port: int, workers: int) -> list[str]:
    # uvicorn's --workers hands sockets over without TCP_NODELAY, which costs ~40 ms a request
    # here; bare_multi binds one SO_REUSEPORT socket per process, as the kernel balances them.
    return [sys.executable, str(HERE / "bare_multi.py"), str(port), str(workers)]


def sample_answer(base: str, kind: Kind) -> bytes:
    """The service's answer to the kind's sample; a refusal ends the benchmark before loading."""
    answer = post(base + kind.path, kind.sample_json)
    if answer.status_code != 200:
        raise SystemExit(
            f"{kind.name}: POST {kind.path} {kind.sample_json} answered {answer.status_code}: "
            f"{answer.text[:1000]}"
        )
    return answer.content


def start_bare_apps(
    servers: ExitStack, base: str, chosen: list[Kind], env: dict[str, str], work: Path
) -> dict[str, str]:
    """One bare app per kind, answering the service's bytes for that kind's sample.

    Also writes each kind's wrk script beside its answer.
    """
    workers, urls = int(env["TRAFFIC_FORECAST_WORKERS"]), {}
    for kind in chosen:
        answer = work / f"{kind.name}.json"
        answer.write_bytes(sample_answer(base, kind))
        (work / f"{kind.name}.lua").write_text(kind.script(), encoding="utf-8")
        port = free_port()
        urls[kind.name] = url = f"http://127.0.0.1:{port}"
        bare_env = {**env, "BARE_RESPONSE_FILE": str(answer)}
        log = work / f"bare-{kind.name}.log"
        servers.enter_context(serving(_bare(port, workers), bare_env, url + kind.path, log))
    return urls


def measure(
    args: argparse.Namespace, chosen: list[Kind], servers: Servers, work: Path, rounds: list[Round]
) -> None:
    """Alternated rounds into ``rounds``, each row printed as soon as it is measured."""
    for number in range(1, args.rounds + 1):
        for kind in chosen:
            script = work / f"{kind.name}.lua"
            service = load_service(servers.service + kind.path, servers.service, script, args)
            print(row(f"{number}", kind.name, SERVICE, service, counted=True), flush=True)
            bare = load_bare(servers.bare[kind.name] + kind.path, script, args)
            print(row(f"{number}", kind.name, BARE, bare), flush=True)
            rounds.append(Round(number, kind.name, service, bare))


def run_naive(args: argparse.Namespace, env: dict[str, str], default: Kind, work: Path) -> Load:
    port = free_port()
    url = f"http://127.0.0.1:{port}/forecast"
    with serving(_bento("naive_service:NaiveForecast", port), env, url, work / "naive.log"):
        load = load_bare(url, work / f"{default.name}.lua", args)
    print(row("-", default.name, NAIVE, load), flush=True)
    return load


def run(args: argparse.Namespace, work: Path) -> tuple[list[Round], Load | None]:
    """Start everything, load it; Ctrl-C stops the load and keeps what was measured."""
    home = work / "bentoml"
    env = _environment(args, home, package_model(home))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bento = _bento("traffic_forecast.serving.service:TrafficForecast", port)
    rounds: list[Round] = []
    naive = None
    try:
        with ExitStack() as servers:
            servers.enter_context(serving(bento, env, base + "/forecast", work / "service.log"))
            origin = datetime.fromisoformat(post(base + "/forecast", PROBE).json()["origin"])
            every = kinds(origin)
            chosen = [every[name] for name in args.kinds]
            bare = start_bare_apps(servers, base, chosen, env, work)
            print(header(args), flush=True)
            measure(args, chosen, Servers(base, bare), work, rounds)
        if not args.skip_naive and "default" in args.kinds:
            naive = run_naive(args, env, every["default"], work)
    except KeyboardInterrupt:
        print("interrupted: the summary covers the runs measured so far", flush=True)
    return rounds, naive


def header(args: argparse.Namespace) -> str:
    return (
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s (after {WARM_UP} warm-up),"
        f" loopback, {args.workers} worker(s) each, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, {args.rounds} alternated round(s)\n\n{COLUMNS}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="each measured run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="server processes per target")
    parser.add_argument("--rounds", type=int, default=3, help="alternated service/bare rounds")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=NAMES,
        default=list(NAMES),
        help="kinds of request to load (default: all)",
    )
    parser.add_argument("--skip-naive", action="store_true", help="no naive reference run")
    args = parser.parse_args()
    args.kinds = [name for name in NAMES if name in args.kinds]  # loaded in a fixed order
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make system-deps` (Debian package wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        rounds, naive = run(args, Path(work))
    print(summary(rounds, naive, args.kinds, args.workers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
