"""Benchmark the HTTP service against the ceiling of its HTTP stack and against a naive service.

One run, one load tool (wrk, from Debian), the same concurrency and duration for each target:

1. the BentoML service (`traffic_forecast.serving.service`), ``POST /forecast``, horizon 24;
2. a bare Starlette app on uvicorn answering the service's own response bytes: the ceiling;
3. for reference, a naive BentoML service calling sktime's predict on every request.

1 and 2 run side by side and are loaded in alternated rounds (``--rounds``, default 3): on a
shared machine whose speed drifts, both see the drift. Prints requests/s, p50 and p99 latency,
non-2xx answers per round, and the median ratio 1/2 and median p99 of 1 against the targets
(ratio >= 0.5, p99 <= 25 ms). Needs the pipeline's outputs (``make repro``); the model is
packaged into a temporary BentoML store. ``--workers 2`` runs 1 and 2 with two processes each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "serving"
VENV_BIN = Path(sys.executable).parent
BODY = json.dumps({"horizon": 24})
RATIO_TARGET, P99_TARGET_MS = 0.5, 25.0
LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class Load:
    """wrk's figures for one target."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {process.returncode}")
        try:
            answer = httpx.post(url, content=BODY, headers={"content-type": "application/json"})
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout} s")


@contextmanager
def serving(args: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(url, process)
            yield
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def wrk(name: str, url: str, args: argparse.Namespace, script: Path) -> Load:
    seconds = args.seconds
    common = ["wrk", f"-t{args.threads}", f"-c{args.connections}", "-s", str(script), url]
    subprocess.run([*common[:3], "-d3s", *common[3:]], capture_output=True, check=True)  # warm-up
    out = subprocess.run(
        [*common[:3], f"-d{seconds}s", "--latency", *common[3:]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = {q: float(v) * UNITS_MS[u] for q, v, u in LATENCY.findall(out)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(
        name,
        rate,
        latency["50"],
        latency["99"],
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )


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
    return re.findall(r"saved (\S+)", done.stderr)[-1]


def bare_server(port: int, workers: int) -> list[str]:
    # uvicorn's --workers hands sockets over without TCP_NODELAY, which costs ~40 ms a request
    # here; bare_multi binds one SO_REUSEPORT socket per process, as the kernel balances them.
    return [sys.executable, str(HERE / "bare_multi.py"), str(port), str(workers)]


def run(args: argparse.Namespace, work: Path) -> tuple[list[tuple[Load, Load]], Load | None]:
    home = work / "bentoml"
    tag = package_model(home)
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "TRAFFIC_FORECAST_MODEL": tag,
        "TRAFFIC_FORECAST_WORKERS": str(args.workers),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)]),
    }
    script = work / "post.lua"
    lua = [
        "wrk.method = 'POST'",
        f"wrk.body = '{BODY}'",
        "wrk.headers['Content-Type'] = 'application/json'",
    ]
    script.write_text("\n".join(lua) + "\n", encoding="utf-8")
    port, bare_port = free_port(), free_port()
    url, bare_url = (f"http://127.0.0.1:{p}/forecast" for p in (port, bare_port))
    bento = [
        str(VENV_BIN / "bentoml"),
        "serve",
        "traffic_forecast.serving.service:TrafficForecast",
        "--port",
        str(port),
    ]
    rounds: list[tuple[Load, Load]] = []
    with ExitStack() as servers:
        servers.enter_context(serving(bento, env, url, work / "service.log"))
        response = httpx.post(url, content=BODY, headers={"content-type": "application/json"})
        (work / "response.json").write_bytes(response.content)
        bare_env = {**env, "BARE_RESPONSE_FILE": str(work / "response.json")}
        bare = bare_server(bare_port, args.workers)
        servers.enter_context(serving(bare, bare_env, bare_url, work / "bare.log"))
        # Alternated rounds: a machine whose speed drifts (a shared VM) drifts for both.
        for _ in range(args.rounds):
            service_load = wrk("BentoML service", url, args, script)
            rounds.append((service_load, wrk("bare Starlette/uvicorn", bare_url, args, script)))
    naive_load = None
    if not args.skip_naive:
        port = free_port()
        url = f"http://127.0.0.1:{port}/forecast"
        naive = [
            str(VENV_BIN / "bentoml"),
            "serve",
            "naive_service:NaiveForecast",
            "--port",
            str(port),
        ]
        with serving(naive, env, url, work / "naive.log"):
            naive_load = wrk("naive (predict per request)", url, args, script)
    return rounds, naive_load


def _row(load: Load, label: str) -> str:
    return (
        f"{label:30}{load.requests_per_s:>10.0f}{load.p50_ms:>10.2f}{load.p99_ms:>10.2f}"
        f"{load.non_2xx:>9}{load.socket_errors:>8}"
    )


def report(rounds: list[tuple[Load, Load]], naive: Load | None, args: argparse.Namespace) -> str:
    lines = [
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, POST /forecast "
        f"{BODY}, loopback, {args.workers} worker(s) each, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {len(rounds)} alternated round(s)",
        "",
        f"{'target':30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}{'errors':>8}",
    ]
    for i, (service, bare) in enumerate(rounds, 1):
        lines += [_row(service, f"{i}. {service.name}"), _row(bare, f"{i}. {bare.name}")]
    if naive is not None:
        lines.append(_row(naive, naive.name))
    ratios = [service.requests_per_s / bare.requests_per_s for service, bare in rounds]
    ratio = statistics.median(ratios)
    p99 = statistics.median(service.p99_ms for service, _ in rounds)
    verdict = {True: "met", False: "MISSED"}
    lines += [
        "",
        f"ratio service / bare per round: {', '.join(f'{r:.2f}' for r in ratios)}",
        f"ratio service / bare (median): {ratio:.2f} "
        f"(target >= {RATIO_TARGET}: {verdict[ratio >= RATIO_TARGET]})",
        f"service p99 (median): {p99:.1f} ms (target <= {P99_TARGET_MS:g} ms: "
        f"{verdict[p99 <= P99_TARGET_MS]})",
    ]
    if naive is not None:
        service_rate = statistics.median(service.requests_per_s for service, _ in rounds)
        lines.append(f"service / naive: {service_rate / naive.requests_per_s:.0f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="server processes per target")
    parser.add_argument("--rounds", type=int, default=3, help="alternated service/bare rounds")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make system-deps` (Debian package wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        print(report(*run(args, Path(work)), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
