"""The plan document: what ``cloudhedge plan`` writes to ``plan.json``.

The plan is data: the runtime, the gateway and ``stress`` consume it and never
re-derive what it says. Its JSON Schema is published in ``docs/plan.schema.json``
(regenerate with ``cloudhedge schema plan``). Bump ``SCHEMA_VERSION`` on any
incompatible change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HorizonOut(_Model):
    start: str
    periods: int
    period: str
    period_hours: float
    labels: list[str]


class PoolOut(_Model):
    name: str
    provider: str
    region: str
    jurisdiction: str
    accelerator: str
    vendor: str
    tier: str
    price_usd_per_chip_hour: float
    price_source: str
    capacity_chips: list[float]
    used_chips: list[float]


class Allocation(_Model):
    """Chips of one pool given to one workload in one period."""

    period: int
    pool: str
    workload: str
    kind: Literal["training", "batch", "inference"]
    jurisdiction: str | None = None
    chips: float
    cost_usd: float = Field(description="usage cost billed at the pool price; 0 when covered")


class TrainingPlacement(_Model):
    workload: str
    scheduled: bool
    pool: str | None = None
    accelerator: str | None = None
    start_period: int | None = None
    end_period: int | None = None
    duration_periods: int | None = None
    gang_chips: int
    chip_hours: float = Field(description="actual chip-hours on the chosen accelerator")
    cost_usd: float
    reason: str


class CostBreakdown(_Model):
    total_usd: float = Field(description="committed fixed cost + usage; penalties excluded")
    committed_fixed_usd: float
    usage_usd: float
    penalty_usd: float = Field(description="penalty charged for unmet demand (not money spent)")
    by_provider: dict[str, float]
    by_vendor: dict[str, float]
    by_tier: dict[str, float]
    by_workload: dict[str, float]
    by_period: list[float]
    by_period_provider: dict[str, list[float]]


class ContractUse(_Model):
    name: str
    provider: str
    pools: list[str]
    unit: Literal["chips", "USD"] = Field(
        default="chips", description="unit of committed_chips/used_chips (USD: spend)")
    committed_chips: list[float]
    used_chips: list[float] = Field(description="use of the covered pools, overage included")
    utilisation: list[float | None]
    fixed_cost_usd: float
    overage_cost_usd: float
    wasted_usd: list[float]
    wasted_usd_total: float
    decided: bool
    decided_commitment_chips: float | None = None
    decided_discount: float | None = None


class Concentration(_Model):
    kind: str
    name: str
    share_by_period: list[float]
    max_share: float
    cap: float | None


class SurvivabilityCell(_Model):
    """Share of a critical service kept after losing one domain, worst period."""

    kind: str
    domain: str
    service: str
    jurisdiction: str
    alpha: float
    kept_share_min: float
    kept_share_by_period: list[float]
    ok: bool


class Unmet(_Model):
    workload: str
    kind: Literal["training", "batch", "inference"]
    jurisdiction: str | None = None
    period: int | None = None
    amount: float
    unit: str
    cause: str


class UnitEconomics(_Model):
    workload: str
    tokens_served: float
    cost_usd: float
    usd_per_million_tokens: float | None


class HedgeCost(_Model):
    policy: str
    description: str
    cost_usd: float | None = Field(description="plan cost with the policy minus without it")
    uncertainty_usd: float | None = Field(
        default=None, description="sum of both solves' gaps: the cost is known to within this")
    status: str
    text: str


class ShadowPrice(_Model):
    constraint: str
    kind: Literal["capacity", "cap", "survivability", "budget", "contract"]
    usd: float = Field(description="saving per unit of relaxation, over the horizon")
    unit: str
    text: str


class BindingConstraint(_Model):
    constraint: str
    periods: list[int]
    text: str


class Reason(_Model):
    """Why a workload landed where it did (or did not)."""

    workload: str
    text: str


class ConflictOut(_Model):
    constraint: str
    text: str
    violation: float
    unit: str


class SolverStats(_Model):
    solver: str
    status: str
    variables: int
    integer_variables: int
    constraints: int
    nonzeros: int
    build_seconds: float
    solve_seconds: float
    objective_usd: float | None
    lp_relaxation_bound_usd: float | None
    mip_bound_usd: float | None
    gap: float | None
    time_limit_s: float | None
    gap_limit: float | None
    threads: int | None


class Plan(_Model):
    schema_version: str = SCHEMA_VERSION
    name: str
    status: Literal["optimal", "feasible", "infeasible"]
    horizon: HorizonOut
    pools: list[PoolOut]
    allocations: list[Allocation]
    training: list[TrainingPlacement]
    cost: CostBreakdown
    contracts: list[ContractUse]
    concentration: list[Concentration]
    survivability: list[SurvivabilityCell]
    unmet: list[Unmet]
    unit_economics: list[UnitEconomics]
    hedge_costs: list[HedgeCost]
    shadow_prices: list[ShadowPrice]
    binding_constraints: list[BindingConstraint]
    reasons: list[Reason]
    conflicts: list[ConflictOut]
    notes: list[str]
    solver: SolverStats
