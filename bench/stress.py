"""Stress benchmark: the N-1 sweep and Monte Carlo risk of the flagship plan.

    python bench/stress.py            # full: sweep + 10,000 samples (about 3 minutes)
    python bench/stress.py --quick    # the n-1-provider family and 500 samples (smoke)

The plan of examples/frontier-lab.yaml (24 monthly periods) is made once with
``make_plan`` (not timed, nothing cached on disk). Then:

- the full N-1 sweep (every provider, vendor and region: 37 scenarios), immediate
  answer and re-plan of each, with 1 and all worker processes. Goal: <= 60 s;
- ``monte_carlo`` with the default availability model (docs/stress-model.md), each
  figure the median of three runs. Goal: 10,000 samples in <= 30 s.

The machine is noisy (2 cores, shared): compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cloudhedge.core.models import Fleet
from cloudhedge.core.plan import Plan
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.spec import load_fleet
from cloudhedge.stress.library import family
from cloudhedge.stress.risk import RiskModel, RiskResult, monte_carlo
from cloudhedge.stress.run import Labelled, StressOptions, run_scenarios
from cloudhedge.stress.state import PlanState

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "examples" / "frontier-lab.yaml"
GOAL_SAMPLES = 10_000
GOAL_SECONDS = 30.0
GOAL_SWEEP_SECONDS = 60.0
REPEAT = 3

console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass(frozen=True)
class MonteCarloRun:
    samples: int
    workers: int
    median_seconds: float
    result: RiskResult

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.median_seconds


def flagship(path: Path = FLAGSHIP) -> tuple[Fleet, Plan]:
    """Load and plan the fleet at ``path`` (not timed)."""
    fleet = load_fleet(path)
    t0 = time.perf_counter()
    plan = make_plan(fleet, PlanOptions(explain=False))
    console.print(f"planned {fleet.name}: {len(fleet.pools)} pools, "
                  f"{fleet.horizon.periods} periods, status {plan.status}, "
                  f"{time.perf_counter() - t0:.1f} s (not timed below)", style="dim")
    return fleet, plan


def bench_sweep(fleet: Fleet, plan: Plan, families: list[str], workers: int) -> None:
    """Time the sweep (immediate + re-plan of every scenario of ``families``) and print."""
    scenarios = [Labelled(s, f) for f in families for s in family(fleet, f)]
    t0 = time.perf_counter()
    results = run_scenarios(fleet, plan, scenarios, StressOptions(workers=workers))
    seconds = time.perf_counter() - t0
    replans = [r.replanned.solve_seconds for r in results if r.replanned is not None]
    broken = sum(1 for r in results for s in r.immediate.services if s.promise_kept is False)
    verdict = "PASS" if seconds <= GOAL_SWEEP_SECONDS else "FAIL"
    t = Table(title=f"N-1 sweep of the flagship plan ({', '.join(families)})")
    for col in ("scenarios", "workers", "wall s", "re-plan s (median)", "re-plan s (max)",
                "broken promises", f"goal <= {GOAL_SWEEP_SECONDS:g} s"):
        t.add_column(col, justify="right")
    t.add_row(str(len(results)), str(workers), f"{seconds:.1f}",
              f"{statistics.median(replans):.2f}", f"{max(replans):.2f}", str(broken), verdict)
    console.print(t)


def bench_monte_carlo(state: PlanState, samples: int, workers: int, *, seed: int = 0,
                      repeat: int = REPEAT) -> MonteCarloRun:
    """Median wall time of ``repeat`` Monte Carlo runs; prints and returns it."""
    times: list[float] = []
    result: RiskResult | None = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = monte_carlo(state, RiskModel(), samples, seed, workers=workers)
        times.append(time.perf_counter() - t0)
    assert result is not None
    run = MonteCarloRun(samples, workers, statistics.median(times), result)
    console.print(f"  monte carlo: {samples:,} samples, {workers} worker(s): "
                  f"{run.median_seconds:.2f} s median of {repeat}, "
                  f"{run.samples_per_second:,.0f} samples/s", style="dim")
    return run


def table_monte_carlo(runs: list[MonteCarloRun], quick: bool) -> None:
    t = Table(title="Monte Carlo risk of the flagship plan (default availability model)")
    for col in ("samples", "workers", "median s", "samples/s", "P95 shortfall",
                "CVaR95 shortfall", "mean extra USD", f"goal {GOAL_SAMPLES:,} <= "
                f"{GOAL_SECONDS:g} s"):
        t.add_column(col, justify="right")
    for run in runs:
        overall, cost = run.result.overall_stats(), run.result.cost_stats()
        projected = run.median_seconds * GOAL_SAMPLES / run.samples
        verdict = "PASS" if projected <= GOAL_SECONDS else "FAIL"
        if run.samples != GOAL_SAMPLES:
            verdict = f"{verdict} (projected {projected:.1f} s)"
        t.add_row(f"{run.samples:,}", str(run.workers), f"{run.median_seconds:.2f}",
                  f"{run.samples_per_second:,.0f}", f"{overall.p95:.2e}",
                  f"{overall.cvar95:.2e}", f"{cost.expected_extra_usd:,.0f}", verdict)
    console.print(t)
    if quick:
        console.print("quick run: the goal column projects the 10,000-sample time linearly")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="500 samples: a smoke run")
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args(argv)
    samples = args.samples or (500 if args.quick else GOAL_SAMPLES)
    cpus = os.cpu_count() or 1
    console.print(f"cloudhedge stress bench: python {platform.python_version()}, "
                  f"{cpus} CPUs{' (quick)' if args.quick else ''}")
    fleet, plan = flagship()
    families = ["n-1-provider"] if args.quick else ["n-1-provider", "n-1-vendor", "n-1-region"]
    for w in sorted({cpus, 1}, reverse=True):
        bench_sweep(fleet, plan, families, w)
    state = PlanState.from_plan(fleet, plan)
    workers = sorted({1, cpus})
    table_monte_carlo([bench_monte_carlo(state, samples, w) for w in workers], args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
