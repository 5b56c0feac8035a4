"""What a scenario does, as arrays over the fleet's pools (P), periods (T) and samples (N).

One scenario is ``N = 1``; a Monte Carlo run is ``N`` samples of the same shapes, so the
impact code is written once, vectorised over the leading sample axis.

Capacity loss is described by two arrays: while a pool is down in period ``t`` it has
lost ``lost_fraction`` of its chips, for ``down_hours`` of the period's hours. The
period-average share of capacity left is ``1 - lost_fraction * down_hours / H``
(:meth:`Effects.capacity_factor`); training uses ``down_hours`` itself (a gang stops
for the outage, whatever its share of the month).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Effects:
    """Per sample, pool and period: capacity lost, prices; per workload: demand factors."""

    lost_fraction: FloatArray  # (N, P, T) in [0, 1]: share of the pool's chips down
    down_hours: FloatArray  # (N, P, T) in [0, H]: hours of the period that share is down
    price_factor: FloatArray  # (N, P, T) > 0: multiplier on the pool's price per chip-hour
    period_hours: float  # H
    # workload name -> (N, T) multiplier on its demand (inference tokens/s, batch
    # chip-hours spread over its window); workloads not named are unchanged
    demand_factor: dict[str, FloatArray] = field(default_factory=dict)
    start: int = 0  # first period any event touches (replanning fixes the periods before)

    @property
    def samples(self) -> int:
        return int(self.lost_fraction.shape[0])

    def capacity_factor(self) -> FloatArray:
        """(N, P, T) period-average share of each pool's capacity that is up."""
        return 1.0 - self.lost_fraction * np.minimum(self.down_hours / self.period_hours, 1.0)

    @staticmethod
    def none(n: int, pools: int, periods: int, period_hours: float) -> Effects:
        """No event: every pool fully up at its own price."""
        shape = (n, pools, periods)
        return Effects(np.zeros(shape), np.zeros(shape), np.ones(shape), period_hours)
