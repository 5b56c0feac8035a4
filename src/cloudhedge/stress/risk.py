"""Availability models and Monte Carlo risk of a fixed plan.

    AvailabilityModel     outages of one failure domain: rate, lognormal length, share lost
    ProviderAvailability  a provider's own models (its regions, itself)
    SpotModel             spot capacity reclaimed at random, per pool and period
    RiskModel             all of the above, with documented defaults; from_mapping(dict)
    sample(...)           seeded Effects, chunk by chunk
    monte_carlo(...)      immediate() on every sample, aggregated into a RiskResult

Randomness is drawn in fixed blocks of :data:`SAMPLE_BLOCK` samples, block ``b`` from
``SeedSequence(seed, spawn_key=(b,))``: sample ``i`` is the same whatever the chunk
size, the number of worker processes or the total ``n``, so the same seed gives the
same numbers. Every sample of a block is drawn at once (no loop per sample); a chunk
is a run of whole blocks. The defaults and their sources are in docs/stress-model.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import Fleet, Tier
from cloudhedge.spec.source import suggest
from cloudhedge.stress.effects import Effects
from cloudhedge.stress.impact import SECONDS_PER_HOUR, immediate
from cloudhedge.stress.state import BoolArray, FloatArray, IntArray, PlanState

HOURS_PER_YEAR = 8760.0
SAMPLE_BLOCK = 256
"""Samples drawn from one seed stream; chunks are whole blocks."""
DEFAULT_CHUNK = SAMPLE_BLOCK  # measured fastest on the flagship: arrays stay in cache


@dataclass(frozen=True)
class AvailabilityModel:
    """Outages of one failure domain (a region, or a whole provider).

    Outages arrive as a Poisson process: ``outages_per_year`` (or, when set,
    ``outages_per_period`` in the plan's own periods). Each lasts a lognormal number
    of hours with median ``median_hours`` and log-standard-deviation ``spread`` and
    takes ``lost_fraction`` of the domain's chips while it lasts.
    """

    outages_per_year: float
    median_hours: float
    spread: float
    lost_fraction: float
    outages_per_period: float | None = None

    def rate_per_period(self, period_hours: float) -> float:
        if self.outages_per_period is not None:
            return self.outages_per_period
        return self.outages_per_year * period_hours / HOURS_PER_YEAR


@dataclass(frozen=True)
class ProviderAvailability:
    """One provider's models: ``region`` for each of its regions, ``provider`` for
    outages of the whole provider."""

    region: AvailabilityModel
    provider: AvailabilityModel


@dataclass(frozen=True)
class SpotModel:
    """Spot capacity reclaimed at random.

    A spot pool's chips are preempted at ``Pool.preemption_rate_per_hour`` (or
    ``preemption_rate_per_hour`` here when the pool states none) and each preempted
    chip stays unavailable for ``reacquire_hours``: on average a share
    ``m = rate x h / (1 + rate x h)`` of the pool is missing. Reclaims are correlated
    across a pool, so the share lost in a period is Beta-distributed with mean ``m``
    and concentration ``concentration`` (smaller: burstier).
    """

    preemption_rate_per_hour: float
    reacquire_hours: float
    concentration: float


DEFAULT_REGION = AvailabilityModel(outages_per_year=1.0, median_hours=4.0, spread=1.0,
                                   lost_fraction=1.0)
DEFAULT_PROVIDER = AvailabilityModel(outages_per_year=0.25, median_hours=3.0, spread=0.7,
                                     lost_fraction=0.5)
DEFAULT_SPOT = SpotModel(preemption_rate_per_hour=0.02, reacquire_hours=2.0,
                         concentration=4.0)


@dataclass(frozen=True)
class RiskModel:
    """Availability of every failure domain of a fleet (modelled assumptions).

    ``providers`` overrides the models of a named provider (its regions and itself);
    ``regions`` overrides one region, keyed ``"provider/region"``. Build it from the
    spec's mapping with :meth:`from_mapping`, where every override is partial and
    inherits the rest from the level above (region <- provider's region <- default).
    """

    region: AvailabilityModel = DEFAULT_REGION
    provider: AvailabilityModel = DEFAULT_PROVIDER
    spot: SpotModel = DEFAULT_SPOT
    providers: Mapping[str, ProviderAvailability] = field(default_factory=dict)
    regions: Mapping[str, AvailabilityModel] = field(default_factory=dict)

    def region_model(self, provider: str, region: str) -> AvailabilityModel:
        own = self.providers.get(provider)
        return self.regions.get(f"{provider}/{region}", own.region if own else self.region)

    def provider_model(self, provider: str) -> AvailabilityModel:
        own = self.providers.get(provider)
        return own.provider if own else self.provider

    @staticmethod
    def from_mapping(data: Mapping[str, Any], *, file: str = "<risk model>",
                     path: str = "availability") -> RiskModel:
        """Validate and build a model from plain data (e.g. the spec's YAML).

        Keys: ``region``, ``provider`` (AvailabilityModel fields), ``spot`` (SpotModel
        fields), ``providers: {name: {region: {...}, provider: {...}}}`` and
        ``regions: {"provider/region": {...}}``. Raises :class:`SpecError` listing
        every unknown key and invalid value, located by dotted ``path``.
        """
        return _Parser(file, path).model(data)


# ---------------------------------------------------------------- mapping parser
_AVAILABILITY_KEYS = {f.name for f in fields(AvailabilityModel)}
_SPOT_KEYS = {f.name for f in fields(SpotModel)}
_LIMITS: dict[str, tuple[float, float, bool]] = {  # key -> (low, high, low excluded)
    "outages_per_year": (0.0, math.inf, False),
    "outages_per_period": (0.0, math.inf, False),
    "median_hours": (0.0, math.inf, True),
    "spread": (0.0, math.inf, False),
    "lost_fraction": (0.0, 1.0, False),
    "preemption_rate_per_hour": (0.0, math.inf, False),
    "reacquire_hours": (0.0, math.inf, False),
    "concentration": (0.0, math.inf, True),
}


class _Parser:
    def __init__(self, file: str, path: str) -> None:
        self.file, self.path = file, path
        self.issues: list[SpecIssue] = []

    def issue(self, path: str, message: str) -> None:
        self.issues.append(SpecIssue(self.file, 0, 0, path, message))

    def model(self, data: Mapping[str, Any]) -> RiskModel:
        top = self.mapping(data, self.path, {"region", "provider", "spot", "providers",
                                             "regions"})
        region = self.availability(top.get("region"), f"{self.path}.region", DEFAULT_REGION)
        provider = self.availability(top.get("provider"), f"{self.path}.provider",
                                     DEFAULT_PROVIDER)
        spot = self.spot(top.get("spot"), f"{self.path}.spot")
        providers: dict[str, ProviderAvailability] = {}
        where = f"{self.path}.providers"
        for name, body in self.mapping(top.get("providers"), where, None).items():
            own = self.mapping(body, f"{where}.{name}", {"region", "provider"})
            providers[str(name)] = ProviderAvailability(
                region=self.availability(own.get("region"), f"{where}.{name}.region", region),
                provider=self.availability(own.get("provider"), f"{where}.{name}.provider",
                                           provider))
        regions: dict[str, AvailabilityModel] = {}
        where = f"{self.path}.regions"
        for key, body in self.mapping(top.get("regions"), where, None).items():
            prov, sep, reg = str(key).partition("/")
            if not sep or not prov or not reg:
                self.issue(f"{where}.{key}", "expected a region as 'provider/region'")
                continue
            base = providers[prov].region if prov in providers else region
            regions[str(key)] = self.availability(body, f"{where}.{key}", base)
        if self.issues:
            raise SpecError(self.issues)
        return RiskModel(region=region, provider=provider, spot=spot, providers=providers,
                         regions=regions)

    def mapping(self, data: Any, path: str, allowed: set[str] | None) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.issue(path, "expected a mapping")
            return {}
        if allowed is not None:
            for key in data:
                if key not in allowed:
                    self.issue(f"{path}.{key}", "unknown key; expected one of "
                                                + ", ".join(sorted(allowed)))
        return {str(k): v for k, v in data.items() if allowed is None or k in allowed}

    def numbers(self, data: Any, path: str, allowed: set[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in self.mapping(data, path, allowed).items():
            if value is None and key == "outages_per_period":
                continue
            low, high, strict = _LIMITS[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value) and (value > low if strict else value >= low) \
                and value <= high
            if not ok:
                bound = f"{'>' if strict else '>='} {low:g}" + \
                    (f" and <= {high:g}" if math.isfinite(high) else "")
                self.issue(f"{path}.{key}", f"expected a number {bound}, got {value!r}")
                continue
            out[key] = float(value)
        return out

    def availability(self, data: Any, path: str,
                     base: AvailabilityModel) -> AvailabilityModel:
        values: dict[str, Any] = dict(self.numbers(data, path, _AVAILABILITY_KEYS))
        if "outages_per_year" in values and "outages_per_period" in values:
            self.issue(path, "give outages_per_year or outages_per_period, not both")
        elif "outages_per_year" in values:
            values["outages_per_period"] = None  # a yearly rate replaces an inherited one
        return replace(base, **values)

    def spot(self, data: Any, path: str) -> SpotModel:
        return replace(DEFAULT_SPOT, **self.numbers(data, path, _SPOT_KEYS))


# ---------------------------------------------------------------- sampling
@dataclass(frozen=True)
class _Domains:
    """Failure domains of a fleet, with the model of each, as arrays."""

    of_pool: IntArray  # (P,) domain of each pool
    rate: FloatArray  # (D,) outages per period
    median_hours: FloatArray
    spread: FloatArray
    lost_fraction: FloatArray


class Sampler:
    """Draws Effects for a fleet under a model; cheap to pickle to worker processes."""

    def __init__(self, fleet: Fleet, model: RiskModel) -> None:
        check_names(fleet, model)
        self.P, self.T = len(fleet.pools), fleet.horizon.periods
        self.H = fleet.horizon.period_hours
        regions = sorted({(p.provider, p.region) for p in fleet.pools})
        providers = sorted({p.provider for p in fleet.pools})
        self.regions = self._domains(
            [model.region_model(*r) for r in regions],
            [regions.index((p.provider, p.region)) for p in fleet.pools])
        self.providers = self._domains(
            [model.provider_model(name) for name in providers],
            [providers.index(p.provider) for p in fleet.pools])
        rate = np.array([(p.preemption_rate_per_hour or model.spot.preemption_rate_per_hour)
                         if p.tier is Tier.SPOT else 0.0 for p in fleet.pools])
        held = rate * model.spot.reacquire_hours
        mean = held / (1.0 + held)
        self.spot_pools = np.flatnonzero(mean > 0)
        self.spot_a = mean[self.spot_pools] * model.spot.concentration
        self.spot_b = (1.0 - mean[self.spot_pools]) * model.spot.concentration

    def _domains(self, models: list[AvailabilityModel], of_pool: list[int]) -> _Domains:
        return _Domains(
            of_pool=np.array(of_pool, dtype=np.int64),
            rate=np.array([m.rate_per_period(self.H) for m in models]),
            median_hours=np.array([m.median_hours for m in models]),
            spread=np.array([m.spread for m in models]),
            lost_fraction=np.array([m.lost_fraction for m in models]))

    def draw(self, seed: int, first: int, stop: int) -> Effects:
        """Effects of samples ``[first, stop)``; ``first`` is a multiple of the block."""
        parts = []
        for b in range(first // SAMPLE_BLOCK, -(-stop // SAMPLE_BLOCK)):
            lo = b * SAMPLE_BLOCK
            lost, down = self._block(seed, b)
            keep = slice(max(first - lo, 0), min(stop - lo, SAMPLE_BLOCK))
            parts.append((lost[keep], down[keep]))
        lost = np.concatenate([p[0] for p in parts])
        down = np.concatenate([p[1] for p in parts])
        return Effects(lost, down, np.ones_like(lost), self.H)

    def _block(self, seed: int, block: int) -> tuple[FloatArray, FloatArray]:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
        B, T, H = SAMPLE_BLOCK, self.T, self.H
        reg_lost, reg_down = self._outages(rng, self.regions)
        prov_lost, prov_down = self._outages(rng, self.providers)
        spot = np.zeros((B, self.P, T))
        if self.spot_pools.size:
            spot[:, self.spot_pools, :] = rng.beta(
                np.broadcast_to(self.spot_a[None, :, None], (B, self.spot_pools.size, T)),
                np.broadcast_to(self.spot_b[None, :, None], (B, self.spot_pools.size, T)))
        # merge the three causes per pool: keep the period-average capacity lost and the
        # longest down time (a whole-period spot loss counts as H hours); a cell with a
        # single cause keeps that cause's numbers exactly
        causes = [(reg_lost[:, self.regions.of_pool], reg_down[:, self.regions.of_pool]),
                  (prov_lost[:, self.providers.of_pool], prov_down[:, self.providers.of_pool]),
                  (spot, np.where(spot > 0, H, 0.0))]
        lost, down = np.zeros((B, self.P, T)), np.zeros((B, self.P, T))
        for lost_k, down_k in causes:
            both = (down > 0) & (down_k > 0)
            missing = 1.0 - (1.0 - lost * down / H) * (1.0 - lost_k * down_k / H)
            longest = np.maximum(down, down_k)
            merged = np.minimum(missing * H / np.where(both, longest, 1.0), 1.0)
            lost = np.where(both, merged, np.where(down_k > 0, lost_k, lost))
            down = longest
        return lost, down

    def _outages(self, rng: np.random.Generator,
                 dom: _Domains) -> tuple[FloatArray, FloatArray]:
        """(B, D, T) share lost and hours down per domain and period."""
        shape = (SAMPLE_BLOCK, dom.rate.size, self.T)
        count = rng.poisson(np.broadcast_to(dom.rate[None, :, None], shape))
        cell = np.repeat(np.arange(count.size), count.ravel())
        d_of_cell = (cell // self.T) % dom.rate.size
        hours = dom.median_hours[d_of_cell] * np.exp(
            dom.spread[d_of_cell] * rng.standard_normal(cell.size))
        down = np.minimum(np.bincount(cell, weights=hours, minlength=count.size)
                          .reshape(shape), self.H)
        lost = np.where(down > 0, dom.lost_fraction[None, :, None], 0.0)
        return lost, down


def check_names(fleet: Fleet, model: RiskModel) -> None:
    providers = {p.provider for p in fleet.pools}
    regions = {f"{p.provider}/{p.region}" for p in fleet.pools}
    issues = [SpecIssue("<risk model>", 0, 0, f"availability.providers.{name}",
                        "no pool of the fleet is on this provider",
                        suggest(name, providers))
              for name in model.providers if name not in providers]
    issues += [SpecIssue("<risk model>", 0, 0, f"availability.regions.{key}",
                         "no pool of the fleet is in this region", suggest(key, regions))
               for key in model.regions if key not in regions]
    if issues:
        raise SpecError(issues)


def _chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    """Sample ranges of whole blocks (the last one cut at n)."""
    step = max(1, -(-chunk // SAMPLE_BLOCK)) * SAMPLE_BLOCK
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def sample(fleet: Fleet, model: RiskModel, n: int, seed: int,
           chunk: int = DEFAULT_CHUNK) -> Iterator[Effects]:
    """``n`` seeded samples of the horizon as Effects, ``chunk`` samples at a time
    (rounded up to whole blocks of :data:`SAMPLE_BLOCK`)."""
    sampler = Sampler(fleet, model)
    for lo, hi in _chunks(n, chunk):
        yield sampler.draw(seed, lo, hi)


# ---------------------------------------------------------------- Monte Carlo
@dataclass(frozen=True)
class ShortfallStats:
    """Distribution over samples of one service's (or all services') shortfall: the
    share of demand tokens not served over the horizon."""

    name: str
    demand_tokens: float  # expected demand over the horizon
    expected_unserved_tokens: float
    mean: float
    p50: float
    p95: float
    p99: float
    cvar95: float  # mean of the worst 5% of samples
    worst_period_share_p5: float  # 5th percentile of the lowest per-period served share
    baseline: float  # the plan's own shortfall with nothing failing


@dataclass(frozen=True)
class CostStats:
    """Distribution over samples of the horizon cost (USD)."""

    plan_usd: float
    expected_usd: float
    p50_usd: float
    p95_usd: float
    p99_usd: float
    expected_extra_usd: float
    p95_extra_usd: float
    cvar95_extra_usd: float


@dataclass(frozen=True)
class TrainingRisk:
    run: str
    probability_missed: float
    expected_delay_hours: float
    p95_delay_hours: float
    expected_lost_chip_hours: float


@dataclass(frozen=True)
class BatchRisk:
    job: str
    expected_delayed_chip_hours: float
    expected_unserved_chip_hours: float
    p95_unserved_chip_hours: float


@dataclass(frozen=True)
class SampleOutcomes:
    """What monte_carlo keeps of each sample (rows in sample order)."""

    demand_tokens: FloatArray  # (N, V)
    unserved_tokens: FloatArray  # (N, V)
    worst_period_share: FloatArray  # (N, V)
    cost_usd: FloatArray  # (N,)
    extra_cost_usd: FloatArray  # (N,)
    training_delay_hours: FloatArray  # (N, R)
    training_lost_chip_hours: FloatArray  # (N, R)
    training_missed: BoolArray  # (N, R)
    batch_delayed: FloatArray  # (N, J)
    batch_unserved: FloatArray  # (N, J)

    @staticmethod
    def of(state: PlanState, effects: Effects) -> SampleOutcomes:
        imp = immediate(state, effects)
        scale = SECONDS_PER_HOUR * imp.period_hours
        demand = imp.by_service(imp.demand_tokens_per_s)
        unserved = imp.by_service(imp.unserved_tokens)
        return SampleOutcomes(
            demand_tokens=_row_sum(demand) * scale, unserved_tokens=_row_sum(unserved),
            worst_period_share=imp.worst_period_share(),
            cost_usd=_row_sum(imp.cost_usd[:, None, :])[:, 0],
            extra_cost_usd=imp.extra_cost_usd,
            training_delay_hours=imp.training_delay_hours,
            training_lost_chip_hours=imp.training_lost_chip_hours,
            training_missed=imp.training_missed_deadline,
            batch_delayed=imp.batch_delayed_chip_hours,
            batch_unserved=imp.batch_unserved_chip_hours)

    @staticmethod
    def concat(parts: list[SampleOutcomes]) -> SampleOutcomes:
        return SampleOutcomes(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                             for f in fields(SampleOutcomes)})


def _row_sum(a: FloatArray) -> FloatArray:
    """(N, V, T) -> (N, V), periods added one at a time."""
    out = np.zeros(a.shape[:2])
    for t in range(a.shape[2]):
        out += a[:, :, t]
    return out


def cvar(values: FloatArray, level: float = 0.95) -> float:
    """Mean of the worst ``1 - level`` share of ``values`` (at least one value)."""
    if values.size == 0:
        return 0.0
    k = max(1, math.ceil((1.0 - level) * values.size - 1e-9))
    return float(np.sort(values)[-k:].mean())


@dataclass(frozen=True)
class RiskResult:
    """Monte Carlo answer: per-sample arrays (in sample order) and their statistics."""

    samples: int
    seed: int
    services: tuple[str, ...]
    runs: tuple[str, ...]
    jobs: tuple[str, ...]
    plan_cost_usd: float
    per_sample: SampleOutcomes
    baseline: SampleOutcomes  # one sample with nothing failing

    @property
    def shortfall(self) -> FloatArray:
        """(N, V) unserved share of demand tokens over the horizon, per service."""
        d, u = self.per_sample.demand_tokens, self.per_sample.unserved_tokens
        return np.divide(u, d, out=np.zeros_like(u), where=d > 0)

    @property
    def shortfall_total(self) -> FloatArray:
        """(N,) unserved share of demand tokens over the horizon, all services."""
        d = _row_sum(self.per_sample.demand_tokens[:, None, :])[:, 0]
        u = _row_sum(self.per_sample.unserved_tokens[:, None, :])[:, 0]
        return np.divide(u, d, out=np.zeros_like(u), where=d > 0)

    @property
    def served_share(self) -> FloatArray:
        """(N, V) served share of demand tokens over the horizon, per service."""
        return 1.0 - self.shortfall

    def service_stats(self) -> list[ShortfallStats]:
        ps, base = self.per_sample, self.baseline
        out = []
        for v, name in enumerate(self.services):
            d0 = base.demand_tokens[0, v]
            out.append(_shortfall_stats(
                name, ps.demand_tokens[:, v], ps.unserved_tokens[:, v],
                ps.worst_period_share[:, v],
                float(base.unserved_tokens[0, v] / d0) if d0 > 0 else 0.0))
        return out

    def overall_stats(self) -> ShortfallStats:
        ps, base = self.per_sample, self.baseline
        d0 = float(base.demand_tokens[0].sum())
        return _shortfall_stats(
            "all", _row_sum(ps.demand_tokens[:, None, :])[:, 0],
            _row_sum(ps.unserved_tokens[:, None, :])[:, 0],
            _min_rows(ps.worst_period_share),
            float(base.unserved_tokens[0].sum()) / d0 if d0 > 0 else 0.0)

    def cost_stats(self) -> CostStats:
        c, x = self.per_sample.cost_usd, self.per_sample.extra_cost_usd
        p50, p95, p99 = (float(v) for v in np.percentile(c, [50, 95, 99]))
        return CostStats(plan_usd=self.plan_cost_usd, expected_usd=float(c.mean()),
                         p50_usd=p50, p95_usd=p95, p99_usd=p99,
                         expected_extra_usd=float(x.mean()),
                         p95_extra_usd=float(np.percentile(x, 95)),
                         cvar95_extra_usd=cvar(x))

    def training_risk(self) -> list[TrainingRisk]:
        ps = self.per_sample
        return [TrainingRisk(run=name,
                             probability_missed=float(ps.training_missed[:, r].mean()),
                             expected_delay_hours=float(ps.training_delay_hours[:, r].mean()),
                             p95_delay_hours=float(np.percentile(ps.training_delay_hours[:, r],
                                                                 95)),
                             expected_lost_chip_hours=float(
                                 ps.training_lost_chip_hours[:, r].mean()))
                for r, name in enumerate(self.runs)]

    def batch_risk(self) -> list[BatchRisk]:
        ps = self.per_sample
        return [BatchRisk(job=name,
                          expected_delayed_chip_hours=float(ps.batch_delayed[:, j].mean()),
                          expected_unserved_chip_hours=float(ps.batch_unserved[:, j].mean()),
                          p95_unserved_chip_hours=float(np.percentile(ps.batch_unserved[:, j],
                                                                      95)))
                for j, name in enumerate(self.jobs)]


def _min_rows(a: FloatArray) -> FloatArray:
    out = np.full(a.shape[0], np.inf)
    for v in range(a.shape[1]):
        np.minimum(out, a[:, v], out=out)
    return out if a.shape[1] else np.ones(a.shape[0])


def _shortfall_stats(name: str, demand: FloatArray, unserved: FloatArray,
                     worst: FloatArray, baseline: float) -> ShortfallStats:
    share = np.divide(unserved, demand, out=np.zeros_like(unserved), where=demand > 0)
    p50, p95, p99 = (float(v) for v in np.percentile(share, [50, 95, 99]))
    return ShortfallStats(name=name, demand_tokens=float(demand.mean()),
                          expected_unserved_tokens=float(unserved.mean()),
                          mean=float(share.mean()), p50=p50, p95=p95, p99=p99,
                          cvar95=cvar(share), worst_period_share_p5=float(
                              np.percentile(worst, 5)), baseline=baseline)


_worker: tuple[PlanState, Sampler] | None = None


def _init_worker(state: PlanState, sampler: Sampler) -> None:
    global _worker
    _worker = (state, sampler)


def _run_chunk(job: tuple[int, int, int]) -> SampleOutcomes:
    assert _worker is not None, "worker not initialised"
    state, sampler = _worker
    seed, lo, hi = job
    return SampleOutcomes.of(state, sampler.draw(seed, lo, hi))


def monte_carlo(state: PlanState, model: RiskModel, n: int, seed: int, *, workers: int = 1,
                chunk: int = DEFAULT_CHUNK) -> RiskResult:
    """Run :func:`immediate` on ``n`` seeded samples and aggregate the distributions.

    ``workers > 1`` spreads chunks over that many processes; the numbers do not depend
    on ``workers`` or ``chunk``, only on ``seed`` (and ``n``).
    """
    if n < 1:
        raise ValueError("monte_carlo needs at least one sample")
    sampler = Sampler(state.fleet, model)
    jobs = [(seed, lo, hi) for lo, hi in _chunks(n, chunk)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                 initializer=_init_worker,
                                 initargs=(state, sampler)) as pool:
            parts = list(pool.map(_run_chunk, jobs))
    else:
        parts = [SampleOutcomes.of(state, sampler.draw(*job)) for job in jobs]
    none = Effects.none(1, len(state.pools), state.periods, state.period_hours)
    units = state.units
    return RiskResult(
        samples=n, seed=seed, services=tuple(dict.fromkeys(u.service.name for u in units)),
        runs=tuple(r.name for r in state.runs), jobs=tuple(j.name for j in state.jobs),
        plan_cost_usd=float(state.plan_cost_usd.sum()),
        per_sample=SampleOutcomes.concat(parts), baseline=SampleOutcomes.of(state, none))


__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_PROVIDER",
    "DEFAULT_REGION",
    "DEFAULT_SPOT",
    "SAMPLE_BLOCK",
    "AvailabilityModel",
    "BatchRisk",
    "CostStats",
    "ProviderAvailability",
    "RiskModel",
    "RiskResult",
    "SampleOutcomes",
    "Sampler",
    "ShortfallStats",
    "SpotModel",
    "TrainingRisk",
    "check_names",
    "cvar",
    "monte_carlo",
    "sample",
]
