"""The survivability the planner promised is visible in the immediate answer.

For every survivability cell a plan reports ``ok`` (unit s keeps alpha of what it serves
after losing domain d), an Effects that loses all of d for the whole horizon must leave
s at least alpha of the plan's served tokens/s in every period, from the plan's own
chips outside d alone (before failover adds anything); where the plan serves all of the
demand, that is alpha of demand. Checked on random fleets and on the flagship example
(provider and region rules).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planning"))

import numpy as np
import pytest
from fleets import Policies, fleet, pool, service, surv

from cloudhedge.core.models import Criticality, DomainKind, Fleet
from cloudhedge.core.plan import Plan
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.spec import load_fleet
from cloudhedge.stress.effects import Effects
from cloudhedge.stress.impact import immediate
from cloudhedge.stress.state import PlanState

FLAGSHIP = Path(__file__).resolve().parents[2] / "examples" / "frontier-lab.yaml"
OPTIONS = PlanOptions(explain=False)


def lose_domain(state: PlanState, kind: DomainKind, domain: str) -> Effects:
    """Every pool of ``domain`` loses all its chips for every hour of the horizon."""
    P, T, H = len(state.pools), state.periods, state.period_hours
    hit = np.array([p.domain(kind) == domain for p in state.pools])
    lost = np.zeros((1, P, T))
    lost[:, hit, :] = 1.0
    return Effects(lost, lost * H, np.ones((1, P, T)), H)


def check_promise(f: Fleet, plan: Plan) -> int:
    """Assert the promise for every ok cell of ``plan``; return how many were checked."""
    state = PlanState.from_plan(f, plan)
    unit_pos = {(u.service.name, u.jurisdiction): s for s, u in enumerate(state.units)}
    planned = state.planned_tokens_per_s
    demand = state.demand_tokens_per_s
    checked = 0
    by_domain: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for cell in plan.survivability:
        if cell.ok:
            s = unit_pos[(cell.service, cell.jurisdiction)]
            by_domain.setdefault((cell.kind, cell.domain), []).append((s, cell.alpha))
    for (kind, domain), cells in by_domain.items():
        imp = immediate(state, lose_domain(state, DomainKind(kind), domain))
        for s, alpha in cells:
            tol = 1e-6 * demand[s] + 1.0  # allocations are rounded to 1e-4 chips
            full = planned[s] >= demand[s] - tol
            # the plan's own chips outside the domain keep the promise, before failover
            for got in (imp.kept_tokens_per_s[0, s], imp.served_tokens_per_s[0, s]):
                assert np.all(got >= alpha * planned[s] - tol), (domain, state.units[s].label)
                assert np.all(got[full] >= alpha * demand[s][full] - tol)
            checked += 1
    return checked


@pytest.mark.parametrize("seed", range(6))
def test_random_fleets_keep_what_the_plan_promised(seed: int) -> None:
    f = generate_fleet(40, 20, 4, seed=seed)
    plan = make_plan(f, OPTIONS)
    assert plan.survivability, "a generated fleet has critical services"
    assert check_promise(f, plan) == sum(c.ok for c in plan.survivability)


def test_a_hand_built_fleet_keeps_80_percent_after_losing_any_provider() -> None:
    providers = ("aws", "azure", "gcp", "oci", "coreweave")
    # 30 chips per provider, 150 in all, exactly what chat (100) and mail (50) need
    pools = [pool(f"{p}-h100", p, "h100", 30, 2.0 + 0.1 * i) for i, p in enumerate(providers)]
    f = fleet(pools, inference=[service("chat", 300_000, crit=Criticality.CRITICAL),
                                service("mail", 150_000)],
              policies=Policies(survivability=surv(0.8)))
    plan = make_plan(f, OPTIONS)
    assert plan.status == "optimal"
    assert check_promise(f, plan) == len(providers)
    # no spare chip anywhere: losing a provider leaves chat exactly the promised 80%
    state = PlanState.from_plan(f, plan)
    for name in providers:
        imp = immediate(state, lose_domain(state, DomainKind.PROVIDER, name))
        assert imp.served_tokens_per_s[0, 0] == pytest.approx([240_000.0] * 3, abs=1.0)


def test_the_flagship_keeps_its_provider_and_region_promises() -> None:
    f = load_fleet(FLAGSHIP)
    plan = make_plan(f, OPTIONS)
    kinds = {c.kind for c in plan.survivability if c.ok}
    assert kinds == {"provider", "region"}
    assert check_promise(f, plan) == sum(c.ok for c in plan.survivability)
