"""The control store's vocabulary: state names and the values it reads and writes.

Plain frozen dataclasses and literal types, with no database in sight; the store
(:mod:`cloudhedge.control.store`) maps them to and from its tables and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

WorkloadKind = Literal["training", "batch", "service"]
DesiredState = Literal["running", "cancelled"]
AttemptState = Literal[
    "planned", "launching", "running", "succeeded", "failed", "terminated", "lost"]
ScopeKind = Literal["pool", "zone", "region", "provider", "accelerator"]
EventKind = Literal["placement", "rejection", "launch", "failover", "blocklist", "adoption",
                    "termination", "checkpoint", "desired", "readiness", "chaos"]
JsonDict = dict[str, Any]

WORKLOAD_KINDS: Final = get_args(WorkloadKind)
DESIRED_STATES: Final = get_args(DesiredState)
ATTEMPT_STATES: Final = get_args(AttemptState)
SCOPE_KINDS: Final = get_args(ScopeKind)
LIVE_STATES: Final[tuple[AttemptState, ...]] = ("planned", "launching", "running")
"""Attempts whose chips are taken (or about to be) in their pool."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A stored workload; ``version`` grows by one on every update."""

    id: int
    name: str
    kind: WorkloadKind
    spec: JsonDict
    desired: DesiredState
    priority: int
    version: int
    created_unix_s: float
    updated_unix_s: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """One launch attempt of one replica of a workload on one pool."""

    id: int
    workload_id: int
    idempotency_key: str
    pool: str
    provider: str
    region: str
    zone: str | None
    accelerator: str
    chips: int
    replica: int
    state: AttemptState
    instance_id: str | None
    error_kind: str | None
    error_scope: str | None
    created_unix_s: float
    updated_unix_s: float
    address: str | None = None  # where the instance is reached (host), once running
    port: int | None = None  # the replica port (services)
    heartbeat_unix_s: float | None = None  # the workload's last heartbeat
    progress_step: int | None = None  # the step it reported with it


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; ``data`` must be JSON-serialisable."""

    kind: EventKind
    reason: str
    workload_id: int | None = None
    attempt_id: int | None = None
    data: JsonDict | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event; ids grow in append order."""

    id: int
    workload_id: int | None
    attempt_id: int | None
    kind: str
    reason: str
    data: JsonDict | None
    at_unix_s: float


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    """An attempt to insert in state ``planned``, with the reason it was placed there.

    ``reason`` (when given) is appended as a ``placement`` event, with ``data``, in the
    same transaction and only if the attempt is new.
    """

    workload_id: int
    idempotency_key: str
    pool: str
    provider: str
    region: str
    accelerator: str
    chips: int
    replica: int = 0
    zone: str | None = None
    reason: str | None = None
    data: JsonDict | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class NewWorkload:
    """A workload to create (see :meth:`ControlStore.create_workloads`)."""

    name: str
    kind: WorkloadKind
    spec: JsonDict
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Move:
    """A compare-and-set of one attempt's state (see :meth:`ControlStore.advance`)."""

    attempt_id: int
    from_states: tuple[AttemptState, ...]
    to_state: AttemptState
    instance_id: str | None = None
    error_kind: str | None = None
    error_scope: str | None = None
    address: str | None = None
    event: NewEvent | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """The stored attempt for a key, and whether this call created it."""

    attempt: Attempt
    created: bool


@dataclass(frozen=True, slots=True)
class Block:
    """A blocked failure scope; ``until_unix_s`` None means until removed."""

    scope_kind: ScopeKind
    scope_name: str
    reason: str
    until_unix_s: float | None
    created_unix_s: float


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A training checkpoint a workload can resume from."""

    id: int
    workload_id: int
    step: int
    location: str
    at_unix_s: float
