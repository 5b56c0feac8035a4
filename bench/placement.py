"""Placement benchmark: placements per second on the flagship fleet with its plan.

    python bench/placement.py            # 20,000 placements per run, median of 3
    python bench/placement.py --quick    # 2,000 per run, and a cheaper plan (smoke test)

The flagship (examples/frontier-lab.yaml, 55 pools) is planned first (not timed); the
:class:`~cloudhedge.control.placement.Placer` is built from the fleet and the plan (not
timed). Then a fixed mix of requests derived from the fleet's workloads (training
gangs, batch jobs, one replica of each inference service per tenant class and
jurisdiction) is placed against random live usage and blocklists, one placement after
another. Reported: placements/s for the decision alone (the hot path) and, on a
twentieth of the items, with ``explain`` built for every decision (what ``cloudhedge
explain`` costs: the readable reasons are built only then).
Goal: >= 20,000 decisions/s on 2 cores (the control plane's end-to-end goal, with
SQLite, is 1,000/s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np

from cloudhedge.control.placement import LiveUsage, Placer, Request, Scope, ScopeKind, explain
from cloudhedge.control.specs import AcceleratorOption
from cloudhedge.core.models import DomainKind, Fleet
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import SolveOptions
from cloudhedge.spec import load_fleet

FLAGSHIP = Path(__file__).resolve().parents[1] / "examples" / "frontier-lab.yaml"
GOAL_PER_S = 20_000.0
REPEAT = 3


def requests(fleet: Fleet) -> list[Request]:
    """One request per workload of the fleet, shaped like the runtime's."""
    out = [Request(r.name, "training", tuple(AcceleratorOption(a, 8) for a in r.accelerators),
                   replicas=max(1, r.gang_chips // 8), gang=True, tenant_class=r.tenant_class,
                   spot_allowed=r.spot_allowed) for r in fleet.training]
    out += [Request(b.name, "batch", tuple(AcceleratorOption(a, 8) for a in b.accelerators),
                    tenant_class=b.tenant_class, spot_allowed=b.spot_allowed)
            for b in fleet.batch]
    for s in fleet.inference:
        for jurisdiction in s.demand_tokens_per_s:
            out.append(Request(s.name, "inference", tuple(
                AcceleratorOption(a, 8) for a in s.throughput_tokens_per_s),
                replicas=4, tenant_class=s.tenant_class, jurisdiction=jurisdiction,
                spread=DomainKind.PROVIDER, spot_allowed=s.spot_allowed))
    return out


def run(placer: Placer, work: list[tuple[Request, LiveUsage, int, frozenset[Scope]]],
        with_explain: bool) -> float:
    """Seconds to place every item of ``work``, one after another."""
    t0 = time.perf_counter()
    for request, usage, period, blocklist in work:
        decision = placer.place(request, usage, period, blocklist=blocklist)
        if with_explain:
            explain(decision)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description="placements/s on the flagship fleet")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    fleet = load_fleet(FLAGSHIP)
    options = PlanOptions(solve=SolveOptions(time_limit_s=10.0), explain=False,
                          conflicts=False, duals=False)
    t0 = time.perf_counter()
    plan = make_plan(fleet, options)
    plan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    placer = Placer(fleet, plan)
    build_ms = (time.perf_counter() - t0) * 1e3
    rng = random.Random(0)
    mix = requests(fleet)
    capacity = placer.capacity
    usages = [LiveUsage(capacity[:, t] * np.array([rng.random() * 0.9 for _ in placer.pools]))
              for t in range(fleet.horizon.periods)]
    providers = sorted({p.provider for p in fleet.pools})
    blocklists = [frozenset(), frozenset(), frozenset(),
                  frozenset({Scope(ScopeKind.PROVIDER, rng.choice(providers))})]
    work = []
    for _ in range(n):
        t = rng.randrange(fleet.horizon.periods)
        work.append((rng.choice(mix), usages[t], t, rng.choice(blocklists)))
    placed = sum(placer.place(r, u, t, blocklist=b).pool is not None for r, u, t, b in work)
    print(f"flagship: {len(fleet.pools)} pools, {len(mix)} request shapes; plan solved in "
          f"{plan_s:.1f} s (not timed), placer built in {build_ms:.1f} ms (not timed); "
          f"{placed / n:.0%} of requests placed")
    for label, with_explain in (("decisions", False), ("decisions + explain", True)):
        items = work[: n // 20] if with_explain else work  # explain is the slow, rare path
        seconds = statistics.median(run(placer, items, with_explain) for _ in range(REPEAT))
        rate = len(items) / seconds
        verdict = ("PASS" if rate >= GOAL_PER_S else "FAIL") if not with_explain else ""
        print(f"{label:>22}: {rate:>10,.0f} placements/s  ({len(items)} per run, median of "
              f"{REPEAT}) {verdict}")


if __name__ == "__main__":
    main()
