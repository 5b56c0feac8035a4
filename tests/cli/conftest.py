"""A small but realistic plan document for the CLI outputs (summary, HTML report).

:func:`make_plan` builds, as plain JSON-like data, the plan a planner would write for
3 providers (azure, aws, gcp), 2 vendors (nvidia, aws), 3 pools, 4 monthly periods
and 1 take-or-pay contract, and validates it through :class:`cloudhedge.core.plan.Plan`.
The numbers are consistent with each other (costs = chips x hours x price), and the
plan carries one survivability cell below its alpha, one unmet row, hedge costs and
shadow prices. :func:`make_infeasible_plan` is what the planner writes when the hard
policies conflict.

Tests reach them through the fixtures ``plan``, ``infeasible_plan`` and
``plan_factory`` (the test folders are not packages, so nothing imports this module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cloudhedge.core.plan import Plan

HOURS = 730.0
LABELS = ["2025-01", "2025-02", "2025-03", "2025-04"]

# name, provider, region, jurisdiction, accelerator, vendor, tier, price, capacity, used
POOLS: list[tuple[str, str, str, str, str, str, str, float, float, list[float]]] = [
    (
        "azure-eastus-h100-committed",
        "azure",
        "eastus",
        "us",
        "h100",
        "nvidia",
        "committed",
        2.2,
        1000.0,
        [900.0, 950.0, 1000.0, 1000.0],
    ),
    (
        "aws-us-east-1-trn2-on-demand",
        "aws",
        "us-east-1",
        "us",
        "trn2",
        "aws",
        "on_demand",
        1.8,
        800.0,
        [400.0, 500.0, 600.0, 700.0],
    ),
    (
        "gcp-europe-west4-h100-spot",
        "gcp",
        "europe-west4",
        "eu",
        "h100",
        "nvidia",
        "spot",
        1.2,
        300.0,
        [300.0, 300.0, 300.0, 300.0],
    ),
]
AZURE, AWS, GCP = (p[0] for p in POOLS)
COMMITTED_CHIPS = 1000.0
CONTRACT_PRICE = 2.2

UNMET_CAUSE = "residency: eu traffic may only use eu regions, and gcp europe-west4 is full"
CONFLICT_TEXT = "the 30% cap on nvidia cannot hold: only nvidia pools serve chat in the eu"


def _solver(status: str, objective: float | None, gap: float | None) -> dict[str, Any]:
    return {
        "solver": "highs",
        "status": status,
        "variables": 1_284,
        "integer_variables": 12,
        "constraints": 2_310,
        "nonzeros": 9_876,
        "build_seconds": 0.21,
        "solve_seconds": 1.37,
        "objective_usd": objective,
        "lp_relaxation_bound_usd": None if objective is None else objective * 0.995,
        "mip_bound_usd": None if objective is None else objective * 0.999,
        "gap": gap,
        "time_limit_s": 300.0,
        "gap_limit": 0.01,
        "threads": 4,
    }


def _horizon() -> dict[str, Any]:
    return {
        "start": "2025-01",
        "periods": 4,
        "period": "month",
        "period_hours": HOURS,
        "labels": LABELS,
    }


def _pools(used: bool = True) -> list[dict[str, Any]]:
    out = []
    for name, provider, region, jur, accelerator, vendor, tier, price, capacity, chips in POOLS:
        out.append(
            {
                "name": name,
                "provider": provider,
                "region": region,
                "jurisdiction": jur,
                "accelerator": accelerator,
                "vendor": vendor,
                "tier": tier,
                "price_usd_per_chip_hour": price,
                "price_source": "catalog:2025-01" if tier != "spot" else "assumed",
                "capacity_chips": [capacity] * 4,
                "used_chips": chips if used else [0.0] * 4,
            }
        )
    return out


def make_plan(**overrides: Any) -> Plan:
    """A feasible plan; top-level fields can be replaced through ``overrides``."""
    azure, aws, gcp = (p[9] for p in POOLS)
    price = {p[0]: p[7] for p in POOLS}
    fixed = COMMITTED_CHIPS * HOURS * CONTRACT_PRICE  # per period, take-or-pay
    usage = {
        name: [c * HOURS * price[name] for c in chips] for name, chips in ((AWS, aws), (GCP, gcp))
    }
    by_period_provider = {
        "azure": [fixed] * 4,
        "aws": usage[AWS],
        "gcp": usage[GCP],
    }
    by_provider = {k: sum(v) for k, v in by_period_provider.items()}
    total = sum(by_provider.values())
    committed_total = 4 * fixed
    penalty = 12_000 * HOURS * 3600 / 1e6 * 50.0

    allocations: list[dict[str, Any]] = []
    for t in range(4):
        allocations += [
            {
                "period": t,
                "pool": AZURE,
                "workload": "llm-pretrain",
                "kind": "training",
                "chips": 512.0,
                "cost_usd": 0.0,
            },
            {
                "period": t,
                "pool": AZURE,
                "workload": "chat",
                "kind": "inference",
                "jurisdiction": "us",
                "chips": azure[t] - 512.0,
                "cost_usd": 0.0,
            },
            {
                "period": t,
                "pool": AWS,
                "workload": "chat",
                "kind": "inference",
                "jurisdiction": "us",
                "chips": aws[t],
                "cost_usd": usage[AWS][t],
            },
            {
                "period": t,
                "pool": GCP,
                "workload": "chat",
                "kind": "inference",
                "jurisdiction": "eu",
                "chips": 250.0,
                "cost_usd": usage[GCP][t] * 250 / 300,
            },
            {
                "period": t,
                "pool": GCP,
                "workload": "evals",
                "kind": "batch",
                "chips": 50.0,
                "cost_usd": usage[GCP][t] * 50 / 300,
            },
        ]

    totals = [azure[t] + aws[t] + gcp[t] for t in range(4)]
    share = {
        "azure": [azure[t] / totals[t] for t in range(4)],
        "aws": [aws[t] / totals[t] for t in range(4)],
        "gcp": [gcp[t] / totals[t] for t in range(4)],
    }
    nvidia = [(azure[t] + gcp[t]) / totals[t] for t in range(4)]
    trn = [aws[t] / totals[t] for t in range(4)]

    def conc(kind: str, name: str, s: list[float], cap: float | None) -> dict[str, Any]:
        return {"kind": kind, "name": name, "share_by_period": s, "max_share": max(s), "cap": cap}

    def cell(
        kind: str, domain: str, service: str, jur: str, alpha: float, kept: list[float]
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "domain": domain,
            "service": service,
            "jurisdiction": jur,
            "alpha": alpha,
            "kept_share_min": min(kept),
            "kept_share_by_period": kept,
            "ok": min(kept) >= alpha - 1e-9,
        }

    wasted = [(COMMITTED_CHIPS - azure[t]) * HOURS * CONTRACT_PRICE for t in range(4)]
    tokens = 3.1e12
    data: dict[str, Any] = {
        "name": "acme-2025",
        "status": "optimal",
        "horizon": _horizon(),
        "pools": _pools(),
        "allocations": allocations,
        "training": [
            {
                "workload": "llm-pretrain",
                "scheduled": True,
                "pool": AZURE,
                "accelerator": "h100",
                "start_period": 0,
                "end_period": 3,
                "duration_periods": 4,
                "gang_chips": 512,
                "chip_hours": 512 * 4 * HOURS,
                "cost_usd": 512 * 4 * HOURS * CONTRACT_PRICE,
                "reason": "cheapest compatible pool with a 512-chip gang free for 4 months",
            },
            {
                "workload": "vision-finetune",
                "scheduled": False,
                "gang_chips": 256,
                "chip_hours": 0.0,
                "cost_usd": 0.0,
                "reason": "no pool has 256 free h100 chips inside 2025-03..2025-04",
            },
        ],
        "cost": {
            "total_usd": total,
            "committed_fixed_usd": committed_total,
            "usage_usd": total - committed_total,
            "penalty_usd": penalty,
            "by_provider": by_provider,
            "by_vendor": {
                "nvidia": by_provider["azure"] + by_provider["gcp"],
                "aws": by_provider["aws"],
            },
            "by_tier": {
                "committed": by_provider["azure"],
                "on_demand": by_provider["aws"],
                "spot": by_provider["gcp"],
            },
            "by_workload": {
                "chat": total * 0.7,
                "llm-pretrain": total * 0.27,
                "evals": total * 0.03,
            },
            "by_period": [sum(v[t] for v in by_period_provider.values()) for t in range(4)],
            "by_period_provider": by_period_provider,
        },
        "contracts": [
            {
                "name": "azure-7y",
                "provider": "azure",
                "pools": [AZURE],
                "committed_chips": [COMMITTED_CHIPS] * 4,
                "used_chips": azure,
                "utilisation": [c / COMMITTED_CHIPS for c in azure],
                "fixed_cost_usd": committed_total,
                "overage_cost_usd": 0.0,
                "wasted_usd": wasted,
                "wasted_usd_total": sum(wasted),
                "decided": False,
            },
        ],
        "concentration": [
            conc("provider", "azure", share["azure"], 0.6),
            conc("provider", "aws", share["aws"], 0.6),
            conc("provider", "gcp", share["gcp"], 0.6),
            conc("vendor", "nvidia", nvidia, 0.8),
            conc("vendor", "aws", trn, None),
        ],
        "survivability": [
            cell("provider", "azure", "chat", "us", 0.7, [0.31, 0.34, 0.375, 0.41]),
            cell("provider", "aws", "chat", "us", 0.7, [0.92, 0.9, 0.88, 0.86]),
            cell("vendor", "nvidia", "chat", "us", 0.5, [0.31, 0.34, 0.375, 0.41]),
            cell("vendor", "aws", "chat", "us", 0.5, [0.92, 0.9, 0.88, 0.86]),
            cell("provider", "gcp", "chat", "eu", 0.7, [0.0, 0.0, 0.0, 0.0]),
        ],
        "unmet": [
            {
                "workload": "chat",
                "kind": "inference",
                "jurisdiction": "eu",
                "period": 3,
                "amount": 12_000.0,
                "unit": "tokens/s",
                "cause": UNMET_CAUSE,
            },
        ],
        "unit_economics": [
            {
                "workload": "chat",
                "tokens_served": tokens,
                "cost_usd": total * 0.7,
                "usd_per_million_tokens": total * 0.7 / (tokens / 1e6),
            },
            {
                "workload": "embed",
                "tokens_served": 0.0,
                "cost_usd": 0.0,
                "usd_per_million_tokens": None,
            },
        ],
        "hedge_costs": [
            {
                "policy": "cap:provider:*",
                "description": "the 60% cap on every provider",
                "cost_usd": 1.2e6,
                "status": "computed",
                "text": "the 60% cap on every provider costs 1.2 M USD over the horizon",
            },
            {
                "policy": "survivability:provider",
                "description": "survivability after losing a provider",
                "cost_usd": 3.4e5,
                "status": "computed",
                "text": "",
            },
            {
                "policy": "residency:eu",
                "description": "eu residency",
                "cost_usd": None,
                "status": "infeasible without",
                "text": "",
            },
        ],
        "shadow_prices": [
            {
                "constraint": f"capacity:{GCP}:2025-04",
                "kind": "capacity",
                "usd": 1_051.2,
                "unit": "chip",
                "text": "one more chip in gcp-europe-west4-h100-spot in 2025-04 saves 1.1 K USD",
            },
            {
                "constraint": "cap:provider:azure",
                "kind": "cap",
                "usd": 2.5e6,
                "unit": "share point",
                "text": "raising the azure cap by one point saves 2.5 M USD",
            },
            {
                "constraint": "contract:azure-7y",
                "kind": "contract",
                "usd": -850.0,
                "unit": "chip",
                "text": "",
            },
        ],
        "binding_constraints": [
            {
                "constraint": f"capacity:{GCP}",
                "periods": [0, 1, 2, 3],
                "text": "gcp-europe-west4-h100-spot is full in every period",
            },
            {"constraint": "cap:provider:*", "periods": [2, 3], "text": "no binding <cap>"},
        ],
        "reasons": [
            {"workload": "chat", "text": "us traffic on azure (covered by azure-7y) then aws trn2"},
            {"workload": "evals", "text": "spot h100 on gcp: cheapest, preemptible allowed"},
        ],
        "conflicts": [],
        "notes": [
            "gcp spot price assumed at 1.20 USD/chip-hour (no catalog price)",
            "throughput of chat on trn2 assumed at 0.8 x h100",
        ],
        "solver": _solver("optimal", total + penalty, 0.0042),
    }
    data.update(overrides)
    return Plan.model_validate(data)


def make_infeasible_plan() -> Plan:
    """What the planner writes when the hard policies conflict: no allocations."""
    zeros = [0.0] * 4
    return Plan.model_validate(
        {
            "name": "acme-2025-strict",
            "status": "infeasible",
            "horizon": _horizon(),
            "pools": _pools(used=False),
            "allocations": [],
            "training": [],
            "cost": {
                "total_usd": 0.0,
                "committed_fixed_usd": 0.0,
                "usage_usd": 0.0,
                "penalty_usd": 0.0,
                "by_provider": {},
                "by_vendor": {},
                "by_tier": {},
                "by_workload": {},
                "by_period": zeros,
                "by_period_provider": {},
            },
            "contracts": [],
            "concentration": [],
            "survivability": [],
            "unmet": [],
            "unit_economics": [],
            "hedge_costs": [],
            "shadow_prices": [],
            "binding_constraints": [],
            "reasons": [],
            "conflicts": [
                {
                    "constraint": "cap:vendor:nvidia",
                    "text": CONFLICT_TEXT,
                    "violation": 0.45,
                    "unit": "share",
                },
                {
                    "constraint": "residency:eu",
                    "text": "eu traffic needs 300 chips in eu regions",
                    "violation": 120.0,
                    "unit": "chips",
                },
            ],
            "notes": ["the plan is infeasible: relax one of the conflicting constraints"],
            "solver": _solver("infeasible", None, None),
        }
    )


@pytest.fixture
def plan() -> Plan:
    return make_plan()


@pytest.fixture
def infeasible_plan() -> Plan:
    return make_infeasible_plan()


@pytest.fixture
def plan_factory() -> Callable[..., Plan]:
    """:func:`make_plan`, for tests that replace a few top-level fields."""
    return make_plan
