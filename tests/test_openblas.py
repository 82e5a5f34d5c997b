"""OpenBLAS runs the same kernels on every x86-64 CPU with AVX2: the same model bytes everywhere.

An AVX-512 machine's own kernels trained a model whose floats differed in their last bits from
an AVX2 machine's (another `models` hash in dvc.lock); importing the package pins them first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import traffic_forecast

PROBE = (
    "import traffic_forecast, numpy, scipy.linalg, json, threadpoolctl; "
    "print(json.dumps([i.get('architecture') for i in threadpoolctl.threadpool_info() "
    "if i['internal_api'] == 'openblas']))"
)


def _kernels(extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"} | extra
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    found: list[str] = json.loads(done.stdout)
    return found


@pytest.mark.skipif(
    not traffic_forecast._runs_haswell_kernels(), reason="this CPU has no AVX2 and FMA"
)
def test_numpy_and_scipy_run_the_haswell_kernels_and_a_users_choice_wins() -> None:
    assert _kernels({}) == ["Haswell", "Haswell"]  # numpy's OpenBLAS, and scipy's
    assert _kernels({"OPENBLAS_CORETYPE": "Sandybridge"}) == ["Sandybridge", "Sandybridge"]
