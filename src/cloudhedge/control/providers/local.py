"""This machine as one pool: provider ``local``, accelerator ``cpu``, chips = CPUs.

Instances are real local processes, run by the same engine as the emulated clouds
(same environment variables, logs and exit-code rules; see
:mod:`cloudhedge.control.providers.emulated`), with no launch latency, no faults
and no preemption. Unlike a cloud, this machine does not outlive the control plane:
:meth:`LocalProvider.close` terminates the instances it started.
"""

from __future__ import annotations

import os
from pathlib import Path

from cloudhedge.control.providers._world import Slot, World, WorldProvider
from cloudhedge.control.providers.base import Capabilities
from cloudhedge.control.providers.clock import Clock
from cloudhedge.core.models import Tier

LOCAL = "local"


class LocalProvider(WorldProvider):
    """One pool named ``local`` of ``chips`` CPU "chips" (default: ``os.cpu_count()``)."""

    def __init__(self, *, clock: Clock, workdir: Path | None = None,
                 chips: int | None = None) -> None:
        slot = Slot(pool=LOCAL, provider=LOCAL, region=LOCAL, accelerator="cpu",
                    tier=Tier.ON_DEMAND, price_usd_per_chip_hour=0.0,
                    capacity_chips=chips if chips is not None else os.cpu_count() or 1)
        capabilities = Capabilities(spot=False, multi_node=False, preemption_signals=False,
                                    real_processes=True)
        super().__init__(World([slot], clock, workdir=workdir), LOCAL, capabilities)

    @property
    def workdir(self) -> Path | None:
        """Where checkpoints and logs go."""
        return self._world.workdir

    async def close(self) -> None:
        """Terminate the instances this adapter started and reap their processes."""
        await self._world.shutdown()
