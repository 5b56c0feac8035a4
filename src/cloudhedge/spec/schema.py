"""The fleet spec: the YAML a user writes, as pydantic models (``extra="forbid"``).

These models check shape and types; cross references (pool names in contracts,
accelerator names, periods inside the horizon) are checked by
:mod:`cloudhedge.spec.resolve`, which turns a spec into a :class:`core.models.Fleet`.
Documented field by field in ``docs/fleet-spec.md``.

A *series* (capacity, demand, commitments) is given per period in one of four forms:
a number (constant), a list (one value per period), ``{from: a, to: b}`` (linear
ramp over the horizon) or ``{steps: {"2026-01": a, "2027-01": b}}`` (a step
function: each value holds from its period on).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PeriodRef = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}$")]
"""A period as ``YYYY-MM``."""

NonNeg = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Ramp(_Spec):
    from_: NonNeg = Field(alias="from")
    to: NonNeg


class Steps(_Spec):
    steps: dict[PeriodRef, NonNeg]


Series = NonNeg | list[NonNeg] | Ramp | Steps


class HorizonSpec(_Spec):
    start: PeriodRef
    periods: Annotated[int, Field(ge=1, le=240)]
    period: Literal["month"] = "month"


class RegionSpec(_Spec):
    jurisdiction: str


class ProviderSpec(_Spec):
    """Regions a provider has beyond the catalog (e.g. a neocloud's sites)."""

    regions: dict[str, RegionSpec] = Field(default_factory=dict)


class PoolSpec(_Spec):
    name: str
    provider: str
    region: str
    accelerator: str
    tier: Literal["committed", "on_demand", "spot"]
    capacity_chips: Series
    price_usd_per_chip_hour: NonNeg | None = None
    price_source: str | None = None
    preemption_rate_per_hour: Share | None = None


class CommitTierSpec(_Spec):
    min_chips: NonNeg
    discount: Annotated[float, Field(ge=0, lt=1)]


class DecideSpec(_Spec):
    max_chips: Annotated[float, Field(gt=0)]
    tiers: list[CommitTierSpec] = Field(default_factory=list)


class ContractSpec(_Spec):
    name: str
    provider: str
    pools: list[str]
    start: PeriodRef
    end: PeriodRef
    take_or_pay: bool = True
    committed_chips: Series | None = None
    committed_spend_usd: Series | None = None
    decide: DecideSpec | None = None
    price_usd_per_chip_hour: NonNeg | None = None
    discount: Annotated[float, Field(ge=0, lt=1)] | None = None
    total_value_usd: NonNeg | None = None
    source: str | None = None


class CapSpec(_Spec):
    kind: Literal["provider", "vendor", "region"]
    name: str = "*"
    max_share: Share


class SurvivabilitySpec(_Spec):
    kind: Literal["provider", "vendor", "region"]
    alpha: dict[Literal["critical", "high", "standard", "best_effort"], Share]


class BudgetSpec(_Spec):
    total_usd: NonNeg | None = None
    per_period_usd: NonNeg | None = None


class PoliciesSpec(_Spec):
    caps: list[CapSpec] = Field(default_factory=list)
    survivability: list[SurvivabilitySpec] = Field(default_factory=list)
    exclusivity: dict[str, list[str]] = Field(default_factory=dict)
    residency: dict[str, list[str]] = Field(default_factory=dict)
    budget: BudgetSpec | None = None


class WindowSpec(_Spec):
    start: PeriodRef
    end: PeriodRef


class TrainingSpec(_Spec):
    kind: Literal["training"]
    name: str
    gang_chips: Annotated[int, Field(ge=1)]
    chip_hours: Annotated[float, Field(gt=0)]
    accelerators: list[str]
    window: WindowSpec
    checkpoint_interval_hours: Annotated[float, Field(gt=0)] = 1.0
    priority: Annotated[int, Field(ge=1, le=100)] = 1
    spot_allowed: bool = False
    required: bool = True
    tenant_class: str | None = None


class BatchSpec(_Spec):
    kind: Literal["batch"]
    name: str
    chip_hours: Annotated[float, Field(gt=0)]
    accelerators: list[str]
    window: WindowSpec
    spot_allowed: bool = True
    priority: Annotated[int, Field(ge=1, le=100)] = 1
    tenant_class: str | None = None


class InferenceSpec(_Spec):
    kind: Literal["inference"]
    name: str
    model: str
    demand_tokens_per_s: dict[str, Series]  # jurisdiction -> series
    model_params_b: Annotated[float, Field(gt=0)] | None = None
    throughput_tokens_per_s: dict[str, Annotated[float, Field(gt=0)]] | None = None
    accelerators: list[str] | None = None
    tenant_class: str | None = None
    criticality: Literal["critical", "high", "standard", "best_effort"] = "standard"
    spot_allowed: bool = False
    unmet_penalty_usd_per_million_tokens: NonNeg | None = None


class AgenticSpec(_Spec):
    kind: Literal["agentic"]
    name: str
    model: str  # name of the model it calls (an inference workload's ``model``)
    tasks_per_day: dict[str, Series]  # jurisdiction -> series
    steps_per_task: Annotated[float, Field(gt=0)]
    tokens_per_step: Annotated[float, Field(gt=0)]
    peak_to_average: Annotated[float, Field(ge=1)] = 1.0
    tenant_class: str | None = None
    criticality: Literal["critical", "high", "standard", "best_effort"] = "standard"
    spot_allowed: bool = False
    unmet_penalty_usd_per_million_tokens: NonNeg | None = None


WorkloadSpec = Annotated[
    TrainingSpec | BatchSpec | InferenceSpec | AgenticSpec, Field(discriminator="kind")
]


class DefaultsSpec(_Spec):
    unmet_penalty_usd_per_million_tokens: NonNeg = 50.0
    unscheduled_training_penalty_usd_per_chip_hour: NonNeg = 100.0
    unmet_batch_penalty_usd_per_chip_hour: NonNeg = 30.0
    spot_preemption_rate_per_hour: Share = 0.02


class FleetSpec(_Spec):
    name: str
    description: str | None = None
    horizon: HorizonSpec
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    providers: dict[str, ProviderSpec] = Field(default_factory=dict)
    pools: list[PoolSpec]
    contracts: list[ContractSpec] = Field(default_factory=list)
    policies: PoliciesSpec = Field(default_factory=PoliciesSpec)
    workloads: list[WorkloadSpec]
