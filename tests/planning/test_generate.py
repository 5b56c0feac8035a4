"""Synthetic fleets: deterministic, sized as asked, feasible and not trivially so."""

from __future__ import annotations

from collections import Counter

import pytest

from cloudhedge.core.models import Tier
from cloudhedge.planning.baselines import violations
from cloudhedge.planning.generate import PROVIDERS, generate_fleet, workload_mix
from cloudhedge.planning.index import build_index
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions


def test_same_seed_gives_the_same_fleet() -> None:
    assert generate_fleet(40, 20, 6, seed=3) == generate_fleet(40, 20, 6, seed=3)
    assert generate_fleet(40, 20, 6, seed=3) != generate_fleet(40, 20, 6, seed=4)


@pytest.mark.parametrize(("w", "p", "t"), [(30, 20, 6), (100, 30, 12), (17, 10, 1)])
def test_sizes_and_mix_are_as_asked(w: int, p: int, t: int) -> None:
    f = generate_fleet(w, p, t, seed=1)
    assert len(f.pools) == p
    assert len(f.workload_names) == w
    assert len(set(f.workload_names)) == w
    assert len({pl.name for pl in f.pools}) == p
    assert f.horizon.periods == t
    assert all(len(pl.capacity_chips) == t for pl in f.pools)
    n_train, n_batch, n_inf, n_agent = workload_mix(w)
    assert (len(f.training), len(f.batch), len(f.inference)) == (n_train, n_batch,
                                                                  n_inf + n_agent)
    assert sum(s.source.startswith("agentic:") for s in f.inference) == n_agent
    assert {pl.provider for pl in f.pools} == set(PROVIDERS)


def test_fleet_is_realistic() -> None:
    f = generate_fleet(100, 40, 12, seed=0)
    tiers = Counter(pl.tier for pl in f.pools)
    assert all(tiers[t] > 0 for t in Tier)
    assert {pl.jurisdiction for pl in f.pools} == {"us", "eu"}
    covered = {name for c in f.contracts for name in c.pools}
    assert covered == {pl.name for pl in f.pools if pl.tier is Tier.COMMITTED}
    for c in f.contracts:
        assert c.take_or_pay
        cap = sum(pl.capacity_chips[0] for pl in f.pools if pl.name in c.pools)
        assert 0.59 * cap <= c.committed_chips[0] <= 0.8 * cap
    assert f.policies.residency["eu"]
    assert f.policies.exclusivity
    stacks = {tuple(sorted(s.throughput_tokens_per_s)) for s in f.inference}
    assert len(stacks) > 1  # services differ in the accelerators they run on
    ix = build_index(f)
    assert all(ix.eligible_count[r.name] > 0 for r in f.training)  # every gang fits
    assert all(ix.eligible_count[b.name] > 0 for b in f.batch)


@pytest.mark.parametrize("seed", [0, 1])
def test_small_generated_fleet_plans_without_breaches(seed: int) -> None:
    f = generate_fleet(30, 20, 6, seed=seed)
    plan = make_plan(f, PlanOptions(solve=SolveOptions(gap=1e-3, time_limit_s=60),
                                    explain=False))
    assert plan.status in ("optimal", "feasible")
    assert not plan.conflicts
    v = violations(f, plan)
    assert v["cap_breaches"] == 0
    assert v["survivability_failing"] == 0
    assert v["unmet"]["training_runs"] == 0
    # not trivially feasible: some cap or survivability row binds
    assert any(b.constraint.startswith(("cap:", "survivability:"))
               for b in plan.binding_constraints)
