"""Placement: where a job or a replica runs now, and why (filter -> score -> select).

The pipeline follows Nomad's scheduler and the Kubernetes scheduling framework:

1. **Filter.** Each :class:`Filter` is a small named class that, for one request,
   returns a boolean mask over the fleet's pools (True: the pool may take it). A
   rejection is data: the filter can say, for any pool it rejects, why, in a sentence.
   Filters that only look at the request and the fleet (compatibility, tier,
   exclusivity, residency) are *unresolvable*: waiting will not change them; the
   others (free capacity, blocklist, live caps) may pass later.
2. **Score.** Each :class:`Scorer` gives every pool a value in [0, 1] with a weight
   and a readable note: the plan's assignment for this workload, committed capacity
   (zero marginal cost under take-or-pay), price, spread across failure domains.
3. **Select.** The passing pool with the highest weighted total wins; ties go to the
   pool whose name sorts first (pools are indexed in name order).

Everything a request does not change is computed once per fleet by :class:`Placer`
(numpy arrays over pools); a request costs a few vectorised operations on them. The
readable verdicts (:attr:`Placement.verdicts`) and :func:`explain` are built lazily,
from the masks, only when asked, so the hot path allocates little.

Policy semantics match the planner's (:mod:`cloudhedge.planning.index`): a tenant class
absent from the exclusivity policy and a jurisdiction absent from the residency policy
are unrestricted. The workload loaders (:mod:`cloudhedge.control.specs`) refuse names
the policies do not know, so a typo cannot escape a policy.

Live concentration caps compare a domain's chips in use, after the placement, with the
larger of (all chips in use after it) and a *baseline*: the plan's total allocated
chips in the period (the fleet's total capacity without a plan). Without a baseline
the first placements would always breach a share cap (one chip is 100% of one chip).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt

from cloudhedge.control.providers.base import Scope, ScopeKind
from cloudhedge.control.specs import AcceleratorOption, JobSpec, ServiceSpec
from cloudhedge.core.models import DomainKind, Fleet, Horizon, Pool, Tier
from cloudhedge.core.plan import Plan

__all__ = [
    "DEFAULT_WEIGHTS",
    "FILTERS",
    "SCORERS",
    "LiveUsage",
    "Outcome",
    "Placement",
    "Placer",
    "Request",
    "Scope",
    "ScopeKind",
    "Verdict",
    "explain",
    "headline",
    "period_at",
    "request_for_job",
    "request_for_service",
]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

DEFAULT_WEIGHTS: Mapping[str, float] = {"plan": 4.0, "committed": 2.0, "price": 1.0,
                                        "spread": 5.0}
"""Scorer weights: spread first for services, then the plan, then cost. A pool the plan
gives the workload most chips in outweighs any unplanned pool's cost advantage
(4 > 2 + 1)."""

_EPS = 1e-9


# --- inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A placement request: one job (a gang) or one replica of a service."""

    workload: str
    kind: Literal["training", "batch", "inference"]
    accelerators: tuple[AcceleratorOption, ...]
    replicas: int = 1
    gang: bool = False  # all replicas in one pool, at once
    tenant_class: str | None = None
    jurisdiction: str | None = None
    spread: DomainKind | None = None  # services: failure domain kind to spread over
    spot_allowed: bool = False

    @property
    def units(self) -> int:
        """Replicas one placement takes: all of them for a gang, else one."""
        return self.replicas if self.gang else 1

    @property
    def describe(self) -> str:
        alts = " or ".join(f"{o.chips} {o.accelerator}" for o in self.accelerators)
        what = f"{self.replicas} x ({alts})" if self.gang else f"1 replica of ({alts})"
        return f"{self.kind} {self.workload}: {what}" + (" as one gang" if self.gang else "")


def request_for_job(job: JobSpec) -> Request:
    """A job's whole gang, in one pool."""
    kind: Literal["training", "batch"] = job.kind
    return Request(job.name, kind, job.accelerators, replicas=job.gang_size, gang=True,
                   tenant_class=job.tenant_class, jurisdiction=job.jurisdiction,
                   spot_allowed=job.spot_allowed)


def request_for_service(service: ServiceSpec) -> Request:
    """A service's replicas, placed one by one (see :meth:`Placer.place_replicas`)."""
    return Request(service.name, "inference", service.accelerators, replicas=service.replicas,
                   tenant_class=service.tenant_class, jurisdiction=service.jurisdiction,
                   spread=service.spread, spot_allowed=service.spot_allowed)


def period_at(horizon: Horizon, when: datetime) -> int:
    """The horizon period ``when`` falls in, clamped to the horizon (monthly periods)."""
    if horizon.period == "month":
        t = (when.year - horizon.start.year) * 12 + when.month - horizon.start.month
    else:
        hours = (when.date() - horizon.start).days * 24.0
        t = int(hours // horizon.period_hours)
    return min(max(t, 0), horizon.periods - 1)


class LiveUsage:
    """Chips in use per pool, in the :class:`Placer`'s pool order.

    Immutable (the array is made read-only: pass one you no longer change); adding
    returns a new value. A :class:`Placement` keeps the usage it was decided on, so its
    lazily built verdicts describe the decision, not a later state.
    """

    __slots__ = ("chips",)

    def __init__(self, chips: FloatArray) -> None:
        self.chips = chips
        self.chips.setflags(write=False)

    def with_added(self, pool: int, chips: float) -> LiveUsage:
        out = self.chips.copy()
        out[pool] += chips
        return LiveUsage(out)


# --- results ---------------------------------------------------------------------------


class Outcome(StrEnum):
    """Like the Kubernetes framework's status codes."""

    PLACED = "placed"
    UNSCHEDULABLE = "unschedulable"  # fits nowhere now; may fit later (capacity, blocks, caps)
    UNRESOLVABLE = "unresolvable"  # no pool could ever take it as specified


@dataclass(frozen=True)
class Verdict:
    """One pool's fate for one request."""

    pool: str
    passed: bool
    rejections: tuple[tuple[str, str], ...]  # (filter, reason)
    scores: dict[str, float]  # scorer -> raw value in [0, 1]
    notes: dict[str, str]  # scorer -> why that value
    total: float  # weighted sum of the scores


@dataclass(frozen=True, eq=False)
class Placement:
    """A decision: the chosen pool (None if none passes) and the masks behind it."""

    request: Request
    period: int
    pool: str | None
    outcome: Outcome
    _ctx: _Context = field(repr=False)
    _masks: tuple[BoolArray, ...] = field(repr=False)
    _totals: FloatArray | None = field(repr=False)

    @property
    def pool_index(self) -> int | None:
        """The chosen pool's index in the placer's pool order."""
        return None if self.pool is None else self._ctx.placer.index[self.pool]

    @property
    def chips(self) -> float:
        """Chips the placement takes on the chosen pool (0 when unplaced)."""
        i = self.pool_index
        return 0.0 if i is None else float(self._ctx.chips[i])

    @cached_property
    def verdicts(self) -> tuple[Verdict, ...]:
        """Every pool's verdict, in pool-name order (built on first access)."""
        ctx = self._ctx
        placer = ctx.placer
        scores = [(s, s.score(ctx)) for s in placer.scorers]
        totals = self._totals if self._totals is not None else ctx.total(scores)
        out = []
        for p, pool in enumerate(placer.pools):
            rejections = tuple((f.name, f.reason(ctx, p))
                               for f, m in zip(placer.filters, self._masks, strict=True)
                               if not m[p])
            out.append(Verdict(
                pool=pool.name, passed=not rejections, rejections=rejections,
                scores={s.name: round(float(v[p]), 4) for s, v in scores},
                notes={s.name: s.note(ctx, p) for s, _ in scores},
                total=round(float(totals[p]), 4)))
        return tuple(out)


# --- the per-request context ----------------------------------------------------------


@dataclass(eq=False)
class _Context:
    """What one request sees: the placer, the usage, the period and derived arrays."""

    placer: Placer
    request: Request
    period: int
    usage: FloatArray  # (P,) chips in use
    blocklist: frozenset[Scope]
    beside: IntArray  # (P,) replicas of this service already on each pool
    static: _Static
    chips: FloatArray  # (P,) chips the request needs on each pool (0: incompatible)

    def total(self, scores: Sequence[tuple[Scorer, FloatArray]]) -> FloatArray:
        weights = self.placer.weights
        total = np.zeros(len(self.placer.pools))
        for scorer, values in scores:
            total += weights.get(scorer.name, 0.0) * values
        return total


@dataclass(frozen=True, eq=False)
class _Static:
    """Per-request arrays that depend only on the request's static attributes (cached)."""

    chips_per_unit: FloatArray  # (P,) chips one placement takes on each pool; 0: incompatible
    compatible: BoolArray
    tier_ok: BoolArray
    exclusivity_ok: BoolArray
    residency_ok: BoolArray
    unresolvable_ok: BoolArray  # the four above, and-ed


# --- filters ---------------------------------------------------------------------------


class Filter(Protocol):
    """A named feasibility check: a mask over pools and, for a rejected pool, a reason."""

    name: ClassVar[str]
    resolvable: ClassVar[bool]  # True: may pass later without changing the request

    def mask(self, ctx: _Context) -> BoolArray: ...

    def reason(self, ctx: _Context, p: int) -> str: ...


class Compatibility:
    """The pool's accelerator is one of the request's alternatives."""

    name: ClassVar[str] = "compatibility"
    resolvable: ClassVar[bool] = False

    def mask(self, ctx: _Context) -> BoolArray:
        return ctx.static.compatible

    def reason(self, ctx: _Context, p: int) -> str:
        alts = ", ".join(o.accelerator for o in ctx.request.accelerators)
        return f"accelerator {ctx.placer.pools[p].accelerator} is not among the alternatives " \
               f"({alts})"


class TierFilter:
    """Spot pools only for requests that allow spot."""

    name: ClassVar[str] = "tier"
    resolvable: ClassVar[bool] = False

    def mask(self, ctx: _Context) -> BoolArray:
        return ctx.static.tier_ok

    def reason(self, ctx: _Context, p: int) -> str:
        return f"spot pool (preemption {ctx.placer.pools[p].preemption_rate_per_hour:.0%}/h) " \
               f"and {ctx.request.workload} does not allow spot"


class FreeCapacity:
    """The pool's capacity in the period minus live usage covers the request's chips."""

    name: ClassVar[str] = "capacity"
    resolvable: ClassVar[bool] = True

    def mask(self, ctx: _Context) -> BoolArray:
        free = ctx.placer.capacity[:, ctx.period] - ctx.usage
        result: BoolArray = free + _EPS >= ctx.chips
        return result

    def reason(self, ctx: _Context, p: int) -> str:
        placer = ctx.placer
        cap = float(placer.capacity[p, ctx.period])
        free = max(cap - float(ctx.usage[p]), 0.0)
        return f"needs {_n(ctx.chips[p])} chips, {_n(free)} of {_n(cap)} free in " \
               f"{placer.fleet.horizon.label(ctx.period)}"


class BlocklistFilter:
    """The pool is not inside a blocked scope (provider, region, accelerator, pool)."""

    name: ClassVar[str] = "blocklist"
    resolvable: ClassVar[bool] = True

    def mask(self, ctx: _Context) -> BoolArray:
        return ~ctx.placer.blocked(ctx.blocklist)

    def reason(self, ctx: _Context, p: int) -> str:
        hits = sorted(str(s) for s in ctx.blocklist if ctx.placer.scope_mask(s)[p])
        return f"blocked by {', '.join(hits)}"


class Exclusivity:
    """Tenant class -> the providers it may run on (distribution rights)."""

    name: ClassVar[str] = "exclusivity"
    resolvable: ClassVar[bool] = False

    def mask(self, ctx: _Context) -> BoolArray:
        return ctx.static.exclusivity_ok

    def reason(self, ctx: _Context, p: int) -> str:
        cls = ctx.request.tenant_class
        allowed = ctx.placer.fleet.policies.exclusivity.get(cls or "", ())
        return f"tenant class '{cls}' may only run on {', '.join(allowed)}; the pool is on " \
               f"{ctx.placer.pools[p].provider}"


class Residency:
    """A jurisdiction's workloads stay in the regions its policy lists."""

    name: ClassVar[str] = "residency"
    resolvable: ClassVar[bool] = False

    def mask(self, ctx: _Context) -> BoolArray:
        return ctx.static.residency_ok

    def reason(self, ctx: _Context, p: int) -> str:
        jur = ctx.request.jurisdiction
        allowed = ctx.placer.fleet.policies.residency.get(jur or "", ())
        listed = ", ".join(allowed) if len(allowed) <= 4 else f"its {len(allowed)} listed regions"
        return f"jurisdiction '{jur}' must stay in {listed}; the pool is in " \
               f"{ctx.placer.pools[p].domain(DomainKind.REGION)}"


class ConcentrationCaps:
    """Placing here would not push a provider, vendor or region share over its cap."""

    name: ClassVar[str] = "caps"
    resolvable: ClassVar[bool] = True

    def mask(self, ctx: _Context) -> BoolArray:
        placer = ctx.placer
        if not placer.caps:
            return placer.all_pools
        denom = np.maximum(ctx.usage.sum() + ctx.chips, placer.cap_baseline[ctx.period])
        used = placer.cap_member @ ctx.usage  # chips in use per capped domain
        share = (used[placer.cap_domain] + ctx.chips) / np.maximum(denom, _EPS)
        result: BoolArray = (share <= placer.cap_limit + _EPS).all(axis=0)
        return result

    def reason(self, ctx: _Context, p: int) -> str:
        placer = ctx.placer
        chips = float(ctx.chips[p])
        denom = max(float(ctx.usage.sum()) + chips, float(placer.cap_baseline[ctx.period]), _EPS)
        parts = []
        for cap in placer.caps:
            used = float(ctx.usage[cap.domain == cap.domain[p]].sum())
            share = (used + chips) / denom
            if share > cap.limit[p] + _EPS:
                parts.append(f"{cap.kind} {cap.names[cap.domain[p]]} would reach {share:.1%} of "
                             f"{_n(denom)} chips (cap {cap.limit[p]:.0%})")
        return f"placing {_n(chips)} chips: " + "; ".join(parts)


FILTERS: tuple[Filter, ...] = (Compatibility(), TierFilter(), Exclusivity(), Residency(),
                               BlocklistFilter(), FreeCapacity(), ConcentrationCaps())
"""The filter chain, in reporting order."""


# --- scorers ---------------------------------------------------------------------------


class Scorer(Protocol):
    """A named preference: a value in [0, 1] per pool and a note saying why."""

    name: ClassVar[str]

    def score(self, ctx: _Context) -> FloatArray: ...

    def note(self, ctx: _Context, p: int) -> str: ...


class PlanScorer:
    """Pools the plan allocates to this workload, in proportion to its chips there."""

    name: ClassVar[str] = "plan"

    def score(self, ctx: _Context) -> FloatArray:
        planned = ctx.placer.planned(ctx.request.workload, ctx.period)
        top = planned.max(initial=0.0)
        return planned / top if top > 0 else planned

    def note(self, ctx: _Context, p: int) -> str:
        chips = float(ctx.placer.planned(ctx.request.workload, ctx.period)[p])
        if chips <= 0:
            return "the plan gives this workload no chips here"
        return f"the plan gives this workload {_n(chips)} chips here"


class CommittedScorer:
    """Contract-covered pools with commitment to spare: zero marginal cost under
    take-or-pay. The share of the request the spare commitment covers."""

    name: ClassVar[str] = "committed"

    def score(self, ctx: _Context) -> FloatArray:
        spare = ctx.placer.spare_commitment(ctx.usage, ctx.period)
        result: FloatArray = np.clip(spare / np.maximum(ctx.chips, _EPS), 0.0, 1.0)
        return result

    def note(self, ctx: _Context, p: int) -> str:
        spare = float(ctx.placer.spare_commitment(ctx.usage, ctx.period)[p])
        if not ctx.placer.covered[:, p, ctx.period].any():
            return "not covered by an active take-or-pay contract"
        return f"{_n(max(spare, 0.0))} committed chips unused (zero marginal cost)"


class PriceScorer:
    """Cheaper list price per chip-hour is better (normalised over the fleet)."""

    name: ClassVar[str] = "price"

    def score(self, ctx: _Context) -> FloatArray:
        return ctx.placer.price_score

    def note(self, ctx: _Context, p: int) -> str:
        return f"{ctx.placer.pools[p].price_usd_per_chip_hour:.2f} USD per chip-hour"


class SpreadScorer:
    """Services: failure domains already holding replicas of this service score lower."""

    name: ClassVar[str] = "spread"

    def score(self, ctx: _Context) -> FloatArray:
        kind = ctx.request.spread
        if kind is None:
            return ctx.placer.zeros
        dom = ctx.placer.domains[kind]
        held = np.bincount(dom.index, weights=ctx.beside, minlength=len(dom.names))
        return np.asarray(1.0 / (1.0 + held[dom.index]), dtype=np.float64)

    def note(self, ctx: _Context, p: int) -> str:
        kind = ctx.request.spread
        if kind is None:
            return "not spread (not a service)"
        dom = ctx.placer.domains[kind]
        held = int(ctx.beside[dom.index == dom.index[p]].sum())
        return f"{held} replica(s) already in {kind} {dom.names[dom.index[p]]}"


SCORERS: tuple[Scorer, ...] = (PlanScorer(), CommittedScorer(), PriceScorer(), SpreadScorer())
"""The scorers, in reporting order."""


# --- the placer ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Domains:
    names: tuple[str, ...]
    index: IntArray  # (P,) domain of each pool


@dataclass(frozen=True, eq=False)
class _CapArrays:
    kind: DomainKind
    names: tuple[str, ...]
    domain: IntArray  # (P,)
    n_domains: int
    limit: FloatArray  # (P,) the tightest cap on each pool's domain (inf: none)


class Placer:
    """Places requests on one fleet (optionally guided by its plan).

    Build once per fleet and plan; :meth:`place` is cheap and pure (it reads the
    usage it is given and changes nothing).
    """

    def __init__(
        self,
        fleet: Fleet,
        plan: Plan | None = None,
        *,
        weights: Mapping[str, float] | None = None,
        filters: Sequence[Filter] = FILTERS,
        scorers: Sequence[Scorer] = SCORERS,
    ) -> None:
        self.fleet = fleet
        self.pools: tuple[Pool, ...] = tuple(sorted(fleet.pools, key=lambda p: p.name))
        self.index = {p.name: i for i, p in enumerate(self.pools)}
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        P, T = len(self.pools), fleet.horizon.periods
        self.zeros: FloatArray = np.zeros(P)
        self.capacity = np.array([p.capacity_chips for p in self.pools], dtype=float).reshape(P, T)
        self.accelerators = tuple(sorted({p.accelerator for p in self.pools}))
        self._acc_index = np.array([self.accelerators.index(p.accelerator) for p in self.pools],
                                   dtype=np.intp)
        self.spot = np.array([p.tier is Tier.SPOT for p in self.pools], dtype=bool)
        prices = np.array([p.price_usd_per_chip_hour for p in self.pools], dtype=float)
        spread = prices.max(initial=0.0) - prices.min(initial=0.0)
        self.price_score: FloatArray = (
            1.0 - (prices - prices.min()) / spread if spread > 0 else np.ones(P))
        self.domains = {kind: self._domains(kind) for kind in DomainKind}
        self.caps = self._caps()
        self.all_pools: BoolArray = np.ones(P, dtype=bool)
        self.all_pools.setflags(write=False)
        self._no_replicas: IntArray = np.zeros(P, dtype=np.intp)
        self._no_replicas.setflags(write=False)
        # all caps at once: chips per capped domain = cap_member @ usage; cap_domain (C, P)
        # is each pool's row in it per cap kind, cap_limit (C, P) the tightest share
        offsets = np.cumsum([0] + [c.n_domains for c in self.caps])
        self.cap_member = np.zeros((int(offsets[-1]), P))
        for c, cap in enumerate(self.caps):
            self.cap_member[offsets[c] + cap.domain, np.arange(P)] = 1.0
        self.cap_domain = np.array([offsets[c] + cap.domain for c, cap in enumerate(self.caps)],
                                   dtype=np.intp).reshape(len(self.caps), P)
        self.cap_limit = np.array([cap.limit for cap in self.caps]).reshape(len(self.caps), P)
        self._contracts(plan)
        self._plan(plan)
        self._static_cache: dict[tuple[object, ...], _Static] = {}
        self._scope_cache: dict[Scope, BoolArray] = {}
        self._block_cache: dict[frozenset[Scope], BoolArray] = {}

    # --- precomputation ---

    def _domains(self, kind: DomainKind) -> _Domains:
        names = tuple(sorted({p.domain(kind) for p in self.pools}))
        lookup = {n: i for i, n in enumerate(names)}
        return _Domains(names, np.array([lookup[p.domain(kind)] for p in self.pools],
                                        dtype=np.intp))

    def _caps(self) -> tuple[_CapArrays, ...]:
        out = []
        for kind in DomainKind:
            caps = [c for c in self.fleet.policies.caps if c.kind is kind]
            if not caps:
                continue
            dom = self.domains[kind]
            limit = np.full(len(self.pools), np.inf)
            for cap in caps:
                hit = np.ones(len(self.pools), dtype=bool) if cap.name == "*" else np.array(
                    [dom.names[d] == cap.name for d in dom.index], dtype=bool)
                limit[hit] = np.minimum(limit[hit], cap.max_share)
            out.append(_CapArrays(kind, dom.names, dom.index, len(dom.names), limit))
        return tuple(out)

    def _contracts(self, plan: Plan | None) -> None:
        """Take-or-pay coverage (K, P, T) and committed chips (K, T)."""
        T = self.fleet.horizon.periods
        hours = self.fleet.horizon.period_hours
        used = {c.name: c for c in plan.contracts} if plan is not None else {}
        contracts = [c for c in self.fleet.contracts if c.take_or_pay]
        covered = np.zeros((len(contracts), len(self.pools), T), dtype=bool)
        committed = np.zeros((len(contracts), T))
        for k, c in enumerate(contracts):
            active = np.array([c.active(t) for t in range(T)], dtype=bool)
            for name in c.pools:
                if name in self.index:
                    covered[k, self.index[name]] = active
            if c.name in used and used[c.name].unit == "chips":
                committed[k] = np.array(used[c.name].committed_chips[:T], dtype=float)
            elif c.committed_chips:
                committed[k] = np.array(c.committed_chips[:T], dtype=float)
            elif c.committed_spend_usd and c.price_usd_per_chip_hour > 0:
                spend = np.array(c.committed_spend_usd[:T], dtype=float)
                committed[k] = spend / (c.price_usd_per_chip_hour * hours)
        self.covered = covered
        self.committed = committed
        # per period, contiguous: coverage as 0/1 and as 0/-inf (added before a max)
        self._cover = np.ascontiguousarray(covered.transpose(2, 0, 1), dtype=float)
        self._not_covered = np.where(self._cover > 0, 0.0, -np.inf)

    def _plan(self, plan: Plan | None) -> None:
        """The plan's chips per (workload, period) and per workload over the horizon."""
        per_period: dict[tuple[str, int], FloatArray] = {}
        overall: dict[str, FloatArray] = {}
        total = np.zeros(self.fleet.horizon.periods)
        for a in plan.allocations if plan is not None else ():
            p = self.index.get(a.pool)
            if p is None or not 0 <= a.period < len(total):
                continue
            per_period.setdefault((a.workload, a.period), np.zeros(len(self.pools)))[p] += a.chips
            overall.setdefault(a.workload, np.zeros(len(self.pools)))[p] += a.chips
            total[a.period] += a.chips
        self._planned = per_period
        self._planned_overall = overall
        self.cap_baseline: FloatArray = total if plan is not None else self.capacity.sum(axis=0)

    # --- per request helpers (read by filters and scorers) ---

    def planned(self, workload: str, period: int) -> FloatArray:
        """The plan's chips for ``workload`` per pool in ``period`` (over the horizon if
        the plan gives it none in that period)."""
        found = self._planned.get((workload, period))
        if found is None:
            found = self._planned_overall.get(workload, self.zeros)
        return found

    def spare_commitment(self, usage: FloatArray, period: int) -> FloatArray:
        """(P,) unused committed chips of the contracts covering each pool (-inf: none)."""
        if not len(self.committed):
            return np.full(len(self.pools), -np.inf)
        spare = self.committed[:, period] - self._cover[period] @ usage
        result: FloatArray = (spare[:, None] + self._not_covered[period]).max(axis=0)
        return result

    def scope_mask(self, scope: Scope) -> BoolArray:
        """Pools inside ``scope`` (cached)."""
        found = self._scope_cache.get(scope)
        if found is None:
            key = {
                ScopeKind.PROVIDER: lambda p: p.provider,
                ScopeKind.REGION: lambda p: p.domain(DomainKind.REGION),
                ScopeKind.ACCELERATOR: lambda p: p.accelerator,
                ScopeKind.POOL: lambda p: p.name,
            }.get(scope.kind)
            found = np.array([key is not None and key(p) == scope.name for p in self.pools],
                             dtype=bool)
            self._scope_cache[scope] = found
        return found

    def blocked(self, blocklist: frozenset[Scope]) -> BoolArray:
        """Pools inside any scope of ``blocklist`` (cached per blocklist)."""
        found = self._block_cache.get(blocklist)
        if found is None:
            found = np.zeros(len(self.pools), dtype=bool)
            for scope in blocklist:
                found = found | self.scope_mask(scope)
            self._block_cache[blocklist] = found
        return found

    def _static(self, request: Request) -> _Static:
        key = (request.accelerators, request.units, request.spot_allowed, request.tenant_class,
               request.jurisdiction)
        found = self._static_cache.get(key)
        if found is not None:
            return found
        per_acc = np.zeros(len(self.accelerators))
        for option in request.accelerators:
            if option.accelerator in self.accelerators:
                i = self.accelerators.index(option.accelerator)
                per_acc[i] = per_acc[i] or option.chips  # the first alternative listed wins
        chips = per_acc[self._acc_index]
        compatible = chips > 0
        tier_ok = self.all_pools if request.spot_allowed else ~self.spot
        policies = self.fleet.policies
        providers = policies.exclusivity.get(request.tenant_class or "")
        exclusivity_ok = np.array([providers is None or p.provider in providers
                                   for p in self.pools], dtype=bool)
        regions = policies.residency.get(request.jurisdiction or "")
        residency_ok = np.array([regions is None or p.domain(DomainKind.REGION) in regions
                                 for p in self.pools], dtype=bool)
        found = _Static(chips * request.units, compatible, tier_ok, exclusivity_ok,
                        residency_ok, compatible & tier_ok & exclusivity_ok & residency_ok)
        self._static_cache[key] = found
        return found

    # --- placing ---

    def usage(self, chips_by_pool: Mapping[str, float] | None = None) -> LiveUsage:
        """Live usage from chips in use by pool name (unknown pools ignored)."""
        chips = np.zeros(len(self.pools))
        for name, value in (chips_by_pool or {}).items():
            p = self.index.get(name)
            if p is not None:
                chips[p] += value
        return LiveUsage(chips)

    def place(
        self,
        request: Request,
        usage: LiveUsage,
        period: int,
        *,
        blocklist: frozenset[Scope] = frozenset(),
        beside: Iterable[str] = (),
    ) -> Placement:
        """Place one unit of ``request`` (the whole gang, or one replica) in ``period``.

        ``beside`` names the pools already holding replicas of the same service (one
        entry per replica), for spreading.
        """
        static = self._static(request)
        indices = [self.index[name] for name in beside if name in self.index]
        held = np.bincount(indices, minlength=len(self.pools)) if indices \
            else self._no_replicas
        ctx = _Context(self, request, period, usage.chips, blocklist, held, static,
                       static.chips_per_unit)
        masks = tuple(f.mask(ctx) for f in self.filters)
        passed = self.all_pools
        for mask in masks:
            passed = passed & mask
        if not passed.any():
            outcome = Outcome.UNSCHEDULABLE if static.unresolvable_ok.any() \
                else Outcome.UNRESOLVABLE
            return Placement(request, period, None, outcome, ctx, masks, None)
        totals = ctx.total([(s, s.score(ctx)) for s in self.scorers])
        best = int(np.argmax(np.where(passed, totals, -np.inf)))
        return Placement(request, period, self.pools[best].name, Outcome.PLACED, ctx, masks,
                         totals)

    def place_replicas(
        self,
        request: Request,
        usage: LiveUsage,
        period: int,
        *,
        blocklist: frozenset[Scope] = frozenset(),
        beside: Iterable[str] = (),
        count: int | None = None,
    ) -> list[Placement]:
        """Place ``count`` replicas (default: all of a non-gang request) one by one,
        each seeing the usage and spread of those before it. Stops at the first replica
        that cannot be placed (it is the last element)."""
        held = list(beside)
        out: list[Placement] = []
        for _ in range(request.replicas if count is None else count):
            decision = self.place(request, usage, period, blocklist=blocklist, beside=held)
            out.append(decision)
            i = decision.pool_index
            if i is None:
                break
            usage = usage.with_added(i, decision.chips)
            held.append(self.pools[i].name)
        return out


# --- explanations --------------------------------------------------------------------------


def headline(decision: Placement) -> str:
    """The decision in one sentence (the first line of :func:`explain`), cheaply."""
    label = decision._ctx.placer.fleet.horizon.label(decision.period)
    head = f"{decision.request.describe}, {label}: "
    if decision.pool is None:
        return head + f"not placed ({decision.outcome}: no pool passes every filter)"
    return head + f"placed on {decision.pool} ({_n(decision.chips)} chips)"


def explain(decision: Placement) -> list[str]:
    """What ``cloudhedge explain`` prints: the decision, then per pool why it was (not)
    chosen: the chosen pool, the other passing pools by score, then the rejected ones."""
    placer = decision._ctx.placer
    lines = [headline(decision)]
    verdicts = decision.verdicts
    chosen = [v for v in verdicts if v.pool == decision.pool]
    others = sorted((v for v in verdicts if v.passed and v.pool != decision.pool),
                    key=lambda v: (-v.total, v.pool))
    rejected = [v for v in verdicts if not v.passed]
    for tag, group in (("chosen", chosen), ("passed", others)):
        for v in group:
            parts = " + ".join(f"{name} {placer.weights.get(name, 0.0) * value:.2f} "
                               f"({v.notes[name]})" for name, value in v.scores.items()
                               if placer.weights.get(name, 0.0))
            lines.append(f"  {tag:8} {v.pool}: score {v.total:.2f} = {parts}")
    for v in rejected:
        reasons = "; ".join(f"{name}: {text}" for name, text in v.rejections)
        lines.append(f"  {'rejected':8} {v.pool}: {reasons}")
    return lines


def _n(value: float) -> str:
    """A chip count for a sentence: integral values without decimals."""
    number = float(value)
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"
