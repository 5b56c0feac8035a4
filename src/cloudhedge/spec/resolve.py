"""Resolve a validated fleet spec, with a catalog, into the :class:`Fleet` the planner uses.

:func:`resolve` checks every cross reference and fills in what the catalog knows:

- the horizon (monthly periods of 730 hours) and every ``YYYY-MM`` reference as a
  period index; series as one value per period (:mod:`cloudhedge.spec.series`);
- pools: provider, region (with its jurisdiction) and accelerator known; names
  unique; price from the spec, the catalog or the contract covering the pool, never
  invented;
- contracts: pools known, of the contract's provider and committed tier, covered
  once; exactly one of committed chips, committed spend or a commitment decision;
  a price;
- policies: cap domains, exclusivity providers and residency regions known;
- workloads (:mod:`cloudhedge.spec.workloads`).

Every problem is collected, located with the :class:`SourceMap` (with the closest
known name as a suggestion), and raised at the end as one :class:`SpecError`.
Assumptions worth printing (assumed prices, modelled throughput) go to
``Fleet.notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import (
    Budget,
    Cap,
    CommitTier,
    Contract,
    DomainKind,
    Fleet,
    Policies,
    Pool,
    SurvivabilityRule,
    Tier,
)
from cloudhedge.spec.catalog_view import CatalogView
from cloudhedge.spec.loader import load_spec
from cloudhedge.spec.schema import ContractSpec, FleetSpec, PoolSpec
from cloudhedge.spec.series import Calendar, bad_date, parse_month, to_series
from cloudhedge.spec.source import IssueLog, PathKey, SourceMap, suggest
from cloudhedge.spec.workloads import resolve_workloads

__all__ = ["load_fleet", "resolve"]


def load_fleet(path: Path, catalog: CatalogView | None = None) -> Fleet:
    """Load, validate and resolve the fleet spec at ``path`` (built-in catalog by default)."""
    spec, source = load_spec(path)
    if catalog is None:
        from cloudhedge.catalog import load_builtin

        catalog = load_builtin()
    return resolve(spec, source, catalog, base_dir=Path(path).parent)


def resolve(
    spec: FleetSpec,
    source: SourceMap,
    catalog: CatalogView,
    base_dir: Path | None = None,
) -> Fleet:
    """Check ``spec`` against ``catalog`` and build the :class:`Fleet`.

    ``base_dir`` is the directory relative references in the spec are read from
    (the spec file's directory); no spec field uses it yet.
    """
    del base_dir  # reserved for relative references (e.g. a catalog import)
    log = IssueLog(source)
    calendar = _calendar(spec, log)
    if calendar is None:  # every period reference depends on the horizon: stop here
        raise SpecError(log.issues)
    ctx = _Context(spec, catalog, calendar, log)
    drafts = _pools(ctx)
    contracts = _contracts(ctx, drafts)
    pools = _priced_pools(ctx, drafts, contracts)
    policies = _policies(ctx, pools)
    training, batch, inference = resolve_workloads(spec, catalog, calendar, log, pools, ctx.notes)
    log.raise_if_any()
    defaults = spec.defaults
    return Fleet(
        name=spec.name,
        horizon=calendar.horizon,
        accelerators=dict(catalog.accelerators),
        pools=tuple(pools),
        contracts=tuple(c.contract for c in contracts if c.contract is not None),
        policies=policies,
        training=training,
        batch=batch,
        inference=inference,
        relative_speed={name: fig.value for name, fig in catalog.relative_speed.items()},
        training_penalty_usd_per_chip_hour=defaults.unscheduled_training_penalty_usd_per_chip_hour,
        batch_penalty_usd_per_chip_hour=defaults.unmet_batch_penalty_usd_per_chip_hour,
        notes=tuple(dict.fromkeys(ctx.notes)),
    )


@dataclass
class _Context:
    spec: FleetSpec
    catalog: CatalogView
    calendar: Calendar
    log: IssueLog
    notes: list[str] = field(default_factory=list)

    @property
    def providers(self) -> set[str]:
        return set(self.catalog.providers) | set(self.spec.providers)


@dataclass
class _PoolDraft:
    """A pool checked but not yet priced; ``ok`` when provider/region/accelerator resolve."""

    index: int
    spec: PoolSpec
    ok: bool
    jurisdiction: str = ""
    vendor: str = ""
    stack: str = ""
    capacity: tuple[float, ...] = ()

    @property
    def path(self) -> PathKey:
        return ("pools", self.index)


@dataclass
class _ContractDraft:
    index: int
    spec: ContractSpec
    pools: list[_PoolDraft]  # the known pools it covers
    price: float | None = None
    price_source: str = ""
    contract: Contract | None = None  # None when the contract has errors


# --- horizon --------------------------------------------------------------------------


def _calendar(spec: FleetSpec, log: IssueLog) -> Calendar | None:
    parsed = parse_month(spec.horizon.start)
    if parsed is None:
        log.add(("horizon", "start"), bad_date(spec.horizon.start))
        return None
    return Calendar(year=parsed[0], month=parsed[1], periods=spec.horizon.periods)


# --- pools ----------------------------------------------------------------------------


def _pools(ctx: _Context) -> list[_PoolDraft]:
    drafts: list[_PoolDraft] = []
    first: dict[str, int] = {}
    for i, pool in enumerate(ctx.spec.pools):
        path: PathKey = ("pools", i)
        if pool.name in first:
            line = ctx.log.source.position(("pools", first[pool.name], "name"))[0]
            ctx.log.add(
                (*path, "name"), f"duplicate pool name '{pool.name}' (first at line {line})"
            )
        else:
            first[pool.name] = i
        draft = _PoolDraft(i, pool, ok=True)
        draft.capacity = to_series(
            pool.capacity_chips, ctx.calendar, (*path, "capacity_chips"), ctx.log
        )
        jurisdiction = _jurisdiction(ctx, pool, path)
        accelerator = ctx.catalog.accelerators.get(pool.accelerator)
        if accelerator is None:
            ctx.log.unknown(
                (*path, "accelerator"), "accelerator", pool.accelerator, ctx.catalog.accelerators
            )
        if jurisdiction is None or accelerator is None:
            draft.ok = False
        else:
            draft.jurisdiction = jurisdiction
            draft.vendor, draft.stack = accelerator.vendor, accelerator.stack
        drafts.append(draft)
    return drafts


def _jurisdiction(ctx: _Context, pool: PoolSpec, path: PathKey) -> str | None:
    """The jurisdiction of a pool's region (declared in the spec, else from the catalog)."""
    if pool.provider not in ctx.providers:
        ctx.log.unknown((*path, "provider"), "provider", pool.provider, ctx.providers)
        return None
    declared = ctx.spec.providers.get(pool.provider)
    if declared is not None and pool.region in declared.regions:
        return declared.regions[pool.region].jurisdiction
    region = ctx.catalog.region(pool.provider, pool.region)
    if region is not None:
        return region.jurisdiction
    known = [r for (p, r) in ctx.catalog.regions if p == pool.provider]
    known += list(declared.regions) if declared is not None else []
    ctx.log.add(
        (*path, "region"),
        f"unknown region '{pool.region}' of provider '{pool.provider}' "
        f"(declare it under providers.{pool.provider}.regions with its jurisdiction)",
        suggest(pool.region, known),
    )
    return None


def _priced_pools(
    ctx: _Context, drafts: list[_PoolDraft], contracts: list[_ContractDraft]
) -> list[Pool]:
    covering = {id(p): c for c in contracts for p in c.pools}
    pools: list[Pool] = []
    for draft in drafts:
        if not draft.ok:
            continue
        spec = draft.spec
        tier = Tier(spec.tier)
        priced = _pool_price(ctx, draft, covering.get(id(draft)))
        if priced is None:
            ctx.log.add(
                draft.path,
                f"no price for {spec.provider}/{spec.region}/{spec.accelerator}/{spec.tier} "
                "in the catalog: give price_usd_per_chip_hour",
            )
            continue
        price, price_source = priced
        if price_source.startswith("assumed"):
            ctx.notes.append(
                f"price of {spec.provider}/{spec.region}/{spec.accelerator}/{spec.tier} "
                f"is assumed (source: {price_source})"
            )
        preemption = 0.0
        if tier is Tier.SPOT:
            preemption = (
                spec.preemption_rate_per_hour
                if spec.preemption_rate_per_hour is not None
                else ctx.spec.defaults.spot_preemption_rate_per_hour
            )
        pools.append(
            Pool(
                name=spec.name,
                provider=spec.provider,
                region=spec.region,
                jurisdiction=draft.jurisdiction,
                accelerator=spec.accelerator,
                vendor=draft.vendor,
                stack=draft.stack,
                tier=tier,
                price_usd_per_chip_hour=float(price),
                price_source=price_source,
                capacity_chips=draft.capacity,
                preemption_rate_per_hour=float(preemption),
            )
        )
    return pools


def _pool_price(
    ctx: _Context, draft: _PoolDraft, contract: _ContractDraft | None
) -> tuple[float, str] | None:
    """Explicit price > catalog (on demand, spot) > covering contract > catalog committed."""
    spec = draft.spec
    if spec.price_usd_per_chip_hour is not None:
        return spec.price_usd_per_chip_hour, spec.price_source or "spec"
    tier = Tier(spec.tier)
    if tier is not Tier.COMMITTED:
        return ctx.catalog.price(spec.provider, spec.region, spec.accelerator, tier)
    if contract is not None:
        terms = contract.spec
        if terms.price_usd_per_chip_hour is not None:
            return terms.price_usd_per_chip_hour, contract.price_source
        if terms.discount is not None:
            on_demand = ctx.catalog.price(
                spec.provider, spec.region, spec.accelerator, Tier.ON_DEMAND
            )
            if on_demand is not None:
                return (
                    on_demand[0] * (1.0 - terms.discount),
                    f"contract {terms.name}: {terms.discount:.0%} off on-demand "
                    f"(source: {on_demand[1]})",
                )
        if contract.price is not None:
            return contract.price, contract.price_source
    return ctx.catalog.price(spec.provider, spec.region, spec.accelerator, Tier.COMMITTED)


# --- contracts ------------------------------------------------------------------------


def _contracts(ctx: _Context, drafts: list[_PoolDraft]) -> list[_ContractDraft]:
    by_name: dict[str, _PoolDraft] = {}
    for draft in drafts:
        by_name.setdefault(draft.spec.name, draft)
    covered: dict[str, str] = {}  # pool name -> contract name
    names: set[str] = set()
    out: list[_ContractDraft] = []
    for i, spec in enumerate(ctx.spec.contracts):
        path: PathKey = ("contracts", i)
        if spec.name in names:
            ctx.log.add((*path, "name"), f"duplicate contract name '{spec.name}'")
        names.add(spec.name)
        ok = True
        if spec.provider not in ctx.providers:
            ctx.log.unknown((*path, "provider"), "provider", spec.provider, ctx.providers)
            ok = False
        if not spec.pools:
            ctx.log.add((*path, "pools"), "a contract covers at least one pool")
            ok = False
        pools: list[_PoolDraft] = []
        for j, pool_name in enumerate(spec.pools):
            pool = by_name.get(pool_name)
            where = (*path, "pools", j)
            if pool is None:
                ctx.log.unknown(where, "pool", pool_name, by_name)
                ok = False
                continue
            if pool.spec.provider != spec.provider:
                ctx.log.add(
                    where,
                    f"pool '{pool_name}' is on provider '{pool.spec.provider}', "
                    f"not on the contract's provider '{spec.provider}'",
                )
                ok = False
            if pool.spec.tier != Tier.COMMITTED.value:
                ctx.log.add(
                    where,
                    f"pool '{pool_name}' is of tier {pool.spec.tier}: "
                    "a contract covers committed pools only",
                )
                ok = False
            if pool_name in covered:
                ctx.log.add(
                    where,
                    f"pool '{pool_name}' is already covered by contract '{covered[pool_name]}' "
                    "(a pool may be covered by one contract only)",
                )
                ok = False
                continue
            covered[pool_name] = spec.name
            pools.append(pool)
        terms = _ContractDraft(i, spec, pools)
        _contract_price(ctx, terms)
        contract = _contract_terms(ctx, terms)
        if ok and terms.price is not None:
            terms.contract = contract
        out.append(terms)
    return out


def _contract_price(ctx: _Context, draft: _ContractDraft) -> None:
    """Explicit price > discount off the mean on-demand price > mean of its pools' prices."""
    spec = draft.spec
    label = f"contract {spec.name}"
    if spec.price_usd_per_chip_hour is not None:
        draft.price = spec.price_usd_per_chip_hour
        draft.price_source = f"{label} ({spec.source})" if spec.source else label
        return
    priced = [p for p in draft.pools if p.ok]
    if spec.discount is not None:
        on_demand = [
            ctx.catalog.price(p.spec.provider, p.spec.region, p.spec.accelerator, Tier.ON_DEMAND)
            for p in priced
        ]
        known = [found for found in on_demand if found is not None]
        if known:
            draft.price = fmean(price for price, _ in known) * (1.0 - spec.discount)
            draft.price_source = (
                f"{label}: {spec.discount:.0%} off the mean on-demand price "
                f"(source: {', '.join(sorted({s for _, s in known}))})"
            )
        elif priced:
            ctx.log.add(
                ("contracts", draft.index, "discount"),
                f"no on-demand price in the catalog for the pools of contract '{spec.name}' "
                "to apply the discount to: give price_usd_per_chip_hour",
            )
        return
    explicit = [p.spec.price_usd_per_chip_hour for p in priced]
    given = [price for price in explicit if price is not None]
    if given:
        draft.price = fmean(given)
        draft.price_source = f"{label}: mean of its pools' prices"
        return
    committed = [
        ctx.catalog.price(p.spec.provider, p.spec.region, p.spec.accelerator, Tier.COMMITTED)
        for p in priced
    ]
    known = [found for found in committed if found is not None]
    if known:
        draft.price = fmean(price for price, _ in known)
        draft.price_source = ", ".join(sorted({s for _, s in known}))
    elif priced:
        ctx.log.add(
            ("contracts", draft.index),
            f"no price for contract '{spec.name}': give price_usd_per_chip_hour, a discount "
            "or prices on its pools",
        )


def _contract_terms(ctx: _Context, draft: _ContractDraft) -> Contract | None:
    """The term, the commitment and the decision of a contract (None on errors)."""
    spec, path = draft.spec, ("contracts", draft.index)
    term = ctx.calendar.term(spec.start, spec.end, path, ctx.log, "contract")
    given = [
        name
        for name in ("committed_chips", "committed_spend_usd", "decide")
        if getattr(spec, name) is not None
    ]
    if len(given) != 1:
        found = " and ".join(given) if given else "none"
        ctx.log.add(
            path,
            "a contract needs exactly one of committed_chips, committed_spend_usd or decide "
            f"(got {found})",
        )
        return None
    if term is None:
        return None
    first, last = term

    def within_term(values: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(v if first <= t <= last else 0.0 for t, v in enumerate(values))

    chips: tuple[float, ...] = ()
    spend: tuple[float, ...] = ()
    tiers: tuple[CommitTier, ...] = ()
    max_chips = 0.0
    if spec.committed_chips is not None:
        chips = within_term(
            to_series(spec.committed_chips, ctx.calendar, (*path, "committed_chips"), ctx.log)
        )
    elif spec.committed_spend_usd is not None:
        spend = within_term(
            to_series(
                spec.committed_spend_usd, ctx.calendar, (*path, "committed_spend_usd"), ctx.log
            )
        )
    elif spec.decide is not None:
        max_chips = spec.decide.max_chips
        for k, tier in enumerate(spec.decide.tiers):
            if tier.min_chips > max_chips:
                ctx.log.add(
                    (*path, "decide", "tiers", k, "min_chips"),
                    f"a tier starts at {tier.min_chips:g} chips, above max_chips {max_chips:g}",
                )
        ordered = sorted(spec.decide.tiers, key=lambda t: t.min_chips)
        tiers = tuple(CommitTier(t.min_chips, t.discount) for t in ordered) or (
            CommitTier(0.0, 0.0),
        )
    return Contract(
        name=spec.name,
        provider=spec.provider,
        pools=tuple(spec.pools),
        start_period=first,
        end_period=last,
        take_or_pay=spec.take_or_pay,
        price_usd_per_chip_hour=float(draft.price or 0.0),
        committed_chips=chips,
        committed_spend_usd=spend,
        decide=spec.decide is not None,
        max_chips=max_chips,
        tiers=tiers,
        total_value_usd=spec.total_value_usd,
    )


# --- policies -------------------------------------------------------------------------


def _policies(ctx: _Context, pools: Sequence[Pool]) -> Policies:
    spec = ctx.spec.policies
    log = ctx.log
    caps: list[Cap] = []
    for i, cap in enumerate(spec.caps):
        kind = DomainKind(cap.kind)
        domains = {p.domain(kind) for p in pools}
        if cap.name != "*" and cap.name not in domains:
            example = " (as provider/region)" if kind is DomainKind.REGION else ""
            log.add(
                ("policies", "caps", i, "name"),
                f"cap on {kind} '{cap.name}': no pool is in that {kind}{example}",
                suggest(cap.name, domains),
            )
            continue
        caps.append(Cap(kind=kind, name=cap.name, max_share=cap.max_share))
    survivability = tuple(
        SurvivabilityRule(
            kind=DomainKind(rule.kind), alpha={str(k): v for k, v in rule.alpha.items()}
        )
        for rule in spec.survivability
    )
    known_providers = ctx.providers | {p.provider for p in pools}
    exclusivity: dict[str, tuple[str, ...]] = {}
    for tenant_class, providers in spec.exclusivity.items():
        for j, provider in enumerate(providers):
            if provider not in known_providers:
                log.unknown(
                    ("policies", "exclusivity", tenant_class, j),
                    "provider",
                    provider,
                    known_providers,
                )
        exclusivity[tenant_class] = tuple(providers)
    known_regions = {f"{p.provider}/{p.region}" for p in pools}
    known_regions |= {f"{p}/{r}" for (p, r) in ctx.catalog.regions}
    known_regions |= {
        f"{p}/{r}" for p, declared in ctx.spec.providers.items() for r in declared.regions
    }
    residency: dict[str, tuple[str, ...]] = {}
    for jurisdiction, regions in spec.residency.items():
        for j, region in enumerate(regions):
            if region not in known_regions:
                log.add(
                    ("policies", "residency", jurisdiction, j),
                    f"unknown region '{region}' (expected provider/region, e.g. azure/eastus)",
                    suggest(region, known_regions),
                )
        residency[jurisdiction] = tuple(regions)
    budget = None
    if spec.budget is not None:
        budget = Budget(total_usd=spec.budget.total_usd, per_period_usd=spec.budget.per_period_usd)
    return Policies(
        caps=tuple(caps),
        survivability=survivability,
        exclusivity=exclusivity,
        residency=residency,
        budget=budget,
    )
