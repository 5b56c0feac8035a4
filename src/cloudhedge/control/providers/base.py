"""The provider interface: the one small contract every cloud adapter implements.

Values (frozen): :class:`Offer` (what a pool can take now), :class:`LaunchRequest`,
:class:`Instance` (a snapshot of what runs), :class:`HealthSignal`, :class:`Capabilities`
and :class:`Scope` (a failure domain, as data).

Errors, each carrying the :class:`Scope` to block on failover::

    CloudhedgeError
     +-- ProviderError          scope: the failure domain it concerns
          +-- CapacityUnavailable  no capacity in scope now: block scope, place elsewhere
          +-- QuotaExceeded        account limit in scope: block scope, place elsewhere
          +-- Transient            try again in the same place, with backoff
          +-- PermissionDenied     credentials or rights: stop, an operator must act
          +-- NotFound             no such instance (scope: the provider)
          +-- InvalidRequest       the request can never succeed as written (a caller bug)

Rules every adapter follows (the contract suite checks them):

- ``launch`` is idempotent on ``idempotency_key``: the same key returns the same
  instance, whatever its state, and never launches (nor counts capacity) twice; the
  same key with a different request raises :class:`InvalidRequest`. A launch that
  raised did not record the key, so it may be retried with it.
- ``launch`` returns at once, usually ``pending``; it never waits for the instance.
- ``terminate`` is idempotent: an unknown or already ended instance is not an error.
- ``list_instances`` returns every instance the adapter knows, ended ones included,
  so a restarted control plane adopts what runs by ``idempotency_key``.
- ``signals`` returns the health and preemption signals since the previous call.
- No method sleeps on wall time: time is read and awaited only through the adapter's
  injected :class:`~cloudhedge.control.providers.clock.Clock`.
- Adapters translate SDK errors into these types; callers decide by type, never by
  message text. SDKs are imported lazily, inside the adapter, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from cloudhedge.core.errors import CloudhedgeError
from cloudhedge.core.models import Tier


class ScopeKind(StrEnum):
    """How much a failure blocks, from narrow to wide (accelerator spans providers)."""

    POOL = "pool"
    ZONE = "zone"
    REGION = "region"
    PROVIDER = "provider"
    ACCELERATOR = "accelerator"


class Located(Protocol):
    """Anything placed somewhere: an :class:`Offer` or an :class:`Instance`."""

    @property
    def provider(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def zone(self) -> str | None: ...
    @property
    def accelerator(self) -> str: ...
    @property
    def pool(self) -> str: ...


@dataclass(frozen=True)
class Scope:
    """A failure domain. Names: pool ``p``, zone ``aws/us-east-1/us-east-1a``, region
    ``aws/us-east-1``, provider ``aws``, accelerator ``h100`` (on every provider)."""

    kind: ScopeKind
    name: str

    @classmethod
    def of_pool(cls, pool: str) -> Scope:
        return cls(ScopeKind.POOL, pool)

    @classmethod
    def of_zone(cls, provider: str, region: str, zone: str) -> Scope:
        return cls(ScopeKind.ZONE, f"{provider}/{region}/{zone}")

    @classmethod
    def of_region(cls, provider: str, region: str) -> Scope:
        return cls(ScopeKind.REGION, f"{provider}/{region}")

    @classmethod
    def of_provider(cls, provider: str) -> Scope:
        return cls(ScopeKind.PROVIDER, provider)

    @classmethod
    def of_accelerator(cls, accelerator: str) -> Scope:
        return cls(ScopeKind.ACCELERATOR, accelerator)

    def covers(self, where: Located) -> bool:
        """Whether ``where`` (an offer or an instance) lies inside this failure domain."""
        match self.kind:
            case ScopeKind.POOL:
                return self.name == where.pool
            case ScopeKind.ZONE:
                return where.zone is not None and (
                    self.name == f"{where.provider}/{where.region}/{where.zone}")
            case ScopeKind.REGION:
                return self.name == f"{where.provider}/{where.region}"
            case ScopeKind.PROVIDER:
                return self.name == where.provider
            case ScopeKind.ACCELERATOR:
                return self.name == where.accelerator

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class ProviderError(CloudhedgeError):
    """An adapter failure; ``scope`` is the failure domain it concerns."""

    def __init__(self, message: str, *, scope: Scope) -> None:
        super().__init__(f"{message} [{scope}]")
        self.scope = scope


class CapacityUnavailable(ProviderError):
    """No capacity in ``scope`` now (full pool, outage, stockout): place elsewhere."""


class QuotaExceeded(ProviderError):
    """An account limit in ``scope`` is reached: place elsewhere or raise the quota."""


class Transient(ProviderError):
    """A passing failure (throttling, timeout): retry in the same place, with backoff."""


class PermissionDenied(ProviderError):
    """Credentials or rights are missing: do not retry; an operator must act."""


class NotFound(ProviderError):
    """The adapter knows no such instance."""


class InvalidRequest(ProviderError):
    """The request can never succeed as written (unknown pool, key reused, ...)."""


class InstanceState(StrEnum):
    """``pending -> running -> succeeded | failed``; ``terminated`` and ``preempted``
    from either of the first two. The last four are terminal and free capacity."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TERMINATED = "terminated"
    PREEMPTED = "preempted"

    @property
    def ended(self) -> bool:
        return self not in (InstanceState.PENDING, InstanceState.RUNNING)


class SignalKind(StrEnum):
    OUTAGE = "outage"  # the scope is down: instances there failed, launches there fail
    RESTORED = "restored"  # the scope is back
    PREEMPTED = "preempted"  # ``instance_id`` was preempted (spot reclaim)


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do; the control plane plans around what it cannot."""

    spot: bool  # offers spot pools, whose instances may be preempted
    multi_node: bool  # one launch may hold a gang spanning machines, all or nothing
    preemption_signals: bool  # reports preemptions through ``signals``
    real_processes: bool  # instances run the request's command (else simulated)


@dataclass(frozen=True)
class Offer:
    """What one pool can take now."""

    pool: str
    provider: str
    region: str
    zone: str | None
    accelerator: str
    tier: Tier
    capacity_chips: int
    chips_free: int
    price_usd_per_chip_hour: float


@dataclass(frozen=True)
class LaunchRequest:
    """Run ``command`` on ``chips`` chips of ``pool``, once per ``idempotency_key``."""

    idempotency_key: str
    workload: str
    pool: str
    chips: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    replica_port: int | None = None


@dataclass(frozen=True)
class Instance:
    """A snapshot of one launched instance. Times are on the adapter's clock."""

    id: str
    idempotency_key: str
    workload: str
    pool: str
    provider: str
    region: str
    zone: str | None
    accelerator: str
    chips: int
    state: InstanceState
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    detail: str = ""
    address: str | None = None  # host the replica port is reached on (None: not reachable)


@dataclass(frozen=True)
class HealthSignal:
    """A change in health of a scope, or the preemption of one instance."""

    kind: SignalKind
    scope: Scope
    healthy: bool
    reason: str
    at: float
    instance_id: str | None = None


class Provider(Protocol):
    """One cloud (or this machine). Every method is safe to call again after an error."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def offers(self) -> list[Offer]:
        """One offer per pool of this provider, with the chips free now."""
        ...

    async def launch(self, request: LaunchRequest) -> Instance:
        """Start an instance (idempotent on the key); raises a :class:`ProviderError`."""
        ...

    async def get(self, instance_id: str) -> Instance:
        """The instance now; raises :class:`NotFound`."""
        ...

    async def list_instances(self) -> list[Instance]:
        """Every instance this provider knows, ended ones included (for adoption)."""
        ...

    async def terminate(self, instance_id: str) -> None:
        """Stop an instance and free its chips; idempotent, unknown ids included."""
        ...

    async def signals(self) -> list[HealthSignal]:
        """Health and preemption signals since the previous call, oldest first."""
        ...

    async def logs(self, instance_id: str, *, tail_lines: int = 200) -> str:
        """The last ``tail_lines`` lines the instance wrote ("" if none are kept yet);
        raises :class:`NotFound` for an instance this adapter does not know."""
        ...

    async def close(self) -> None:
        """Release the adapter's clients. Cloud instances keep running (see adapters)."""
        ...
