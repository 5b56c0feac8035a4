"""Per-key requests and tokens per minute, and budgets per key and per tenant.

:meth:`Limiter.admit` runs before a request is routed; it checks, in this order:

====================  ======  =======================  =====================================
check                 status  ``code``                 ``retry_after_s``
====================  ======  =======================  =====================================
key budget spent      403     ``insufficient_quota``   None (a budget never refills)
tenant budget spent   403     ``insufficient_quota``   None
requests per minute   429     ``rate_limit_exceeded``  until enough requests leave the window
tokens per minute     429     ``rate_limit_exceeded``  until enough tokens leave the window
====================  ======  =======================  =====================================

When both rate limits refuse, the reason names the first and ``retry_after_s`` is the
later of the two. Only admitted requests count towards requests per minute.
:meth:`Limiter.record` adds a finished request's tokens (towards tokens per minute:
a request is admitted while the tokens of the last 60 s are below the limit) and its
cost (towards both budgets). Budgets are soft caps: cost is known only after the
response, so requests in flight when a budget runs out may overshoot it.

Windows. Both implementations count in one-second buckets over the last 60 s: a
request or a token stops counting 59 to 60 s after it was counted (the bucket of
``floor(now)`` and the 59 before it). Memory per key is fixed (at most 60 buckets
per window) and every step is O(1) amortised. Costs are counted in integer nano-USD,
as in :mod:`cloudhedge.gateway.store`.

Budgets start from the accounting store: a key's or tenant's spend is seeded from
``UsageStore.spent_usd`` the first time it is seen (in-process), or when its Redis
counter does not exist yet (shared). If the store cannot be read then, the request
is refused with 503 (fail closed) and the seed is tried again on the next request.

:class:`RedisLimiter` shares all of this across gateway processes: one EVALSHA per
``admit`` and per ``record`` (plus, once per counter, a seed), with the time passed
by the caller (hosts are expected to be NTP-synchronised). Keys, under ``prefix``:
``lim:rpm:<key>`` and ``lim:tpm:<key>`` (hashes of second -> count, expiring 61 s after
their last write), ``lim:spent:key:<key>`` and ``lim:spent:tenant:<tenant>`` (integer
nano-USD, no expiry). One Redis server, not Redis Cluster (a script touches a key's
and its tenant's counters, which need not share a slot). If Redis fails (1 s timeouts
unless the URL sets others), limits fail closed: ``admit`` answers 503
``service_unavailable`` with a 1 s Retry-After, ``record`` drops its counts, and the
failure is logged at most every 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis

from cloudhedge.gateway.config import ApiKey, Tenant
from cloudhedge.gateway.store import NUSD_PER_USD, UsageStore, nusd

log = logging.getLogger(__name__)

WINDOW_S = 60  # the rate-limit window, in one-second buckets
_REDIS_TIMEOUT_S = 1.0  # connect, read and pool-wait timeout, unless the URL sets them
_REDIS_CONNECTIONS = 64  # per process; more concurrent calls wait for a free one


@dataclass(frozen=True)
class Decision:
    """Whether a request may proceed; if not, the HTTP status and OpenAI error code to send."""

    allowed: bool
    reason: str | None = None  # for the client's error message and the logs
    retry_after_s: float | None = None  # for the Retry-After header (round up)
    status: int = 200  # 429 rate limited, 403 budget spent, 503 store unreadable
    code: str | None = None  # OpenAI error code: rate_limit_exceeded, insufficient_quota, ...


ADMITTED = Decision(True)


class Limiter(Protocol):
    """Rate limits and budgets: in-process (:class:`LocalLimiter`) or shared
    (:class:`RedisLimiter`)."""

    async def admit(self, key: ApiKey, tenant: Tenant) -> Decision:
        """Check budgets, requests and tokens per minute; count the request if admitted."""
        ...

    async def record(self, key: ApiKey, tenant: Tenant, tokens: int, cost_usd: float) -> None:
        """Count a finished request's tokens (input + output) and cost."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _key_budget_spent(key: ApiKey) -> Decision:
    return Decision(False, f"API key '{key.name}' has spent its budget of "
                    f"{key.budget_usd:g} USD", None, 403, "insufficient_quota")


def _tenant_budget_spent(tenant: Tenant) -> Decision:
    return Decision(False, f"tenant '{tenant.name}' has spent its budget of "
                    f"{tenant.budget_usd:g} USD", None, 403, "insufficient_quota")


def _rate_limited(key: ApiKey, requests: bool, retry_after_s: float) -> Decision:
    what = (f"{key.requests_per_minute:g} requests" if requests
            else f"{key.tokens_per_minute:g} tokens")
    return Decision(False, f"API key '{key.name}' is limited to {what} per minute",
                    retry_after_s, 429, "rate_limit_exceeded")


def _store_unavailable() -> Decision:
    return Decision(False, "the accounting store cannot be read to check budgets", 1.0, 503,
                    "service_unavailable")


def _redis_unavailable() -> Decision:
    return Decision(False, "the shared rate limiter is unreachable", 1.0, 503,
                    "service_unavailable")


# -- in-process -------------------------------------------------------------------------


class _Window:
    """Counts in one-second buckets over the last :data:`WINDOW_S` seconds."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self.total = 0

    def expire(self, sec: int) -> None:
        oldest = sec - WINDOW_S + 1
        buckets = self.buckets
        while buckets and buckets[0][0] < oldest:
            self.total -= buckets.popleft()[1]

    def add(self, sec: int, n: int) -> None:
        buckets = self.buckets
        if buckets and buckets[-1][0] >= sec:
            buckets[-1][1] += n
        else:
            buckets.append([sec, n])
        self.total += n

    def retry_after(self, limit: float, now: float) -> float:
        """Seconds until the count falls below ``limit`` (after :meth:`expire`)."""
        expired = 0
        for sec, n in self.buckets:
            expired += n
            if self.total - expired < limit:
                return sec + WINDOW_S - now
        return float(WINDOW_S)


class _KeyState:
    __slots__ = ("requests", "spent_nusd", "tokens")

    def __init__(self, spent_nusd: int) -> None:
        self.requests = _Window()
        self.tokens = _Window()
        self.spent_nusd = spent_nusd


class LocalLimiter:
    """Limits within one process: sliding one-second-bucket windows, budgets in memory."""

    def __init__(self, store: UsageStore | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._tenants: dict[str, list[int]] = {}  # tenant -> [spent nano-USD]

    async def _seed(self, key_name: str | None, tenant: str | None) -> int:
        if self._store is None:
            return 0
        spent = await asyncio.to_thread(self._store.spent_usd, key_name=key_name, tenant=tenant)
        return nusd(spent)

    async def _state(self, key: ApiKey, tenant: Tenant) -> tuple[_KeyState, list[int]]:
        """The key's and tenant's state, seeded from the store at first sight."""
        ks = self._keys.get(key.name)
        if ks is None:
            seed = await self._seed(key.name, None)
            ks = self._keys.setdefault(key.name, _KeyState(seed))
        ts = self._tenants.get(tenant.name)
        if ts is None:
            seed = await self._seed(None, tenant.name)
            ts = self._tenants.setdefault(tenant.name, [seed])
        return ks, ts

    async def admit(self, key: ApiKey, tenant: Tenant) -> Decision:
        ks = self._keys.get(key.name)
        ts = self._tenants.get(tenant.name)
        if ks is None or ts is None:
            try:
                ks, ts = await self._state(key, tenant)
            except Exception:
                log.exception("seeding the budgets of key %s / tenant %s", key.name,
                              tenant.name)
                return _store_unavailable()
        if key.budget_usd is not None and ks.spent_nusd >= key.budget_usd * NUSD_PER_USD:
            return _key_budget_spent(key)
        if tenant.budget_usd is not None and ts[0] >= tenant.budget_usd * NUSD_PER_USD:
            return _tenant_budget_spent(tenant)
        rpm, tpm = key.requests_per_minute, key.tokens_per_minute
        if rpm is None and tpm is None:
            return ADMITTED
        now = self._clock()
        sec = math.floor(now)
        refused: Decision | None = None
        if rpm is not None:
            ks.requests.expire(sec)
            if ks.requests.total >= rpm:
                refused = _rate_limited(key, True, ks.requests.retry_after(rpm, now))
        if tpm is not None:
            ks.tokens.expire(sec)
            if ks.tokens.total >= tpm:
                wait = ks.tokens.retry_after(tpm, now)
                if refused is None:
                    refused = _rate_limited(key, False, wait)
                elif wait > (refused.retry_after_s or 0.0):
                    refused = _rate_limited(key, True, wait)
        if refused is not None:
            return refused
        if rpm is not None:
            ks.requests.add(sec, 1)
        return ADMITTED

    async def record(self, key: ApiKey, tenant: Tenant, tokens: int, cost_usd: float) -> None:
        ks = self._keys.get(key.name)
        ts = self._tenants.get(tenant.name)
        if ks is None or ts is None:
            try:
                ks, ts = await self._state(key, tenant)
            except Exception:  # the store has this request: a later seed will count it
                log.exception("seeding the budgets of key %s / tenant %s", key.name,
                              tenant.name)
                return
        if tokens > 0 and key.tokens_per_minute is not None:
            sec = math.floor(self._clock())
            ks.tokens.expire(sec)
            ks.tokens.add(sec, tokens)
        cost = nusd(cost_usd)
        ks.spent_nusd += cost
        ts[0] += cost

    async def close(self) -> None:
        """Nothing to release."""


# -- shared through Redis ----------------------------------------------------------------

# Sums a window hash (field: second, value: count), deleting buckets older than the
# window; returns 0 if the total is below limit, else the milliseconds until it is.
_WINDOW_LUA = """
local function window(key, limit, now, oldest)
  local flat = redis.call('HGETALL', key)
  local total = 0
  local secs = {}
  local counts = {}
  for i = 1, #flat, 2 do
    local sec = tonumber(flat[i])
    if sec < oldest then
      redis.call('HDEL', key, flat[i])
    else
      local n = tonumber(flat[i + 1])
      total = total + n
      secs[#secs + 1] = sec
      counts[sec] = n
    end
  end
  if total < limit then return 0 end
  table.sort(secs)
  local expired = 0
  for _, sec in ipairs(secs) do
    expired = expired + counts[sec]
    if total - expired < limit then return math.ceil((sec + WINDOW - now) * 1000) end
  end
  return WINDOW * 1000
end
"""

# KEYS: rpm hash, tpm hash, key spent, tenant spent
# ARGV: now, rpm, tpm, key budget (nano-USD), tenant budget (nano-USD), seeding ('1'/'0');
#       an empty limit means none.
# Returns {0, 0} admitted; {-1, missing} seed first (bit 1: key, bit 2: tenant);
# {1, 0} key budget; {2, 0} tenant budget; {3 | 4 | 5, retry ms} rpm | tpm | both.
_ADMIT_LUA = f"local WINDOW = {WINDOW_S}\n" + _WINDOW_LUA + """
local now = tonumber(ARGV[1])
local sec = math.floor(now)
local oldest = sec - WINDOW + 1
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local kbudget, tbudget = tonumber(ARGV[4]), tonumber(ARGV[5])
local kspent, tspent = 0, 0
local missing = 0
if kbudget then
  kspent = redis.call('GET', KEYS[3])
  if not kspent then
    if ARGV[6] == '1' then missing = missing + 1 end
    kspent = 0
  end
end
if tbudget then
  tspent = redis.call('GET', KEYS[4])
  if not tspent then
    if ARGV[6] == '1' then missing = missing + 2 end
    tspent = 0
  end
end
if missing > 0 then return {-1, missing} end
if kbudget and tonumber(kspent) >= kbudget then return {1, 0} end
if tbudget and tonumber(tspent) >= tbudget then return {2, 0} end
local code, wait = 0, 0
if rpm then
  local w = window(KEYS[1], rpm, now, oldest)
  if w > 0 then code, wait = 3, w end
end
if tpm then
  local w = window(KEYS[2], tpm, now, oldest)
  if w > 0 then
    if code == 3 then code = 5 else code = 4 end
    if w > wait then wait = w end
  end
end
if code > 0 then return {code, wait} end
if rpm then
  redis.call('HINCRBY', KEYS[1], sec, 1)
  redis.call('PEXPIRE', KEYS[1], (WINDOW + 1) * 1000)
end
return {0, 0}
"""

# KEYS: tpm hash, key spent, tenant spent. ARGV: now, tokens, cost (nano-USD), seeding.
# Returns 0 done, or the missing counters to seed first (bit 1: key, bit 2: tenant).
_RECORD_LUA = f"local WINDOW = {WINDOW_S}\n" + """
if ARGV[4] == '1' then
  local missing = 0
  if redis.call('EXISTS', KEYS[2]) == 0 then missing = missing + 1 end
  if redis.call('EXISTS', KEYS[3]) == 0 then missing = missing + 2 end
  if missing > 0 then return missing end
end
local tokens, cost = tonumber(ARGV[2]), tonumber(ARGV[3])
if tokens > 0 then
  redis.call('HINCRBY', KEYS[1], math.floor(tonumber(ARGV[1])), tokens)
  redis.call('PEXPIRE', KEYS[1], (WINDOW + 1) * 1000)
end
if cost ~= 0 then
  redis.call('INCRBY', KEYS[2], ARGV[3])
  redis.call('INCRBY', KEYS[3], ARGV[3])
end
return 0
"""


def _arg(limit: float | None) -> str:
    return "" if limit is None else repr(float(limit))


def _budget_arg(budget_usd: float | None) -> str:
    return "" if budget_usd is None else str(nusd(budget_usd))


class RedisLimiter:
    """Limits shared by every gateway process using the same Redis and ``prefix``.

    Create and use it within one event loop (its connections belong to that loop).
    """

    def __init__(self, url: str, *, prefix: str = "cloudhedge:", store: UsageStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        # A bounded pool that waits for a free connection, and timeouts (a hung Redis must
        # not hang requests), unless the URL sets its own (?max_connections=...&...).
        self._redis = redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(
            url, max_connections=_REDIS_CONNECTIONS, timeout=_REDIS_TIMEOUT_S,
            socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S))
        self._last_redis_error = -math.inf  # monotonic time it was last logged
        self._prefix = prefix
        self._store = store
        self._seeding = "1" if store is not None else "0"
        self._clock = clock
        self._admit = self._redis.register_script(_ADMIT_LUA)
        self._record = self._redis.register_script(_RECORD_LUA)
        self._key_names: dict[str, tuple[str, str, str]] = {}  # key -> rpm, tpm, spent
        self._tenant_names: dict[str, str] = {}  # tenant -> spent

    def _names(self, key: ApiKey, tenant: Tenant) -> tuple[tuple[str, str, str], str]:
        k = self._key_names.get(key.name)
        if k is None:
            p = self._prefix
            k = self._key_names[key.name] = (f"{p}lim:rpm:{key.name}", f"{p}lim:tpm:{key.name}",
                                             f"{p}lim:spent:key:{key.name}")
        t = self._tenant_names.get(tenant.name)
        if t is None:
            t = self._tenant_names[tenant.name] = f"{self._prefix}lim:spent:tenant:{tenant.name}"
        return k, t

    async def _seed(self, missing: int, key: ApiKey, tenant: Tenant) -> None:
        """Create the missing spent counters from the store (SET NX: the first seed wins)."""
        if self._store is None:
            return
        (_, _, kspent), tspent = self._names(key, tenant)
        if missing & 1:
            spent = await asyncio.to_thread(self._store.spent_usd, key_name=key.name)
            await self._redis.set(kspent, nusd(spent), nx=True)
        if missing & 2:
            spent = await asyncio.to_thread(self._store.spent_usd, tenant=tenant.name)
            await self._redis.set(tspent, nusd(spent), nx=True)

    async def admit(self, key: ApiKey, tenant: Tenant) -> Decision:
        if (key.requests_per_minute is None and key.tokens_per_minute is None
                and key.budget_usd is None and tenant.budget_usd is None):
            return ADMITTED
        (rpm_key, tpm_key, kspent), tspent = self._names(key, tenant)
        args = (repr(self._clock()), _arg(key.requests_per_minute), _arg(key.tokens_per_minute),
                _budget_arg(key.budget_usd), _budget_arg(tenant.budget_usd), self._seeding)
        keys = (rpm_key, tpm_key, kspent, tspent)
        try:
            code, value = await self._admit(keys=keys, args=args)
            if code == -1:
                try:
                    await self._seed(value, key, tenant)
                except redis.RedisError:
                    raise
                except Exception:
                    log.exception("seeding the budgets of key %s / tenant %s", key.name,
                                  tenant.name)
                    return _store_unavailable()
                code, value = await self._admit(keys=keys, args=args)
        except redis.RedisError as e:
            self._redis_failed(e)
            return _redis_unavailable()
        if code == 0:
            return ADMITTED
        if code == 1:
            return _key_budget_spent(key)
        if code == 2:
            return _tenant_budget_spent(tenant)
        return _rate_limited(key, code != 4, value / 1000)

    async def record(self, key: ApiKey, tenant: Tenant, tokens: int, cost_usd: float) -> None:
        cost = nusd(cost_usd)
        # Tokens count towards the window only for keys with a tokens-per-minute limit.
        n = tokens if key.tokens_per_minute is not None else 0
        if n <= 0 and cost == 0:
            return
        (_, tpm_key, kspent), tspent = self._names(key, tenant)
        keys = (tpm_key, kspent, tspent)
        args = (repr(self._clock()), n, cost, self._seeding)
        try:
            missing = await self._record(keys=keys, args=args)
            if missing:
                await self._seed(missing, key, tenant)
                await self._record(keys=keys, args=args)
        except redis.RedisError as e:
            self._redis_failed(e)
        except Exception:  # the store has this request: a later seed will count it
            log.exception("seeding the budgets of key %s / tenant %s", key.name, tenant.name)

    def _redis_failed(self, e: redis.RedisError) -> None:
        """Log a Redis failure, at most once per 10 s."""
        now = time.monotonic()
        if now - self._last_redis_error >= 10.0:
            self._last_redis_error = now
            log.error("Redis for rate limits failed (requests get 503 meanwhile): %r", e)

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter(redis_url: str | None, store: UsageStore | None,
                 prefix: str = "cloudhedge:") -> Limiter:
    """A :class:`RedisLimiter` when a Redis URL is configured, else a :class:`LocalLimiter`."""
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix, store=store)
    return LocalLimiter(store)
