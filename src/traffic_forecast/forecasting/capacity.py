"""Instances needed per hour: per-instance capacity learnt from the infrastructure data.

An instance's capacity is the load it carries per unit of CPU: ``sessions / (instances · cpu)``,
the median over the most recent hours (busy enough for CPU to measure load, not noise). The
instances to run for a forecast are then ``ceil(load / (capacity · target utilisation))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from traffic_forecast.core.errors import DataValidationError
from traffic_forecast.data.schemas import InfrastructureRaw, TrafficRaw

# Past any fleet this sizes; a target utilisation near 0 would otherwise overflow int64.
MAX_INSTANCES = 1_000_000


@dataclass(frozen=True)
class Capacity:
    """Sessions per hour one instance serves at 100 % CPU, and the hours it was learnt from."""

    sessions_per_instance: float
    hours: int

    def instances_needed(
        self, load: npt.ArrayLike, target_utilisation: float
    ) -> npt.NDArray[np.int64]:
        """Instances to run so that ``load`` keeps CPU at ``target_utilisation`` (≥ 1 each)."""
        if not 0.0 < target_utilisation <= 1.0:
            raise ValueError(f"target utilisation {target_utilisation} must lie in (0, 1]")
        per_instance = self.sessions_per_instance * target_utilisation
        needed = np.ceil(np.asarray(load, dtype=float) / per_instance)
        if not np.isfinite(needed).all() or needed.max(initial=0.0) > MAX_INSTANCES:
            raise ValueError(
                f"target utilisation {target_utilisation:g} needs more than {MAX_INSTANCES:,} "
                "instances in an hour: no fleet is sized at that level"
            )
        return np.maximum(needed, 1).astype(np.int64)


def learn_capacity(
    traffic: pd.DataFrame, infrastructure: pd.DataFrame, *, window_hours: int, min_cpu: float
) -> Capacity:
    """Median per-instance capacity over the last ``window_hours`` with CPU ≥ ``min_cpu``."""
    joined = traffic.merge(infrastructure, on=TrafficRaw.timestamp).tail(window_hours)
    busy = joined[joined[InfrastructureRaw.cpu_utilization] >= min_cpu]
    if busy.empty:
        raise DataValidationError(
            f"no hour in the last {window_hours} with CPU ≥ {min_cpu}: cannot learn capacity"
        )
    per_instance = busy[TrafficRaw.target] / (
        busy[InfrastructureRaw.instances].astype(float) * busy[InfrastructureRaw.cpu_utilization]
    )
    return Capacity(float(per_instance.median()), len(busy))
