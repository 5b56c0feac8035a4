"""Property tests on random small fleets: a plan never breaks a hard rule."""

from __future__ import annotations

from collections import defaultdict

import pytest
from fleets import Policies, Tier, TrainingRun, fleet, pool, service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudhedge.core.models import Cap, Criticality, DomainKind, SurvivabilityRule
from cloudhedge.core.plan import Plan
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions

PROVIDERS = ["aws", "azure", "oci", "gcp"]
ACCS = ["h100", "b200", "mi300x", "trn2"]
T = 3
OPTS = PlanOptions(solve=SolveOptions(gap=1e-4, time_limit_s=20), explain=False)


@st.composite
def fleets(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    n_pools = draw(st.integers(2, 7))
    pools = []
    for i in range(n_pools):
        prov = draw(st.sampled_from(PROVIDERS))
        jur = draw(st.sampled_from(["us", "eu"]))
        tier = draw(st.sampled_from([Tier.ON_DEMAND, Tier.ON_DEMAND, Tier.SPOT]))
        cap = [float(draw(st.integers(0, 6)) * 20) for _ in range(T)]
        pools.append(pool(f"p{i}", prov, draw(st.sampled_from(ACCS)), cap,
                          draw(st.floats(0.5, 8.0)), tier=tier, region=f"{jur}-{i % 2}",
                          jur=jur, T=T))
    services = []
    for k in range(draw(st.integers(1, 3))):
        demand = {j: [float(draw(st.integers(0, 5)) * 20_000) for _ in range(T)]
                  for j in draw(st.sets(st.sampled_from(["us", "eu"]), min_size=1))}
        services.append(service(
            f"s{k}", demand, T=T,
            crit=draw(st.sampled_from([Criticality.CRITICAL, Criticality.STANDARD])),
            tenant=draw(st.sampled_from([None, "api"])),
            accs=tuple(draw(st.sets(st.sampled_from(ACCS), min_size=1)))))
    runs = [TrainingRun(f"r{k}", draw(st.integers(1, 3)) * 20,
                        draw(st.floats(0.2, 2.0)) * 20 * 730,
                        tuple(draw(st.sets(st.sampled_from(ACCS), min_size=1))), 0, T - 1)
            for k in range(draw(st.integers(0, 2)))]
    caps = tuple(Cap(DomainKind.PROVIDER, "*", draw(st.floats(0.4, 1.0)))
                 for _ in range(draw(st.integers(0, 1))))
    surv = tuple(SurvivabilityRule(DomainKind.PROVIDER, {"critical": draw(st.floats(0.0, 0.6))})
                 for _ in range(draw(st.integers(0, 1))))
    excl = {"api": tuple(draw(st.sets(st.sampled_from(PROVIDERS), min_size=1)))} \
        if draw(st.booleans()) else {}
    resid = {"eu": tuple(f"{p.provider}/{p.region}" for p in pools if p.jurisdiction == "eu")} \
        if draw(st.booleans()) else {}
    pol = Policies(caps=caps, survivability=surv, exclusivity=excl, residency=resid)
    return fleet(pools, T=T, inference=services, training=runs, policies=pol)


def _check(f, p: Plan) -> None:  # type: ignore[no-untyped-def]
    pools = {pl.name: pl for pl in f.pools}
    use: dict[tuple[str, int], float] = defaultdict(float)
    served: dict[tuple[str, str, int], float] = defaultdict(float)
    svc = {s.name: s for s in f.inference}
    for a in p.allocations:
        use[(a.pool, a.period)] += a.chips
        pl = pools[a.pool]
        if a.kind == "inference":
            s = svc[a.workload]
            assert a.jurisdiction is not None
            if s.tenant_class in f.policies.exclusivity:
                assert pl.provider in f.policies.exclusivity[s.tenant_class]
            if a.jurisdiction in f.policies.residency:
                assert f"{pl.provider}/{pl.region}" in f.policies.residency[a.jurisdiction]
            if pl.tier is Tier.SPOT:
                assert s.spot_allowed
            served[(s.name, a.jurisdiction, a.period)] += \
                a.chips * s.throughput_tokens_per_s[pl.accelerator] \
                / (1 + pl.preemption_rate_per_hour * 0.5)
    for (name, t), chips in use.items():
        assert chips <= pools[name].capacity_chips[t] * (1 + 1e-6) + 1e-2  # rounding
    for (name, jur, t), tok in served.items():
        assert tok <= svc[name].demand_tokens_per_s[jur][t] * (1 + 1e-6) + 1.0  # rounding
    for c in p.concentration:
        if c.cap is not None:
            assert c.max_share <= c.cap + 1e-4
    if p.status != "infeasible":
        assert all(cell.ok for cell in p.survivability)
    else:
        assert p.conflicts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_plans_never_break_hard_rules(f) -> None:  # type: ignore[no-untyped-def]
    p = make_plan(f, OPTS)
    _check(f, p)
    assert sum(p.cost.by_provider.values()) == pytest.approx(p.cost.total_usd, rel=1e-6,
                                                             abs=1e-3)
