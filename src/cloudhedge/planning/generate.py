"""Synthetic fleets for benchmarks and tests: :func:`generate_fleet`.

A generated fleet looks like a large AI lab's: five providers (aws, azure, gcp, oci,
coreweave) with US and EU regions taken from the built-in catalog; pools of catalog
accelerators under the committed, on-demand and spot tiers, priced inside the
catalog's range for each accelerator; one take-or-pay contract per provider and
accelerator covering the committed pools (60-80% of their capacity); a workload mix
of about 20% training runs (gangs that fit the pools, windows of several periods),
50% batch jobs, 25% inference services (demand per jurisdiction with ramps, each
compatible with a subset of accelerators by software stack) and 5% agentic services;
and the policies of a cautious lab: 40% cap per provider, 75% cap on nvidia,
critical services keep 70% after losing any provider, a partner tenant class only
on azure and oci, and EU traffic kept in EU regions.

Demand is sized against capacity (about 60% of the chips are needed), so a plan
serves everything while the caps and survivability bind on cost. Everything is
drawn from ``numpy.random.default_rng(seed)``: the same arguments give the same
fleet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from cloudhedge.catalog import Catalog, load_builtin
from cloudhedge.core.models import (
    HOURS_PER_MONTH,
    BatchJob,
    Cap,
    Contract,
    Criticality,
    DomainKind,
    Fleet,
    Horizon,
    InferenceService,
    Policies,
    Pool,
    SurvivabilityRule,
    Tier,
    TrainingRun,
)
from cloudhedge.planning.index import FloatArray

PROVIDERS = ("aws", "azure", "gcp", "oci", "coreweave")
MENU: dict[str, tuple[str, ...]] = {
    "aws": ("h100", "h200", "b200", "a100", "trn2", "trn1", "inf2"),
    "azure": ("h100", "h200", "a100", "mi300x"),
    "gcp": ("h100", "a100", "tpu-v5e", "tpu-v5p", "tpu-v6e"),
    "oci": ("h100", "h200", "b200", "gb200", "a100", "mi300x"),
    "coreweave": ("h100", "h200", "b200", "gb200"),
}
"""Accelerators each provider offers (public instance families)."""
POPULARITY = {"h100": 3.0, "h200": 2.0, "b200": 2.0, "gb200": 1.0, "a100": 1.0,
              "mi300x": 1.5, "trn2": 1.5, "trn1": 0.5, "inf2": 1.0, "tpu-v5e": 1.0,
              "tpu-v5p": 1.0, "tpu-v6e": 1.5}
SMALL_CHIPS = ("tpu-v5e", "inf2", "trn1")  # sold in larger counts
NO_SPOT = ("oci",)  # providers without a spot market

CUDA = ("a100", "h100", "h200", "b200", "gb200")
INFERENCE_STACKS: tuple[tuple[tuple[str, ...], float], ...] = (
    (CUDA, 0.45),
    ((*CUDA, "mi300x"), 0.25),
    ((*CUDA, "trn2", "inf2"), 0.10),
    ((*CUDA, "tpu-v5e", "tpu-v5p", "tpu-v6e"), 0.10),
    ((*CUDA, "mi300x", "trn2", "inf2", "tpu-v5e", "tpu-v5p", "tpu-v6e"), 0.10),
)
TRAINING_STACKS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("h100", "h200", "b200"), 0.30),
    (("b200", "gb200"), 0.15),
    (("h100", "h200", "mi300x"), 0.15),
    (("trn2",), 0.10),
    (("tpu-v5p", "tpu-v6e"), 0.10),
    (("a100", "h100"), 0.10),
    (("h100", "h200", "b200", "mi300x", "trn2", "tpu-v6e"), 0.10),
)
BATCH_STACKS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("a100", "h100", "h200", "b200"), 0.25),
    (("tpu-v5e", "tpu-v5p", "tpu-v6e"), 0.20),
    (("trn1", "trn2", "inf2"), 0.15),
    (("mi300x", "h100", "h200"), 0.15),
    (("a100", "tpu-v5e", "trn1", "inf2", "mi300x"), 0.15),
    (tuple(POPULARITY), 0.10),
)
OTHER_BATCH_STACKS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("tpu-v5e", "tpu-v5p", "tpu-v6e"), 0.35),
    (("trn1", "trn2", "inf2"), 0.35),
    (("mi300x",), 0.15),
    (("mi300x", "tpu-v6e", "trn2"), 0.15),
)
MODEL_PARAMS_B = (8.0, 70.0, 70.0, 180.0, 405.0)

# sizing: share of all capacity each workload kind asks for on average, the share
# of capacity that may be reserved at all, and the share of what is left in its
# eligible pools that one inference unit or batch job may take
TRAINING_LOAD = 0.20
INFERENCE_LOAD = 0.25
BATCH_LOAD = 0.15
USABLE = 0.8
NVIDIA_CAPACITY_TARGET = 0.6  # beyond this share of capacity, new pools are not nvidia
NVIDIA_USE_TARGET = 0.65  # beyond this share of reserved chips, batch goes elsewhere
INFERENCE_MAX_SHARE = 0.3
BATCH_MAX_SHARE = 0.3

PARTNER = "partner"
PARTNER_PROVIDERS = ("azure", "oci")


@dataclass(frozen=True)
class _Market:
    """Per-accelerator price ranges and spot discounts read from the catalog."""

    od_low: dict[str, float]
    od_mode: dict[str, float]
    od_high: dict[str, float]
    spot_ratio: dict[str, float]


def _market(cat: Catalog) -> _Market:
    od: dict[str, list[float]] = {}
    ratio: dict[str, list[float]] = {}
    for o in cat.offers:
        if o.on_demand_usd_per_chip_hour:
            od.setdefault(o.accelerator, []).append(o.on_demand_usd_per_chip_hour)
            if o.spot_usd_per_chip_hour:
                ratio.setdefault(o.accelerator, []).append(
                    o.spot_usd_per_chip_hour / o.on_demand_usd_per_chip_hour)
    lo, mode, hi, sr = {}, {}, {}, {}
    for acc in cat.accelerators:
        prices = np.array(od.get(acc, [4.0]))
        med = float(np.median(prices))
        lo[acc] = min(float(prices.min()), 0.9 * med)
        mode[acc] = med
        hi[acc] = max(float(prices.max()), 1.1 * med)
        sr[acc] = float(np.median(ratio[acc])) if acc in ratio else 0.4
    return _Market(lo, mode, hi, sr)


def _regions(cat: Catalog) -> dict[tuple[str, str], list[str]]:
    """(provider, jurisdiction) -> up to three catalog regions, us and eu only."""
    out: dict[tuple[str, str], list[str]] = {}
    for (prov, name), region in sorted(cat.regions.items()):
        if prov in PROVIDERS and region.jurisdiction in ("us", "eu"):
            bucket = out.setdefault((prov, region.jurisdiction), [])
            if len(bucket) < 3:
                bucket.append(name)
    for prov in PROVIDERS:  # a provider missing from the catalog still gets regions
        for jur in ("us", "eu"):
            out.setdefault((prov, jur), [f"{jur}-{prov}-1"])
    return out


def _pick(rng: np.random.Generator, options: tuple[tuple[tuple[str, ...], float], ...],
          allowed: set[str]) -> tuple[str, ...]:
    weights = np.array([w for _, w in options])
    i = int(rng.choice(len(options), p=weights / weights.sum()))
    accs = tuple(a for a in options[i][0] if a in allowed)
    return accs or tuple(a for a in CUDA if a in allowed)


def _round8(v: float) -> float:
    return float(max(8, int(v) // 8 * 8))


class _Generator:
    def __init__(self, n_pools: int, n_periods: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.cat = load_builtin()
        self.market = _market(self.cat)
        self.regions = _regions(self.cat)
        self.T = n_periods
        self.H = HOURS_PER_MONTH
        self.n_pools = n_pools
        self.speed = {a: f.value for a, f in self.cat.relative_speed.items()}
        self.tput = {a: f.value for a, f in self.cat.throughput.items()}
        self.menu = {p: tuple(a for a in MENU[p] if a in self.cat.accelerators)
                     for p in PROVIDERS}

    # ------------------------------------------------------------------ pools
    def pools(self) -> list[Pool]:
        rng, T = self.rng, self.T
        out: list[Pool] = []
        nprov = len(PROVIDERS)
        blocks = -(-self.n_pools // nprov)  # balanced providers: a shuffled block of 5
        order = np.concatenate([rng.permutation(nprov) for _ in range(blocks)])
        chips = nvidia = 0.0
        for i in range(self.n_pools):
            if i < 2 * len(PROVIDERS):  # backbone: h100 in every provider, us and eu
                prov = PROVIDERS[i % len(PROVIDERS)]
                jur = "us" if i < len(PROVIDERS) else "eu"
                acc = "h100" if "h100" in self.menu[prov] else self.menu[prov][0]
                tier = Tier.COMMITTED if jur == "us" else Tier.ON_DEMAND
                base = float(rng.choice([512, 768, 1024]))
            else:
                prov = PROVIDERS[int(order[i])]
                jur = "us" if rng.random() < 0.6 else "eu"
                menu = self.menu[prov]
                other = tuple(a for a in menu if self.cat.accelerators[a].vendor != "nvidia")
                if other and nvidia > NVIDIA_CAPACITY_TARGET * max(chips, 1.0):
                    menu = other  # keep enough non-nvidia capacity for the vendor cap
                w = np.array([POPULARITY.get(a, 1.0) for a in menu])
                acc = menu[int(rng.choice(len(menu), p=w / w.sum()))]
                tier = Tier(str(rng.choice(["committed", "on_demand", "spot"],
                                           p=[0.3, 0.45, 0.25])))
                if tier is Tier.SPOT and prov in NO_SPOT:
                    tier = Tier.ON_DEMAND
                base = float(rng.choice([128, 256, 512, 1024, 2048],
                                        p=[0.15, 0.25, 0.3, 0.2, 0.1]))
            if acc in SMALL_CHIPS:
                base *= 2
            region = str(rng.choice(self.regions[(prov, jur)]))
            growth = float(rng.uniform(0.0, 0.04))
            cap = np.array([_round8(base * (1 + growth) ** t) for t in range(T)])
            if i >= 2 * len(PROVIDERS) and rng.random() < 0.1 and T > 2:
                cap[: int(rng.integers(1, max(2, T // 2)))] = 0.0  # capacity arrives later
            od = float(rng.triangular(self.market.od_low[acc], self.market.od_mode[acc],
                                      self.market.od_high[acc]))
            price, rate = od, 0.0
            if tier is Tier.SPOT:
                price = od * self.market.spot_ratio[acc] * float(rng.uniform(0.85, 1.15))
                rate = float(rng.uniform(0.01, 0.08))
            a = self.cat.accelerators[acc]
            chips += float(cap.mean())
            nvidia += float(cap.mean()) if a.vendor == "nvidia" else 0.0
            out.append(Pool(
                name=f"{prov}-{region}-{acc}-{tier.value.replace('_', '')}-{i}",
                provider=prov, region=region, jurisdiction=jur, accelerator=acc,
                vendor=a.vendor, stack=a.stack, tier=tier,
                price_usd_per_chip_hour=round(price, 4),
                price_source=f"synthetic: drawn in the catalog's {acc} range",
                capacity_chips=tuple(float(c) for c in cap),
                preemption_rate_per_hour=round(rate, 4)))
        return out

    def contracts(self, pools: list[Pool]) -> list[Contract]:
        groups: dict[tuple[str, str], list[Pool]] = {}
        for p in pools:
            if p.tier is Tier.COMMITTED:
                groups.setdefault((p.provider, p.accelerator), []).append(p)
        out = []
        for (prov, acc), members in groups.items():
            cap = np.sum([p.capacity_chips for p in members], axis=0)
            frac = float(self.rng.uniform(0.6, 0.8))
            committed = tuple(float(math.floor(c * frac)) for c in cap)
            list_price = float(np.mean([p.price_usd_per_chip_hour for p in members]))
            price = round(list_price * float(self.rng.uniform(0.55, 0.7)), 4)
            out.append(Contract(
                name=f"{prov}-{acc}-commit", provider=prov,
                pools=tuple(p.name for p in members), start_period=0,
                end_period=self.T - 1, take_or_pay=True, price_usd_per_chip_hour=price,
                committed_chips=committed,
                total_value_usd=round(sum(committed) * self.H * price, 2)))
        return out

    # -------------------------------------------------------------- workloads
    # Workloads are sized against ``free``: chips per pool and period not yet reserved
    # by an earlier workload (initially USABLE of the capacity). Each workload takes
    # at most a share of what its eligible pools have left, so every one fits
    # somewhere and the fleet as a whole needs about 60% of the chips.

    def reserve_from(self, pools: list[Pool]) -> None:
        self.cap: FloatArray = np.array([p.capacity_chips for p in pools], dtype=np.float64)
        self.free: FloatArray = self.cap * USABLE
        self.acc = np.array([p.accelerator for p in pools])
        self.spot = np.array([p.tier is Tier.SPOT for p in pools], dtype=bool)
        self.jur = np.array([p.jurisdiction for p in pools])
        self.prov = np.array([p.provider for p in pools])
        self.eff: FloatArray = np.array([1.0 / (1.0 + p.preemption_rate_per_hour * 0.5)
                                         for p in pools], dtype=np.float64)
        self.total = float(self.cap.sum(axis=0).mean())

    def training(self, n: int) -> list[TrainingRun]:
        rng, T, H = self.rng, self.T, self.H
        present = set(self.acc[~self.spot].tolist())
        target = TRAINING_LOAD * self.total * T / max(n * 2.3, 1.0)
        out = []
        for k in range(n):
            accs = _pick(rng, TRAINING_STACKS, present)
            hosts = np.flatnonzero(np.isin(self.acc, accs) & ~self.spot)
            dur = int(min(T, rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.2, 0.15])))
            length = min(T, dur + int(rng.integers(0, 4)))
            ws = int(rng.integers(0, T - length + 1))
            we = ws + length - 1
            # reserve the gang where the most chips are free for the whole run
            best, best_p, best_s = 0.0, -1, ws
            for s in range(ws, we - dur + 2):
                room = self.free[hosts, s:s + dur].min(axis=1) if hosts.size else np.zeros(1)
                i = int(np.argmax(room))
                if room[i] > best:
                    best, best_p, best_s = float(room[i]), int(hosts[i]), s
            gang = _round8(min(target * float(rng.uniform(0.5, 1.5)), 0.8 * best))
            if best_p >= 0 and best >= gang:
                self.free[best_p, best_s:best_s + dur] -= gang
                speed = self.speed[str(self.acc[best_p])]
            else:
                speed = float(np.median([self.speed[a] for a in accs]))
            chip_hours = gang * H * dur * speed * float(rng.uniform(0.85, 1.0))
            out.append(TrainingRun(
                name=f"train-{k}", gang_chips=int(gang), chip_hours=round(chip_hours, 1),
                accelerators=accs, window_start=ws, window_end=we,
                checkpoint_interval_hours=1.0, priority=int(rng.integers(1, 4)),
                spot_allowed=False))
        return out

    def _spread(self, mask: npt.NDArray[np.bool_], chips: FloatArray,
                periods: slice) -> FloatArray:
        """Reserve ``chips`` per period over the pools of ``mask``, by free chips."""
        part = self.free[mask, periods]
        share = part / np.maximum(part.sum(axis=0), 1e-9)
        taken: FloatArray = share * chips[None, :]
        self.free[mask, periods] -= taken
        return taken

    def inference(self, n: int, n_agentic: int) -> list[InferenceService]:
        rng, T = self.rng, self.T
        present = set(self.acc.tolist())
        n_units = max(1, round((n + n_agentic) * 1.45))
        base = INFERENCE_LOAD * self.total / n_units
        out = []
        for k in range(n + n_agentic):
            agentic = k >= n
            accs = (tuple(a for a in CUDA if a in present) if agentic
                    else _pick(rng, INFERENCE_STACKS, present))
            params = 70.0 if agentic else float(rng.choice(MODEL_PARAMS_B))
            tput = {a: round(self.tput[a] * 70.0 / params * float(rng.uniform(0.9, 1.1)), 2)
                    for a in accs}
            u = rng.random()
            jurs = ["eu"] if u < 0.1 else (["us", "eu"] if u < 0.55 else ["us"])
            tenant = PARTNER if (not agentic and rng.random() < 0.15) else None
            crit_u = rng.random()
            if agentic:
                crit = Criticality.HIGH
            elif tenant is None and crit_u < 0.3:
                crit = Criticality.CRITICAL
            else:
                crit = Criticality.HIGH if crit_u < 0.6 else Criticality.STANDARD
            spot = crit is Criticality.STANDARD and rng.random() < 0.15
            tput_pool = np.array([tput.get(str(a), 0.0) for a in self.acc]) * self.eff
            demand: dict[str, tuple[float, ...]] = {}
            for jur in jurs:
                mask = (tput_pool > 0) & (self.jur == jur)
                if not spot:
                    mask &= ~self.spot
                if tenant is not None:
                    mask &= np.isin(self.prov, PARTNER_PROVIDERS)
                growth = float(rng.uniform(1.0, 4.0))
                ramp = growth ** (np.arange(T) / max(T - 1, 1)) / growth
                ramp *= rng.uniform(0.95, 1.05, size=T)
                if not agentic and rng.random() < 0.15 and T > 3:
                    ramp[: int(rng.integers(1, T // 2))] = 0.0  # launches later
                want = ramp * base * float(rng.lognormal(0.0, 0.6))
                room = self.free[mask].sum(axis=0) * INFERENCE_MAX_SHARE
                chips = np.minimum(want, room)
                taken = self._spread(mask, chips, slice(0, T))
                tokens = (taken * tput_pool[mask][:, None]).sum(axis=0)
                demand[jur] = tuple(round(float(v), 1) for v in tokens)
            name = f"agent-{k - n}" if agentic else f"svc-{k}"
            out.append(InferenceService(
                name=name, model=f"model-{params:g}b", demand_tokens_per_s=demand,
                throughput_tokens_per_s=tput, tenant_class=tenant, criticality=crit,
                spot_allowed=spot, source=f"agentic:{name}" if agentic else "inference"))
        return out

    def batch(self, n: int) -> list[BatchJob]:
        rng, T, H = self.rng, self.T, self.H
        present = set(self.acc.tolist())
        out = []
        nvidia = np.array([self.cat.accelerators[str(a)].vendor == "nvidia" for a in self.acc])
        for k in range(n):
            used = self.cap * USABLE - self.free
            heavy = used[nvidia].sum() > NVIDIA_USE_TARGET * max(float(used.sum()), 1.0)
            for attempt in range(4):  # a stack with free chips in the window
                stacks = BATCH_STACKS if attempt == 3 or not heavy else OTHER_BATCH_STACKS
                accs = _pick(rng, stacks, present)
                length = min(T, int(rng.integers(1, max(2, T // 2) + 1)))
                start = int(rng.integers(0, T - length + 1))
                spot = bool(rng.random() < 0.85)
                mask = np.isin(self.acc, accs)
                if not spot:
                    mask &= ~self.spot
                window = slice(start, start + length)
                room = self.free[mask, window].sum(axis=0) * BATCH_MAX_SHARE
                if room.sum() >= 1.0:
                    break
            want = BATCH_LOAD * self.total * T / max(n, 1) * float(rng.uniform(0.5, 1.5))
            chips = room * min(1.0, want / max(float(room.sum()), 1e-9))
            taken = self._spread(mask, chips, window)
            speed = np.array([self.speed[str(a)] for a in self.acc[mask]]) * self.eff[mask]
            ref_hours = float((taken * speed[:, None]).sum()) * H
            out.append(BatchJob(
                name=f"batch-{k}", chip_hours=round(max(ref_hours, 1.0), 1),
                accelerators=accs, window_start=start, window_end=start + length - 1,
                spot_allowed=spot, priority=int(rng.integers(1, 3))))
        return out


def _policies(pools: list[Pool]) -> Policies:
    eu = tuple(sorted({f"{p.provider}/{p.region}" for p in pools if p.jurisdiction == "eu"}))
    return Policies(
        caps=(Cap(DomainKind.PROVIDER, "*", 0.4), Cap(DomainKind.VENDOR, "nvidia", 0.75)),
        survivability=(SurvivabilityRule(DomainKind.PROVIDER, {"critical": 0.7}),),
        exclusivity={PARTNER: PARTNER_PROVIDERS},
        residency={"eu": eu} if eu else {},
    )


def workload_mix(n_workloads: int) -> tuple[int, int, int, int]:
    """(training, batch, inference, agentic) counts: about 20/50/25/5 percent."""
    n_train = round(0.20 * n_workloads)
    n_inf = round(0.25 * n_workloads)
    n_agent = round(0.05 * n_workloads)
    n_batch = max(0, n_workloads - n_train - n_inf - n_agent)
    return n_train, n_batch, n_inf, n_agent


def generate_fleet(n_workloads: int, n_pools: int, n_periods: int, seed: int = 0) -> Fleet:
    """A realistic synthetic fleet with ``n_workloads``, ``n_pools`` and ``n_periods``.

    At least 10 pools are needed for the backbone (an h100 pool per provider in the
    US and in the EU) that makes survivability of critical services possible.
    """
    if n_workloads < 1 or n_periods < 1 or n_pools < 2 * len(PROVIDERS):
        raise ValueError(f"need n_workloads >= 1, n_periods >= 1 and n_pools >= "
                         f"{2 * len(PROVIDERS)} (got {n_workloads}, {n_pools}, {n_periods})")
    g = _Generator(n_pools, n_periods, seed)
    pools = g.pools()
    contracts = g.contracts(pools)
    n_train, n_batch, n_inf, n_agent = workload_mix(n_workloads)
    g.reserve_from(pools)
    training = g.training(n_train)
    inference = g.inference(n_inf, n_agent)
    batch = g.batch(n_batch)
    used = {p.accelerator for p in pools}
    return Fleet(
        name=f"generated-{n_workloads}w-{n_pools}p-{n_periods}t-s{seed}",
        horizon=Horizon(date(2026, 1, 1), n_periods),
        accelerators={a: acc for a, acc in g.cat.accelerators.items() if a in used},
        pools=tuple(pools), contracts=tuple(contracts), policies=_policies(pools),
        training=tuple(training), batch=tuple(batch), inference=tuple(inference),
        relative_speed=dict(g.speed),
        notes=(f"synthetic fleet (seed {seed}): prices drawn inside the built-in "
               f"catalog's range per accelerator; capacities and demand are invented",),
    )


__all__ = ["PROVIDERS", "generate_fleet", "workload_mix"]
