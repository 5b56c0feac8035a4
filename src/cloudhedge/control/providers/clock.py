"""The injected clock: the only way adapters (and the control loop) read or wait on time.

Time is a float in seconds. :class:`SystemClock` is unix time with ``asyncio.sleep``;
:class:`ManualClock` is virtual time that only moves when :meth:`ManualClock.advance`
is called, so a simulator (or a test) drives the same code without waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Reads and waits on time. Code under the control plane never calls ``time`` itself."""

    def now(self) -> float:
        """Seconds; unix time for :class:`SystemClock`, arbitrary origin otherwise."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``now() >= start + seconds`` on this clock."""
        ...


class SystemClock:
    """Wall time: ``time.time()`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """Virtual time: ``now`` moves only through :meth:`advance`; sleepers wake when due."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper now due (they run at the next await)."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


async def every(clock: Clock, interval_s: float, stop: asyncio.Event,
                step: Callable[[], Awaitable[object]], what: str, *,
                wake: asyncio.Event | None = None, wake_gap_s: float = 0.0) -> None:
    """Await ``step()`` every ``interval_s`` on ``clock`` until ``stop`` is set.

    A step that raises is logged and the loop goes on (a control loop must outlive
    one bad pass); setting ``stop`` ends the wait at once. Setting ``wake`` brings the
    next step forward, to ``max(wake_gap_s, 2 x the last step's time)`` after the last
    one: wake-ups arriving meanwhile make one step, and steps woken back to back
    take at most a third of the time (a full step grows with the state it reads).
    """
    while not stop.is_set():
        if wake is not None:
            wake.clear()
        started = clock.now()
        try:
            await step()
        except Exception:
            log.exception("%s failed; retrying next interval", what)
        took = clock.now() - started
        ended = clock.now()
        sleeper = asyncio.ensure_future(clock.sleep(interval_s))
        stopper = asyncio.ensure_future(stop.wait())
        waker = None if wake is None else asyncio.ensure_future(wake.wait())
        waits = {sleeper, stopper} if waker is None else {sleeper, stopper, waker}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if waker is not None and waker.done() and not (sleeper.done() or stopper.done()):
            gap = max(wake_gap_s, 2 * took) - (clock.now() - ended)
            if gap > 0:  # let more wake-ups gather, and the loop breathe
                debounce = asyncio.ensure_future(clock.sleep(gap))
                await asyncio.wait({debounce, sleeper, stopper},
                                   return_when=asyncio.FIRST_COMPLETED)
                debounce.cancel()
        for task in (sleeper, stopper, waker):
            if task is not None and not task.done():
                task.cancel()
