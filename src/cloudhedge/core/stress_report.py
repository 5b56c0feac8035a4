"""The stress document: what ``cloudhedge stress`` writes to ``stress.json``.

Its JSON Schema is published in ``docs/stress.schema.json`` (regenerate with
``cloudhedge schema stress``). Bump ``SCHEMA_VERSION`` on any incompatible change.
Money is USD; tokens are tokens (not per second) unless a field says ``_per_s``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceImpact(_Model):
    """One inference demand unit (service in a jurisdiction) under one scenario."""

    service: str
    jurisdiction: str
    criticality: str
    demand_tokens_per_s: list[float] = Field(description="per period, scenario demand")
    served_tokens_per_s: list[float] = Field(description="per period, kept + failover")
    failover_tokens_per_s: list[float] = Field(description="per period, served by failover")
    served_share_min: float = Field(description="worst period's served / demand")
    unserved_tokens: float
    promised_share: float | None = Field(
        default=None, description="the survivability share the plan promised for the "
                                  "domain this scenario takes out (N-1 scenarios only)")
    promise_kept: bool | None = None


class TrainingImpact(_Model):
    workload: str
    pool: str | None
    delay_hours: float
    lost_chip_hours: float = Field(description="work since the last checkpoint, redone")
    missed_deadline: bool


class BatchImpact(_Model):
    workload: str
    delayed_chip_hours: float = Field(description="lost in a down period, redone later")
    unserved_chip_hours: float = Field(description="lost and not redone inside the window")


class Immediate(_Model):
    """The plan as it is, hit by the scenario, with failover onto spare capacity."""

    served_share: float = Field(description="inference tokens served / demanded, horizon")
    unserved_tokens: float
    lost_chip_hours: float = Field(description="chip-hours of planned work lost")
    missed_deadlines: int
    cost_usd: float
    extra_cost_usd: float = Field(description="cost minus the plan's cost")
    cost_by_period: list[float]
    services: list[ServiceImpact]
    training: list[TrainingImpact]
    batch: list[BatchImpact]


class Replanned(_Model):
    """The planner's answer once the event is known: past fixed, the rest re-solved."""

    status: str
    cost_usd: float
    penalty_usd: float
    extra_cost_usd: float = Field(description="cost minus the plan's cost")
    served_share: float
    unserved_tokens: float
    unscheduled_runs: list[str]
    unmet: list[str] = Field(description="readable lines: what is still not served, why")
    notes: list[str]
    solve_seconds: float


class ScenarioResult(_Model):
    name: str
    description: str
    family: str | None = None
    start_period: int = Field(description="index into horizon_labels of the first period "
                                          "the scenario affects")
    domain: str | None = Field(default=None, description="kind:name for N-1 scenarios")
    immediate: Immediate
    replanned: Replanned | None = Field(default=None, description="absent when not replanned")


class Quantiles(_Model):
    p50: float
    p95: float
    p99: float
    mean: float
    cvar95: float = Field(description="mean of the worst 5% of samples")


class ServiceRisk(_Model):
    """One service (its jurisdictions together) over the samples."""

    service: str
    criticality: str
    shortfall_share: Quantiles
    expected_unserved_tokens: float
    worst_period_share_p5: float = Field(
        description="5th percentile of the lowest per-period served share")


class TrainingRiskOut(_Model):
    workload: str
    probability_missed: float
    expected_delay_hours: float
    p95_delay_hours: float
    expected_lost_chip_hours: float


class AvailabilityOut(_Model):
    """The availability model the samples were drawn from (defaults or overrides)."""

    scope: str = Field(description="provider:NAME, region:PROVIDER/REGION or spot")
    outages_per_year: float
    median_hours: float
    sigma: float = Field(description="spread of the lognormal outage length")
    fraction: float
    source: str


class Risk(_Model):
    samples: int
    seed: int
    workers: int
    seconds: float
    shortfall_share: Quantiles = Field(description="unserved tokens / demanded tokens")
    unserved_tokens: Quantiles
    extra_cost_usd: Quantiles
    lost_chip_hours: Quantiles
    missed_deadlines_mean: float
    worst_period_share_p5: float = Field(
        description="5th percentile of the lowest per-period served share, all services")
    training: list[TrainingRiskOut]
    histogram_edges: list[float] = Field(description="shortfall share bin edges")
    histogram_counts: list[int]
    services: list[ServiceRisk]
    model: list[AvailabilityOut]


class VariantOutcome(_Model):
    """One plan variant under one scenario (or in expectation over the samples)."""

    scenario: str
    unserved_tokens: float
    lost_chip_hours: float
    missed_deadlines: float = Field(description="runs past their deadline (a mean over "
                                                "samples for 'expected')")
    loss_usd: float = Field(description="extra cost + shortfall valued at the fleet's "
                                        "penalty rates (docs/stress-model.md)")
    extra_cost_usd: float


class PlanVariant(_Model):
    name: Literal["hedged", "unhedged", "single-provider"]
    description: str
    cost_usd: float
    premium_usd: float = Field(description="cost minus the unhedged plan's cost")
    outcomes: list[VariantOutcome] = Field(description="per scenario, then 'expected' "
                                                       "and 'cvar95' when risk was run")


class HedgeValue(_Model):
    """Premium vs payout: what hedging costs against the loss it avoids."""

    variants: list[PlanVariant]
    payout_usd: dict[str, float] = Field(
        description="scenario -> unhedged loss minus hedged loss (positive: the hedge pays)")
    text: list[str]


class StressReport(_Model):
    schema_version: str = SCHEMA_VERSION
    fleet: str = Field(description="the fleet's name")
    plan_cost_usd: float = Field(description="the stressed plan's cost (real money)")
    plan_penalty_usd: float = Field(description="the plan's unmet-demand penalty (not money)")
    horizon_labels: list[str] = Field(description="one label per period, as in plan.json")
    scenarios: list[ScenarioResult]
    risk: Risk | None = Field(default=None, description="absent when no Monte Carlo was run")
    hedge_value: HedgeValue | None = Field(default=None, description="absent when not computed")
    notes: list[str]
    seconds: dict[str, float] = Field(description="wall time per phase")
