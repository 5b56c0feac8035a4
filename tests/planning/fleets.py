"""Small hand-built fleets for planner tests (core models directly, no YAML)."""

from __future__ import annotations

from datetime import date

from cloudhedge.core.models import (
    Accelerator,
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

ACCS = {
    "h100": Accelerator("h100", "nvidia", "cuda", 80, 3.35, 989, "test"),
    "b200": Accelerator("b200", "nvidia", "cuda", 180, 8.0, 2250, "test"),
    "trn2": Accelerator("trn2", "aws", "neuron", 96, 2.9, 667, "test"),
    "mi300x": Accelerator("mi300x", "amd", "rocm", 192, 5.3, 1307, "test"),
}
SPEED = {"h100": 1.0, "b200": 2.0, "trn2": 0.7, "mi300x": 1.2}
TPUT = {"h100": 3000.0, "b200": 10000.0, "trn2": 2500.0, "mi300x": 2900.0}


def pool(name: str, provider: str, acc: str, cap: float | list[float], price: float, *,
         tier: Tier = Tier.ON_DEMAND, region: str = "r1", jur: str = "us",
         T: int = 3) -> Pool:
    caps = tuple(cap) if isinstance(cap, list) else (float(cap),) * T
    a = ACCS[acc]
    return Pool(name, provider, region, jur, acc, a.vendor, a.stack, tier, price, "test",
                caps, 0.05 if tier is Tier.SPOT else 0.0)


def service(name: str, demand: float | dict[str, list[float]], *, T: int = 3,
            crit: Criticality = Criticality.STANDARD, tenant: str | None = None,
            accs: tuple[str, ...] = ("h100", "b200", "mi300x", "trn2")) -> InferenceService:
    d = demand if isinstance(demand, dict) else {"us": [float(demand)] * T}
    return InferenceService(name, name, {j: tuple(v) for j, v in d.items()},
                            {a: TPUT[a] for a in accs}, tenant, crit)


def fleet(pools: list[Pool], *, T: int = 3, inference: list[InferenceService] | None = None,
          training: list[TrainingRun] | None = None, batch: list[BatchJob] | None = None,
          contracts: list[Contract] | None = None, policies: Policies | None = None) -> Fleet:
    return Fleet(
        name="test", horizon=Horizon(date(2026, 1, 1), T), accelerators=ACCS,
        pools=tuple(pools), contracts=tuple(contracts or ()), policies=policies or Policies(),
        training=tuple(training or ()), batch=tuple(batch or ()),
        inference=tuple(inference or ()), relative_speed=SPEED,
    )


def caps(share: float) -> tuple[Cap, ...]:
    return (Cap(DomainKind.PROVIDER, "*", share),)


def surv(alpha: float) -> tuple[SurvivabilityRule, ...]:
    return (SurvivabilityRule(DomainKind.PROVIDER, {"critical": alpha}),)


__all__ = ["ACCS", "BatchJob", "Contract", "Policies", "Tier", "TrainingRun", "caps", "fleet",
           "pool", "service", "surv"]
