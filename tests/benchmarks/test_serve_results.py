"""The serving benchmark's verdicts: a contender that answers nothing is a MISSED, not a crash.

The benchmark itself takes minutes (``make bench``); its arithmetic is checked here.
"""

from __future__ import annotations

import sys

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # serve.py runs with benchmarks/ on its path
from serving.results import Load, Round, parse_wrk, summary

KINDS = ["default", "coverage", "what-if", "capacity"]
NOTHING = parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")
WRK = """Running 3s test @ http://127.0.0.1:3000/forecast
  Latency Distribution
     50%    3.10ms
     99%    6.24ms
  14571 requests in 3.00s, 20.01MB read
Requests/sec:   4857.12
"""


def _load(rate: float, p99: float = 5.0, budget: int = 0) -> Load:
    return Load(rate, 2.0, p99, 0, 0, {"budget": budget, "error": 0})


def test_wrks_report_is_read() -> None:
    load = parse_wrk(WRK)
    assert (load.requests_per_s, load.p50_ms, load.p99_ms) == (4857.12, 3.10, 6.24)
    assert NOTHING.requests_per_s == 0


def test_a_contender_answering_nothing_is_missed_not_a_crash() -> None:
    rounds = [Round(1, kind, NOTHING, NOTHING) for kind in KINDS]
    printed = summary(rounds, NOTHING, KINDS, workers=1)
    assert "n/a" in printed
    assert printed.count("MISSED") >= len(KINDS)
    assert " met" not in printed


def test_targets_are_judged_per_kind() -> None:
    rounds = [
        Round(1, "default", _load(750), _load(1000)),
        Round(1, "coverage", _load(600), _load(1000)),
        Round(1, "what-if", _load(400, p99=30.0, budget=2), _load(1000)),
        Round(1, "capacity", _load(400), _load(1000)),
    ]
    lines = summary(rounds, None, KINDS, workers=1).splitlines()
    verdicts = [line for line in lines if "target" in line and ("met" in line or "MISSED" in line)]

    def verdict(kind: str, what: str) -> str:
        return next(line for line in verdicts if line.startswith(kind) and what in line)

    assert verdict("default", "service / bare").endswith("met")  # 0.75 >= 0.7
    assert verdict("coverage", "coverage / default").endswith("MISSED")  # 600 / 750 = 0.8 < 0.9
    assert verdict("what-if", "p99").endswith("MISSED")  # 30 ms > 25 ms
    assert verdict("what-if", "fallbacks").endswith("MISSED")  # 2 budget fallbacks
    assert verdict("capacity", "service / bare").endswith("MISSED")  # 0.4 < 0.5
