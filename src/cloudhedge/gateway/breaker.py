"""Per-deployment circuit breakers: passive health for routing and failover.

States and transitions (``threshold`` = ``HealthPolicy.failure_threshold``,
``cooldown`` = ``HealthPolicy.cooldown_s``)::

    CLOSED --threshold consecutive failures, or one with Retry-After--> OPEN
    OPEN --cooldown (or Retry-After, if longer) elapsed, next available()--> HALF_OPEN
    HALF_OPEN: one trial request; success --> CLOSED, failure --> OPEN again
    any --drain(True)--> DRAINED --drain(False)--> CLOSED (failures reset)

Rules callers rely on:

- ``available`` is True in CLOSED; False in OPEN until ``open_until`` and in DRAINED.
  The first call after the cooldown turns the breaker HALF_OPEN and returns True: that
  caller holds the one trial (atomically, across processes for :class:`RedisBreakers`);
  everyone else gets False until the trial reports. A trial that never reports (a
  cancelled request) is given up after ``cooldown`` and the next caller gets a new one.
- ``success`` closes the breaker from CLOSED or HALF_OPEN and resets the failure count.
  A success arriving while OPEN (a request sent before the breaker opened) is ignored:
  the cooldown and the trial decide. Report success when the upstream answered
  (status and headers received), not at the end of a long stream.
- ``failure`` counts a consecutive failure. With ``retry_after_s`` (an upstream 429/503
  Retry-After) the breaker opens at once, for ``max(cooldown, retry_after_s)``; while
  OPEN a longer Retry-After extends ``open_until``. Any failure in HALF_OPEN re-opens.
- DRAINED (admin) is never available; failures are still counted there.
- ``BreakerState.open_until`` is in the breaker's clock: ``time.monotonic`` for
  :class:`LocalBreakers`, unix time for :class:`RedisBreakers` (hosts NTP-synchronised).
  ``state`` reports an OPEN breaker whose cooldown has elapsed as HALF_OPEN.

:class:`RedisBreakers` keeps one hash per deployment (``<prefix>breaker:<deployment>``,
no expiry); every call is one EVALSHA (``state`` one HMGET, ``drain`` one HSET), but
``success`` makes none when this process's last ``available`` saw the breaker closed
with no failure counted and this process reported no failure since (so a success no
longer resets failures another process counted in between: "consecutive" is judged
per process at that moment, which opens slightly sooner, never later).
If Redis fails (1 s timeouts unless the URL sets others), breakers fail open:
``available`` returns True and ``success``/``failure`` are dropped, logged at most
every 10 s; ``state`` and ``drain`` raise ``redis.RedisError``.
Error texts are kept up to 1000 characters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, cast

import redis.asyncio as redis

from cloudhedge.gateway.config import HealthPolicy

log = logging.getLogger(__name__)

_ERROR_CHARS = 1000  # longest last_error kept
_REDIS_TIMEOUT_S = 1.0  # connect, read and pool-wait timeout, unless the URL sets them
_REDIS_CONNECTIONS = 64  # per process; more concurrent calls wait for a free one


class State(StrEnum):
    CLOSED = "closed"  # healthy: routed to
    OPEN = "open"  # failing: not routed to until open_until
    HALF_OPEN = "half_open"  # cooled down: one trial request decides
    DRAINED = "drained"  # taken out by an operator


@dataclass(frozen=True)
class BreakerState:
    state: State
    failures: int  # consecutive failures
    open_until: float | None  # in the breaker's clock; None unless OPEN/HALF_OPEN
    last_error: str | None


class Breakers(Protocol):
    """Circuit breakers by deployment name; in-process or shared through Redis."""

    async def available(self, deployment: str) -> bool:
        """Whether a request may be sent now (taking the half-open trial if it is free)."""
        ...

    async def success(self, deployment: str) -> None:
        """The deployment answered: close the breaker."""
        ...

    async def failure(self, deployment: str, error: str, *,
                      retry_after_s: float | None = None) -> None:
        """The deployment failed (connection error, timeout, 5xx, 429)."""
        ...

    async def state(self, deployment: str) -> BreakerState:
        """The breaker's state, for status pages and tests."""
        ...

    async def drain(self, deployment: str, drained: bool) -> None:
        """Take a deployment out of routing (True) or put it back, closed (False)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


_CLOSED = BreakerState(State.CLOSED, 0, None, None)


class _Breaker:
    __slots__ = ("failures", "last_error", "open_until", "state", "trial_until")

    def __init__(self) -> None:
        self.state = State.CLOSED
        self.failures = 0
        self.open_until = 0.0
        self.trial_until = 0.0
        self.last_error: str | None = None


class LocalBreakers:
    """Breakers within one process (one event loop: every method is atomic)."""

    def __init__(self, policy: HealthPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = max(1, policy.failure_threshold)
        self._cooldown_s = policy.cooldown_s
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}

    async def available(self, deployment: str) -> bool:
        b = self._breakers.get(deployment)
        if b is None or b.state is State.CLOSED:
            return True
        if b.state is State.DRAINED:
            return False
        now = self._clock()
        if b.state is State.OPEN:
            if now < b.open_until:
                return False
            b.state = State.HALF_OPEN
        elif now < b.trial_until:  # HALF_OPEN, trial in flight
            return False
        b.trial_until = now + self._cooldown_s
        return True

    async def success(self, deployment: str) -> None:
        b = self._breakers.get(deployment)
        if b is None or b.state in (State.OPEN, State.DRAINED):
            return
        if b.state is State.HALF_OPEN:
            log.info("deployment %s: circuit closed", deployment)
        b.state = State.CLOSED
        b.failures = 0

    async def failure(self, deployment: str, error: str, *,
                      retry_after_s: float | None = None) -> None:
        b = self._breakers.get(deployment)
        if b is None:
            b = self._breakers[deployment] = _Breaker()
        b.failures += 1
        b.last_error = error[:_ERROR_CHARS]
        if b.state is State.DRAINED:
            return
        now = self._clock()
        hold = self._cooldown_s if retry_after_s is None else max(self._cooldown_s,
                                                                    retry_after_s)
        if b.state is State.OPEN:
            if retry_after_s is not None:
                b.open_until = max(b.open_until, now + hold)
        elif (b.state is State.HALF_OPEN or retry_after_s is not None
              or b.failures >= self._threshold):
            b.state = State.OPEN
            b.open_until = now + hold
            b.trial_until = 0.0
            log.warning("deployment %s: circuit open for %.1f s after %d failure(s): %s",
                        deployment, hold, b.failures, error)

    async def state(self, deployment: str) -> BreakerState:
        b = self._breakers.get(deployment)
        if b is None:
            return _CLOSED
        state = b.state
        if state is State.OPEN and self._clock() >= b.open_until:
            state = State.HALF_OPEN
        open_until = b.open_until if state in (State.OPEN, State.HALF_OPEN) else None
        return BreakerState(state, b.failures, open_until, b.last_error)

    async def drain(self, deployment: str, drained: bool) -> None:
        b = self._breakers.get(deployment)
        if b is None:
            b = self._breakers[deployment] = _Breaker()
        if drained:
            b.state = State.DRAINED
        else:
            b.state = State.CLOSED
            b.failures = 0
        log.info("deployment %s: %s", deployment, "drained" if drained else "enabled")

    async def close(self) -> None:
        """Nothing to release."""


# KEYS: the breaker hash. ARGV: now, trial lease (s).
# Returns 2 available and clean (closed, no failure counted), 1 available, 0 not.
_AVAILABLE_LUA = """
local v = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'trial_until', 'failures')
local s = v[1]
if not s or s == 'closed' then
  if (v[4] or '0') == '0' then return 2 end
  return 1
end
if s == 'drained' then return 0 end
local now = tonumber(ARGV[1])
if s == 'open' then
  if now < tonumber(v[2]) then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'half_open')
elseif v[3] and now < tonumber(v[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'trial_until', now + tonumber(ARGV[2]))
return 1
"""

# KEYS: the breaker hash. Returns 1 if it closed from HALF_OPEN, else 0.
_SUCCESS_LUA = """
local v = redis.call('HMGET', KEYS[1], 'state', 'failures')
local s = v[1] or 'closed'
if s == 'open' or s == 'drained' or (s == 'closed' and (v[2] or '0') == '0') then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
if s == 'half_open' then return 1 end
return 0
"""

# KEYS: the breaker hash. ARGV: now, error, threshold, cooldown, retry-after ('' none).
# Returns {1 if it opened now, failures, open seconds as a string}.
_FAILURE_LUA = """
local v = redis.call('HMGET', KEYS[1], 'state', 'failures', 'open_until')
local s = v[1] or 'closed'
local failures = tonumber(v[2] or '0') + 1
redis.call('HSET', KEYS[1], 'failures', failures, 'last_error', ARGV[2])
if s == 'drained' then return {0, failures, ''} end
local now, cooldown = tonumber(ARGV[1]), tonumber(ARGV[4])
local ra = tonumber(ARGV[5])
local hold = cooldown
if ra and ra > cooldown then hold = ra end
if s == 'open' then
  if ra and now + hold > tonumber(v[3]) then
    redis.call('HSET', KEYS[1], 'open_until', now + hold)
  end
  return {0, failures, ''}
end
if s == 'half_open' or ra or failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + hold, 'trial_until', 0)
  return {1, failures, tostring(hold)}
end
return {0, failures, ''}
"""


class RedisBreakers:
    """Breakers shared by every gateway process using the same Redis and ``prefix``.

    Create and use it within one event loop (its connections belong to that loop).
    """

    def __init__(self, url: str, policy: HealthPolicy, *, prefix: str = "cloudhedge:",
                 clock: Callable[[], float] = time.time) -> None:
        # A bounded pool that waits for a free connection, and timeouts, unless the URL
        # sets its own (?max_connections=...&socket_timeout=...).
        self._redis = redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=_REDIS_CONNECTIONS,
            timeout=_REDIS_TIMEOUT_S, socket_timeout=_REDIS_TIMEOUT_S,
            socket_connect_timeout=_REDIS_TIMEOUT_S))
        self._last_redis_error = -math.inf  # monotonic time it was last logged
        self._prefix = f"{prefix}breaker:"
        self._threshold = str(max(1, policy.failure_threshold))
        self._cooldown = repr(float(policy.cooldown_s))
        self._clock = clock
        self._available = self._redis.register_script(_AVAILABLE_LUA)
        self._success = self._redis.register_script(_SUCCESS_LUA)
        self._failure = self._redis.register_script(_FAILURE_LUA)
        self._names: dict[str, tuple[str]] = {}
        # Deployments seen closed with no failure by this process's last available() and
        # failure() since: their success() needs no round trip.
        self._clean: set[str] = set()

    def _keys(self, deployment: str) -> tuple[str]:
        keys = self._names.get(deployment)
        if keys is None:
            keys = self._names[deployment] = (self._prefix + deployment,)
        return keys

    async def available(self, deployment: str) -> bool:
        try:
            answer = await self._available(keys=self._keys(deployment),
                                           args=(repr(self._clock()), self._cooldown))
        except redis.RedisError as e:
            self._redis_failed(e)
            return True
        if answer == 2:
            self._clean.add(deployment)
        else:
            self._clean.discard(deployment)
        return bool(answer)

    async def success(self, deployment: str) -> None:
        if deployment in self._clean:
            return  # closed with no failure at the last look: nothing to reset
        try:
            closed = await self._success(keys=self._keys(deployment))
        except redis.RedisError as e:
            self._redis_failed(e)
            return
        if closed:
            log.info("deployment %s: circuit closed", deployment)

    async def failure(self, deployment: str, error: str, *,
                      retry_after_s: float | None = None) -> None:
        self._clean.discard(deployment)
        ra = "" if retry_after_s is None else repr(float(retry_after_s))
        try:
            opened, failures, hold = await self._failure(
                keys=self._keys(deployment),
                args=(repr(self._clock()), error[:_ERROR_CHARS], self._threshold,
                      self._cooldown, ra))
        except redis.RedisError as e:
            self._redis_failed(e)
            return
        if opened:
            log.warning("deployment %s: circuit open for %s s after %d failure(s): %s",
                        deployment, hold, failures, error)

    async def state(self, deployment: str) -> BreakerState:
        fields = cast("list[str | None]", await self._redis.hmget(  # decode_responses: str
            self._keys(deployment)[0], ["state", "failures", "open_until", "last_error"]))
        s, failures, open_until, last_error = fields
        if s is None and failures is None:
            return _CLOSED
        state = State(s or State.CLOSED)
        until = float(open_until) if open_until is not None else None
        if state is State.OPEN and until is not None and self._clock() >= until:
            state = State.HALF_OPEN
        return BreakerState(state, int(failures or 0),
                            until if state in (State.OPEN, State.HALF_OPEN) else None,
                            last_error)

    async def drain(self, deployment: str, drained: bool) -> None:
        key = self._keys(deployment)[0]
        if drained:
            await self._redis.hset(key, "state", State.DRAINED.value)
        else:
            await self._redis.hset(key, mapping={"state": State.CLOSED.value, "failures": 0})
        log.info("deployment %s: %s", deployment, "drained" if drained else "enabled")

    def _redis_failed(self, e: redis.RedisError) -> None:
        """Log a Redis failure, at most once per 10 s."""
        now = time.monotonic()
        if now - self._last_redis_error >= 10.0:
            self._last_redis_error = now
            log.error("Redis for circuit breakers failed (all deployments count as "
                      "available meanwhile): %r", e)

    async def close(self) -> None:
        await self._redis.aclose()


def make_breakers(redis_url: str | None, policy: HealthPolicy,
                  prefix: str = "cloudhedge:") -> Breakers:
    """:class:`RedisBreakers` when a Redis URL is configured, else :class:`LocalBreakers`."""
    if redis_url:
        return RedisBreakers(redis_url, policy, prefix=prefix)
    return LocalBreakers(policy)
