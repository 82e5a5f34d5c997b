"""GitOps ML template: hourly e-retail traffic forecasting."""

import os
import platform
import re
import warnings
from pathlib import Path

# With PySpark installed (fleet mode), Pandera imports pyspark.pandas, which warns on every start
# under pandas 3 that it "does not yet fully support" it. Nothing here uses pyspark.pandas; the
# warning would otherwise precede every command's output (a one-line error would become three).
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

# OpenBLAS (numpy's and scipy's) picks its kernels for the CPU it loads on, and an AVX-512
# machine's kernels add floats in another order than an AVX2 machine's: the model it trains
# differs in its last bits, and so would dvc.lock's `models` hash. Every x86-64 CPU with AVX2
# and FMA runs the Haswell kernels, so they are pinned here, before anything loads numpy: the
# same bytes on any of them (README, "Same inputs, same bytes"). A user's own setting wins;
# other CPUs are left to OpenBLAS.
OPENBLAS_KERNELS = "Haswell"
_CPU_FLAGS = re.compile(r"^flags\s*:(.*)$", re.MULTILINE)


def _runs_haswell_kernels() -> bool:
    if platform.machine() != "x86_64":
        return False
    try:
        found = _CPU_FLAGS.search(Path("/proc/cpuinfo").read_text(encoding="utf-8"))
    except OSError:  # not Linux
        return False
    return found is not None and {"avx2", "fma"} <= set(found.group(1).split())


if _runs_haswell_kernels():
    os.environ.setdefault("OPENBLAS_CORETYPE", OPENBLAS_KERNELS)
