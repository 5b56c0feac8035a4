"""Placement: each filter rejects with its reason, scorers prefer what they should, and
policies are never violated (property test on generated fleets)."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudhedge.control.placement import (
    FILTERS,
    LiveUsage,
    Outcome,
    Placement,
    Placer,
    Request,
    Scope,
    ScopeKind,
    explain,
    period_at,
    request_for_job,
)
from cloudhedge.control.specs import AcceleratorOption, JobSpec, RetryPolicy
from cloudhedge.core.models import (
    Cap,
    Contract,
    DomainKind,
    Fleet,
    Horizon,
    Policies,
    Pool,
    Tier,
)
from cloudhedge.core.plan import Allocation, Plan
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions

VENDOR = {"h100": "nvidia", "mi300x": "amd", "trn2": "aws"}
REGION_JURISDICTION = {"eastus": "us", "westeurope": "eu", "us-east-1": "us", "eu-west-1": "eu"}


def pool(name: str, provider: str = "azure", region: str = "eastus", accelerator: str = "h100",
         tier: Tier = Tier.ON_DEMAND, capacity: float = 1000, price: float = 10.0) -> Pool:
    return Pool(name=name, provider=provider, region=region,
                jurisdiction=REGION_JURISDICTION[region], accelerator=accelerator,
                vendor=VENDOR[accelerator], stack="x", tier=tier, price_usd_per_chip_hour=price,
                price_source="test", capacity_chips=(capacity, capacity))


def fleet(*pools: Pool, policies: Policies | None = None,
          contracts: tuple[Contract, ...] = ()) -> Fleet:
    return Fleet(name="test", horizon=Horizon(date(2026, 1, 1), 2), accelerators={},
                 pools=pools, contracts=contracts, policies=policies or Policies(), training=(),
                 batch=(), inference=(), relative_speed={})


def request(chips: int = 8, accelerators: tuple[str, ...] = ("h100",), **kw: object) -> Request:
    options = tuple(AcceleratorOption(a, chips) for a in accelerators)
    return Request("w", "training", options, **kw)  # type: ignore[arg-type]


def rejected(decision: Placement, pool_name: str) -> dict[str, str]:
    verdict = next(v for v in decision.verdicts if v.pool == pool_name)
    return dict(verdict.rejections)


# --- each filter, with its reason --------------------------------------------------------


def test_compatibility_rejects_other_accelerators() -> None:
    placer = Placer(fleet(pool("a", accelerator="mi300x"), pool("b")))
    decision = placer.place(request(), placer.usage(), 0)
    assert decision.pool == "b"
    assert "mi300x is not among the alternatives (h100)" in rejected(decision, "a")["compatibility"]


def test_the_first_listed_alternative_sets_the_chips() -> None:
    placer = Placer(fleet(pool("a", accelerator="mi300x")))
    req = Request("w", "batch", (AcceleratorOption("h100", 8), AcceleratorOption("mi300x", 4)))
    assert placer.place(req, placer.usage(), 0).chips == 4


def test_spot_only_when_allowed() -> None:
    placer = Placer(fleet(pool("spot", tier=Tier.SPOT, price=1.0), pool("od")))
    assert placer.place(request(), placer.usage(), 0).pool == "od"
    decision = placer.place(request(spot_allowed=True), placer.usage(), 0)
    assert decision.pool == "spot"
    blocked = placer.place(request(), placer.usage(), 0)
    assert "does not allow spot" in rejected(blocked, "spot")["tier"]


def test_free_capacity_counts_live_usage_and_gangs() -> None:
    placer = Placer(fleet(pool("a", capacity=100), pool("b", capacity=1000, price=20)))
    usage = placer.usage({"a": 70})
    assert placer.place(request(chips=8, replicas=4), usage, 0).pool == "a"  # one replica
    decision = placer.place(request(chips=8, replicas=4, gang=True), usage, 0)
    assert decision.pool == "b" and decision.chips == 32
    assert rejected(decision, "a")["capacity"] == "needs 32 chips, 30 of 100 free in 2026-01"


def test_blocklist_is_honoured_for_every_scope_kind() -> None:
    pools = (pool("a", provider="azure"), pool("b", provider="aws", region="us-east-1"),
             pool("c", provider="aws", region="eu-west-1", accelerator="trn2"))
    placer = Placer(fleet(*pools))
    req = request(accelerators=("h100", "trn2"))
    cases = {Scope(ScopeKind.PROVIDER, "aws"): {"b", "c"},
             Scope(ScopeKind.REGION, "aws/us-east-1"): {"b"},
             Scope(ScopeKind.ACCELERATOR, "trn2"): {"c"},
             Scope(ScopeKind.POOL, "a"): {"a"},
             Scope(ScopeKind.ZONE, "aws/us-east-1/use1-az1"): set()}
    for scope, hit in cases.items():
        decision = placer.place(req, placer.usage(), 0, blocklist=frozenset({scope}))
        out = {v.pool for v in decision.verdicts if "blocklist" in dict(v.rejections)}
        assert out == hit, scope
        assert decision.pool not in hit
        for name in hit:
            assert rejected(decision, name)["blocklist"] == f"blocked by {scope}"
    everything = frozenset(Scope(ScopeKind.POOL, p.name) for p in pools)
    decision = placer.place(req, placer.usage(), 0, blocklist=everything)
    assert decision.pool is None and decision.outcome is Outcome.UNSCHEDULABLE


def test_exclusivity_and_residency_are_unresolvable() -> None:
    policies = Policies(exclusivity={"api": ("azure",)},
                        residency={"eu": ("azure/westeurope",)})
    placer = Placer(fleet(pool("us"), pool("eu-aws", provider="aws", region="eu-west-1"),
                          policies=policies))
    decision = placer.place(request(tenant_class="api", jurisdiction="eu"), placer.usage(), 0)
    assert decision.pool is None and decision.outcome is Outcome.UNRESOLVABLE
    assert rejected(decision, "eu-aws")["exclusivity"] == (
        "tenant class 'api' may only run on azure; the pool is on aws")
    assert rejected(decision, "us")["residency"] == (
        "jurisdiction 'eu' must stay in azure/westeurope; the pool is in azure/eastus")
    # classes and jurisdictions the policies do not name are unrestricted (as in the planner)
    assert placer.place(request(tenant_class="other", jurisdiction="us"),
                        placer.usage(), 0).pool is not None


def test_live_caps_reject_what_would_push_a_share_over() -> None:
    policies = Policies(caps=(Cap(DomainKind.PROVIDER, "*", 0.5),))
    placer = Placer(fleet(pool("az", capacity=100), pool("aws", provider="aws",
                                                          region="us-east-1", capacity=100,
                                                          price=50), policies=policies))
    # the baseline without a plan is the fleet's capacity (200): 60 chips on azure is 30%
    usage = placer.usage({"az": 60})
    assert placer.place(request(chips=30), usage, 0).pool == "az"  # 90/200 = 45%
    decision = placer.place(request(chips=50), usage, 0)  # azure would reach 110/200
    assert decision.pool == "aws"
    assert rejected(decision, "az")["caps"] == (
        "placing 50 chips: provider azure would reach 55.0% of 200 chips (cap 50%)")


def test_caps_use_the_plans_total_as_the_baseline() -> None:
    policies = Policies(caps=(Cap(DomainKind.VENDOR, "nvidia", 0.5),))
    f = fleet(pool("h", capacity=1000), pool("m", accelerator="mi300x", price=50),
              policies=policies)
    plan = Plan.model_construct(contracts=[], allocations=[
        Allocation(period=0, pool="m", workload="x", kind="batch", chips=100, cost_usd=0)])
    placer = Placer(f, plan)
    decision = placer.place(request(chips=60, accelerators=("h100", "mi300x")),
                            placer.usage(), 0)
    assert decision.pool == "m"  # 60 nvidia chips of max(60, 100) would be 60% > 50%
    assert "vendor nvidia would reach 60.0%" in rejected(decision, "h")["caps"]


# --- scorers ---------------------------------------------------------------------------


def test_the_plans_pool_is_preferred() -> None:
    f = fleet(pool("cheap", price=1.0), pool("planned", price=30.0))
    plan = Plan.model_construct(contracts=[], allocations=[
        Allocation(period=1, pool="planned", workload="w", kind="training", chips=64,
                   cost_usd=0)])
    placer = Placer(f, plan)
    assert Placer(f).place(request(), placer.usage(), 1).pool == "cheap"
    decision = placer.place(request(), placer.usage(), 1)
    assert decision.pool == "planned"
    assert any("the plan gives this workload 64 chips here" in line for line in explain(decision))
    # outside the plan's periods for it, the horizon's assignment still counts
    assert placer.place(request(), placer.usage(), 0).pool == "planned"


def test_training_follows_a_real_plan() -> None:
    """With nothing running, each scheduled run goes where the planner put it."""
    f = generate_fleet(20, 12, 3, seed=1)
    plan = make_plan(f, PlanOptions(solve=SolveOptions(time_limit_s=5), explain=False,
                                    conflicts=False, duals=False))
    placer = Placer(f, plan)
    scheduled = [tp for tp in plan.training if tp.scheduled]
    assert scheduled
    for tp in scheduled:
        run = next(r for r in f.training if r.name == tp.workload)
        req = Request(run.name, "training", tuple(AcceleratorOption(a, run.gang_chips)
                                                  for a in run.accelerators),
                      gang=True, tenant_class=run.tenant_class, spot_allowed=run.spot_allowed)
        assert tp.start_period is not None
        assert placer.place(req, placer.usage(), tp.start_period).pool == tp.pool


def test_committed_capacity_first_at_equal_fit() -> None:
    contract = Contract(name="deal", provider="azure", pools=("committed",), start_period=0,
                        end_period=1, take_or_pay=True, price_usd_per_chip_hour=10.0,
                        committed_chips=(100.0, 100.0))
    f = fleet(pool("committed", tier=Tier.COMMITTED), pool("on-demand"), contracts=(contract,))
    placer = Placer(f)
    assert placer.place(request(), placer.usage(), 0).pool == "committed"
    # once the commitment is used up its marginal cost is the list price again: a tie,
    # broken by name
    used = placer.usage({"committed": 100})
    decision = placer.place(request(), used, 0)
    assert decision.pool == "committed"
    scores = {v.pool: v.scores["committed"] for v in decision.verdicts}
    assert scores == {"committed": 0.0, "on-demand": 0.0}


def test_service_replicas_spread_across_providers() -> None:
    f = fleet(pool("az1", price=1.0), pool("az2", region="westeurope", price=1.0),
              pool("aws", provider="aws", region="us-east-1", price=20.0),
              pool("amd", provider="oci", region="eu-west-1", accelerator="mi300x", price=30.0))
    placer = Placer(f)
    req = Request("chat", "inference", (AcceleratorOption("h100", 8),
                                        AcceleratorOption("mi300x", 8)),
                  replicas=4, spread=DomainKind.PROVIDER)
    placed = placer.place_replicas(req, placer.usage(), 0)
    assert [d.pool for d in placed] == ["az1", "aws", "amd", "az1"]
    az1 = next(line for line in explain(placed[1]) if line.startswith("  passed   az1"))
    assert "spread 2.50 (1 replica(s) already in provider azure)" in az1


def test_place_replicas_stops_at_the_first_failure() -> None:
    placer = Placer(fleet(pool("a", capacity=20)))
    placed = placer.place_replicas(request(chips=8, replicas=5), placer.usage(), 0)
    assert [d.pool for d in placed] == ["a", "a", None]


# --- explain ----------------------------------------------------------------------------


def test_explain_says_why_and_why_not() -> None:
    placer = Placer(fleet(pool("a", capacity=4), pool("b"), pool("c", accelerator="mi300x")))
    lines = explain(placer.place(request(), placer.usage(), 0))
    assert lines[0] == "training w: 1 replica of (8 h100), 2026-01: placed on b (8 chips)"
    assert lines[1].startswith("  chosen   b: score")
    assert "rejected a: capacity: needs 8 chips, 4 of 4 free in 2026-01" in lines[2]
    assert "rejected c: compatibility: accelerator mi300x" in lines[3]
    nowhere = explain(placer.place(request(chips=5000), placer.usage(), 0))
    assert "not placed (unschedulable" in nowhere[0]


def test_job_requests_and_periods() -> None:
    job = JobSpec(name="j", kind="batch", command=("true",),
                  accelerators=(AcceleratorOption("h100", 2),), gang_size=3, checkpoint=None,
                  retry=RetryPolicy(), priority=1, tenant_class=None, jurisdiction=None,
                  spot_allowed=True, source="j.yaml")
    req = request_for_job(job)
    assert req.gang and req.units == 3 and req.spot_allowed
    horizon = Horizon(date(2026, 1, 1), 24)
    assert period_at(horizon, datetime(2026, 3, 5)) == 2
    assert period_at(horizon, datetime(2025, 3, 5)) == 0
    assert period_at(horizon, datetime(2031, 1, 1)) == 23


def test_usage_is_immutable() -> None:
    placer = Placer(fleet(pool("a")))
    usage = placer.usage({"a": 1, "elsewhere": 5})
    more = usage.with_added(0, 2)
    assert usage.chips.tolist() == [1] and more.chips.tolist() == [3]
    assert isinstance(more, LiveUsage)


# --- properties on generated fleets ----------------------------------------------------------


def _oracle(placer: Placer, req: Request, usage: np.ndarray, period: int,
            blocklist: frozenset[Scope]) -> list[bool]:
    """Every filter, written out plainly, per pool (an independent check)."""
    f = placer.fleet
    total = float(usage.sum())
    out = []
    for p, pl in enumerate(placer.pools):
        chips_by_acc = {}
        for o in req.accelerators:
            chips_by_acc.setdefault(o.accelerator, o.chips * req.units)
        chips = chips_by_acc.get(pl.accelerator)
        ok = chips is not None
        ok = ok and (req.spot_allowed or pl.tier is not Tier.SPOT)
        allowed = f.policies.exclusivity.get(req.tenant_class or "")
        ok = ok and (allowed is None or pl.provider in allowed)
        regions = f.policies.residency.get(req.jurisdiction or "")
        ok = ok and (regions is None or f"{pl.provider}/{pl.region}" in regions)
        ok = ok and not any(
            (s.kind is ScopeKind.PROVIDER and s.name == pl.provider)
            or (s.kind is ScopeKind.REGION and s.name == f"{pl.provider}/{pl.region}")
            or (s.kind is ScopeKind.ACCELERATOR and s.name == pl.accelerator)
            or (s.kind is ScopeKind.POOL and s.name == pl.name) for s in blocklist)
        if ok and chips is not None:
            ok = pl.capacity_chips[period] - usage[p] + 1e-9 >= chips
            denom = max(total + chips, float(placer.cap_baseline[period]))
            for cap in f.policies.caps:
                if cap.name not in ("*", pl.domain(cap.kind)):
                    continue
                used = sum(usage[q] for q, other in enumerate(placer.pools)
                           if other.domain(cap.kind) == pl.domain(cap.kind))
                ok = ok and (used + chips) / denom <= cap.max_share + 1e-9
        out.append(bool(ok))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_pools=st.integers(10, 30), data=st.data())
def test_choices_always_pass_every_filter(seed: int, n_pools: int, data: st.DataObject) -> None:
    f = generate_fleet(8, n_pools, 2, seed=seed)
    placer = Placer(f)
    accs = [*sorted({p.accelerator for p in f.pools}), "no-such-chip"]
    chosen_accs = data.draw(st.lists(st.sampled_from(accs), min_size=1, max_size=3, unique=True))
    chips = data.draw(st.integers(1, 64))
    req = Request(
        "w", "training", tuple(AcceleratorOption(a, chips) for a in chosen_accs),
        replicas=data.draw(st.integers(1, 8)), gang=data.draw(st.booleans()),
        tenant_class=data.draw(st.sampled_from([None, *f.policies.exclusivity])),
        jurisdiction=data.draw(st.sampled_from([None, "us", "eu"])),
        spot_allowed=data.draw(st.booleans()))
    fractions = data.draw(st.lists(st.floats(0, 1), min_size=len(f.pools),
                                   max_size=len(f.pools)))
    usage = np.array([fr * p.capacity_chips[0] for fr, p in zip(fractions, placer.pools,
                                                                  strict=True)])
    scopes = [Scope(ScopeKind.PROVIDER, p.provider) for p in f.pools] + [
        Scope(ScopeKind.POOL, p.name) for p in f.pools]
    blocklist = frozenset(data.draw(st.lists(st.sampled_from(scopes), max_size=3)))
    decision = placer.place(req, LiveUsage(usage.copy()), 0, blocklist=blocklist)
    expected = _oracle(placer, req, usage, 0, blocklist)
    assert [v.passed for v in decision.verdicts] == expected
    if any(expected):
        assert decision.pool is not None and expected[placer.index[decision.pool]]
        pool_ = placer.pools[placer.index[decision.pool]]
        allowed = f.policies.exclusivity.get(req.tenant_class or "")
        assert allowed is None or pool_.provider in allowed
        regions = f.policies.residency.get(req.jurisdiction or "")
        assert regions is None or pool_.domain(DomainKind.REGION) in regions
    else:
        assert decision.pool is None and decision.outcome is not Outcome.PLACED
    for verdict in decision.verdicts:  # every rejection has a readable reason
        assert all(name in {f_.name for f_ in FILTERS} and text
                   for name, text in verdict.rejections)
