"""Resolved domain models: what the planner consumes.

The fleet spec (``cloudhedge.spec``) is the user-facing YAML; it resolves, with the
catalog, into a :class:`Fleet` made of these frozen value objects. Every per-period
series is a tuple with one value per period of the :class:`Horizon`. Units are in
the field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Self

HOURS_PER_MONTH = 730.0  # 8760 / 12


class Tier(StrEnum):
    COMMITTED = "committed"
    ON_DEMAND = "on_demand"
    SPOT = "spot"


class Criticality(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    STANDARD = "standard"
    BEST_EFFORT = "best_effort"


class DomainKind(StrEnum):
    """Failure-domain and concentration kinds: a pool belongs to one domain of each."""

    PROVIDER = "provider"
    VENDOR = "vendor"
    REGION = "region"


@dataclass(frozen=True)
class Accelerator:
    name: str
    vendor: str
    stack: str
    memory_gib: float
    memory_tb_per_s: float
    bf16_dense_tflops: float
    source: str


@dataclass(frozen=True)
class Horizon:
    """Planning periods: ``periods`` steps of ``period_hours`` from ``start``."""

    start: date
    periods: int
    period: str = "month"  # month | week
    period_hours: float = HOURS_PER_MONTH

    def label(self, t: int) -> str:
        if self.period == "month":
            months = self.start.month - 1 + t
            return f"{self.start.year + months // 12:04d}-{months % 12 + 1:02d}"
        return f"{self.start.isoformat()}+{t}{self.period[0]}"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.label(t) for t in range(self.periods))


@dataclass(frozen=True)
class Pool:
    """Capacity of one accelerator in one region of one provider under one tier."""

    name: str
    provider: str
    region: str
    jurisdiction: str
    accelerator: str
    vendor: str
    stack: str
    tier: Tier
    price_usd_per_chip_hour: float
    price_source: str
    capacity_chips: tuple[float, ...]
    preemption_rate_per_hour: float = 0.0

    def domain(self, kind: DomainKind) -> str:
        if kind is DomainKind.PROVIDER:
            return self.provider
        if kind is DomainKind.VENDOR:
            return self.vendor
        return f"{self.provider}/{self.region}"

    def copy(self, **changes: object) -> Self:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CommitTier:
    """A discount tier for a commitment decision: commit at least ``min_chips``."""

    min_chips: float
    discount: float  # fraction off the contract's list price


@dataclass(frozen=True)
class Contract:
    """A commitment with a provider, covering one or more pools.

    Take-or-pay: the commitment (chips x hours x price, or a spend) is paid whether
    used or not; use of the covered pools beyond it is billed at each pool's price.
    With ``decide`` set, the committed chips are a decision of the planner (constant
    over the term), chosen among discount ``tiers`` up to ``max_chips``.
    """

    name: str
    provider: str
    pools: tuple[str, ...]
    start_period: int  # first period of the term inside the horizon
    end_period: int  # last period of the term inside the horizon (inclusive)
    take_or_pay: bool
    price_usd_per_chip_hour: float
    committed_chips: tuple[float, ...] = ()  # per period of the horizon (0 outside the term)
    committed_spend_usd: tuple[float, ...] = ()  # per period, alternative to chips
    decide: bool = False
    max_chips: float = 0.0
    tiers: tuple[CommitTier, ...] = ()
    total_value_usd: float | None = None  # headline figure, informative

    def active(self, t: int) -> bool:
        return self.start_period <= t <= self.end_period


@dataclass(frozen=True)
class Cap:
    """At most ``max_share`` of chips in use on one domain (``name``) of a kind."""

    kind: DomainKind
    name: str  # a domain name, or "*" for every domain of the kind
    max_share: float

    @property
    def id(self) -> str:
        return f"cap:{self.kind}:{self.name}"


@dataclass(frozen=True)
class SurvivabilityRule:
    """After losing any one domain of ``kind``, a service of a criticality keeps alpha."""

    kind: DomainKind
    alpha: dict[str, float]  # criticality -> share kept

    @property
    def id(self) -> str:
        return f"survivability:{self.kind}"


@dataclass(frozen=True)
class Budget:
    total_usd: float | None = None
    per_period_usd: float | None = None


@dataclass(frozen=True)
class Policies:
    caps: tuple[Cap, ...] = ()
    survivability: tuple[SurvivabilityRule, ...] = ()
    exclusivity: dict[str, tuple[str, ...]] = field(default_factory=dict)  # class -> providers
    residency: dict[str, tuple[str, ...]] = field(default_factory=dict)  # jurisdiction -> regions
    budget: Budget | None = None


@dataclass(frozen=True)
class TrainingRun:
    """A gang of chips in one pool for a number of reference chip-hours, in a window."""

    name: str
    gang_chips: int
    chip_hours: float  # in reference-accelerator (h100) chip-hours
    accelerators: tuple[str, ...]
    window_start: int
    window_end: int  # last period the run may occupy (deadline, inclusive)
    checkpoint_interval_hours: float = 1.0
    priority: int = 1
    spot_allowed: bool = False
    required: bool = True
    tenant_class: str | None = None


@dataclass(frozen=True)
class BatchJob:
    """Flexible chip-hours anywhere compatible inside a window; preemptible."""

    name: str
    chip_hours: float  # reference chip-hours
    accelerators: tuple[str, ...]
    window_start: int
    window_end: int
    spot_allowed: bool = True
    priority: int = 1
    tenant_class: str | None = None


@dataclass(frozen=True)
class InferenceService:
    """A model serving demand (tokens/s, per jurisdiction and period)."""

    name: str
    model: str
    demand_tokens_per_s: dict[str, tuple[float, ...]]  # jurisdiction -> per period
    throughput_tokens_per_s: dict[str, float]  # accelerator -> tokens/s per chip
    tenant_class: str | None = None
    criticality: Criticality = Criticality.STANDARD
    spot_allowed: bool = False
    source: str = "inference"  # "inference" or "agentic:<name>"
    unmet_penalty_usd_per_million_tokens: float = 50.0


Workload = TrainingRun | BatchJob | InferenceService


@dataclass(frozen=True)
class Fleet:
    """Everything the planner needs, resolved and checked."""

    name: str
    horizon: Horizon
    accelerators: dict[str, Accelerator]
    pools: tuple[Pool, ...]
    contracts: tuple[Contract, ...]
    policies: Policies
    training: tuple[TrainingRun, ...]
    batch: tuple[BatchJob, ...]
    inference: tuple[InferenceService, ...]
    relative_speed: dict[str, float]  # accelerator -> training speed vs reference (h100 = 1)
    reference_accelerator: str = "h100"
    training_penalty_usd_per_chip_hour: float = 100.0  # x chip-hours x priority, unscheduled
    batch_penalty_usd_per_chip_hour: float = 30.0  # x priority, per unmet chip-hour
    notes: tuple[str, ...] = ()  # assumptions worth printing (e.g. assumed prices)

    def copy(self, **changes: object) -> Self:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def workload_names(self) -> tuple[str, ...]:
        return (
            tuple(r.name for r in self.training)
            + tuple(b.name for b in self.batch)
            + tuple(s.name for s in self.inference)
        )
