"""Planner benchmark: baselines, scale sweep and goals.

    python bench/planner.py            # everything (about 17 minutes on 2 cores)
    python bench/planner.py --quick    # small sizes only (a smoke test, well under a minute)

(a) Baselines: on each example fleet (examples/*.yaml) and on a generated one, the
    hedged planner against a per-job broker (per_workload_cheapest) and the best
    single-provider plan: cost with take-or-pay counted, penalty, unmet demand, cap
    breaches and survivability against the fleet's policies, and cost ratios.
(b) Scale sweep on generated fleets: model size, index+build time (median of runs),
    solve time and gap under a wall-clock budget, and build seconds per million
    nonzeros (build time should grow about linearly with nonzeros).
(c) Goals, PASS/FAIL: the flagship (examples/frontier-lab.yaml) solves to <= 0.5% gap
    in <= 10 s; the 2000 x 300 x 24 generated fleet builds in <= 5 s and reaches <= 1%
    gap within 120 s.

"Solve" is the planner's path, inside one time budget: for models of at least
``DECOMPOSE_MIN_COLUMNS`` columns the period decomposition
(``cloudhedge.planning.decompose``: Benders cuts from the period LPs on a master of
training and batch aggregated exactly, a dive and a branch-and-bound for training),
else
``cloudhedge.planning.warmstart.solve_warm`` (LP relaxation, a start rounded from it,
then the MIP). The gap is always against a valid lower bound.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from cloudhedge.core.models import Fleet
from cloudhedge.planning.baselines import best_single_provider, per_workload_cheapest, violations
from cloudhedge.planning.build import Model, ModelBuilder
from cloudhedge.planning.decompose import solve_decomposed, use_decomposition
from cloudhedge.planning.generate import generate_fleet
from cloudhedge.planning.index import FleetIndex, build_index
from cloudhedge.planning.planner import PlanOptions, make_plan
from cloudhedge.planning.solve import Solution, SolveOptions, _new_highs
from cloudhedge.planning.warmstart import solve_warm

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FLAGSHIP = EXAMPLES / "frontier-lab.yaml"
SWEEP = [(100, 30, 12), (250, 60, 24), (500, 100, 24), (1000, 200, 24), (2000, 300, 24)]
QUICK_SWEEP = [(30, 20, 6), (60, 24, 8)]
BIG = (2000, 300, 24)
CHEAP_SECONDS = 2.0  # below this, a figure is the median of REPEAT runs
REPEAT = 3

T = TypeVar("T")
console = Console(width=None if sys.stdout.isatty() else 190)


def median_run(fn: Callable[[], T], repeat: int = REPEAT) -> tuple[T, float]:
    """Run ``fn``; when it is cheap, run it ``repeat`` times: (last result, median s)."""
    times: list[float] = []
    while True:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= repeat or times[0] > CHEAP_SECONDS:
            return out, statistics.median(times)


def usd(v: float | None) -> str:
    if v is None:
        return "-"
    for div, suf in ((1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{v / div:,.2f} {suf}"
    return f"{v:,.0f}"


def num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


# ------------------------------------------------------------------ solving
@dataclass
class Timed:
    ix: FleetIndex
    model: Model
    index_s: float
    build_s: float
    sol: Solution
    solve_s: float


def build(fleet: Fleet, repeat: int = REPEAT) -> tuple[FleetIndex, Model, float, float]:
    """Index and model, with median seconds of each (repeated when cheap)."""
    ix, index_s = median_run(lambda: build_index(fleet), repeat)
    model, build_s = median_run(lambda: ModelBuilder(ix).build(), repeat)
    return ix, model, index_s, build_s


def budgeted_solve(ix: FleetIndex, model: Model, budget_s: float, gap: float) -> Solution:
    """The planner's solve path inside one wall-clock budget: the period decomposition
    for large models (see ``cloudhedge.planning.decompose``), else LP relaxation,
    rounded start and MIP."""
    options = SolveOptions(time_limit_s=budget_s, gap=gap)
    if use_decomposition(model):
        return solve_decomposed(ix, model, options)[1]
    return solve_warm(ix, model, options)[1]


def method(model: Model) -> str:
    return "decomposition" if use_decomposition(model) else "monolithic"


def timed_solve(fleet: Fleet, budget_s: float, gap: float, repeat: int = 1) -> Timed:
    ix, model, index_s, build_s = build(fleet)
    sol, solve_s = median_run(lambda: budgeted_solve(ix, model, budget_s, gap), repeat)
    return Timed(ix, model, index_s, build_s, sol, solve_s)


# ---------------------------------------------------------------- baselines
def load_examples(quick: bool) -> list[tuple[str, Fleet]]:
    paths = sorted(EXAMPLES.glob("*.yaml"), key=lambda p: p.stat().st_size)
    if quick:
        paths = paths[:1]
    out = []
    try:
        from cloudhedge.spec import load_fleet
    except ImportError as e:  # the spec loader is another package's work
        console.print(f"[yellow]examples skipped: cannot import cloudhedge.spec ({e})")
        return out
    for path in paths:
        try:
            out.append((path.stem, load_fleet(path)))
        except Exception as e:
            console.print(f"[yellow]{path.name} skipped: {e}")
    return out


def baseline_rows(name: str, fleet: Fleet, options: PlanOptions) -> list[list[str]]:
    planner, planner_s = median_run(lambda: make_plan(fleet, options))
    broker, broker_s = median_run(lambda: per_workload_cheapest(fleet))
    (prov, single), single_s = median_run(lambda: best_single_provider(fleet, options))
    rows = []
    base_cost = planner.cost.total_usd
    base_obj = planner.solver.objective_usd
    for label, plan, seconds in ((f"planner ({planner.status})", planner, planner_s),
                                 ("broker (per-workload cheapest)", broker, broker_s),
                                 (f"single provider: {prov}", single, single_s)):
        v = violations(fleet, plan)
        obj = plan.solver.objective_usd
        rows.append([
            name if not rows else "", label, usd(plan.cost.total_usd), usd(plan.cost.penalty_usd),
            str(v["unmet"]["training_runs"]), usd(v["unmet"]["inference_tokens"]),
            str(v["cap_breaches"]),
            f"{v['survivability_failing']}/{v['survivability_cells']}",
            num(v["min_kept_share"]), num(plan.solver.solve_seconds, "{:.3f}"),
            num(seconds, "{:.3f}"),
            num(plan.cost.total_usd / base_cost if base_cost else None, "{:.3f}x"),
            num(obj / base_obj if obj is not None and base_obj else None, "{:.3f}x"),
        ])
    return rows


def table_baselines(quick: bool) -> None:
    fleets = load_examples(quick)
    size = (30, 20, 6) if quick else (200, 40, 12)
    fleets.append((f"gen {size[0]}x{size[1]}x{size[2]}", generate_fleet(*size, seed=0)))
    options = PlanOptions(solve=SolveOptions(time_limit_s=20 if quick else 60, gap=0.005),
                          explain=False)
    t = Table(title="(a) Baselines: hedged planner vs per-job broker vs best single provider "
                    "(cost counts take-or-pay; policies of the fleet)", show_lines=False)
    for col in ("fleet", "plan", "cost USD", "penalty USD", "unmet runs",
                "unmet tokens", "cap breaches", "surv. failing", "min kept", "solve s",
                "wall s", "cost ratio", "obj. ratio"):
        t.add_column(col, justify="left" if col in ("fleet", "plan") else "right",
                     no_wrap=col in ("fleet", "plan", "unmet tokens"))
    for name, fleet in fleets:
        for i, row in enumerate(baseline_rows(name, fleet, options)):
            t.add_row(*row, end_section=i == 2)
    console.print(t)
    console.print("cost = committed fixed (take-or-pay, paid even when wasted) + usage; "
                  "penalty = unmet demand priced by its penalty; objective = cost + penalty; "
                  "ratios are to the planner's. surv. failing = cells failing / cells. "
                  "solve s = solver time (0 for the greedy broker; the best provider's own "
                  "solve for single provider); wall s = producing the row's plan(s), "
                  f"median of {REPEAT} when under {CHEAP_SECONDS:g} s.\n")


# -------------------------------------------------------------------- sweep
def table_sweep(quick: bool) -> dict[tuple[int, int, int], Timed]:
    sizes = QUICK_SWEEP if quick else SWEEP
    budget = 10.0 if quick else 120.0
    t = Table(title=f"(b) Scale sweep on generated fleets (seed 0; solve budget {budget:g} s, "
                    f"gap 1%)")
    for col in ("workloads x pools x periods", "variables", "integer", "constraints",
                "nonzeros", "index s", "build s", "index+build s", "build s / M nnz",
                "solve s", "method", "status", "gap"):
        t.add_column(col, justify="right")
    out = {}
    for w, p, periods in sizes:
        fleet = generate_fleet(w, p, periods, seed=0)
        r = timed_solve(fleet, budget, 0.01)
        out[(w, p, periods)] = r
        m = r.model
        t.add_row(f"{w} x {p} x {periods}", f"{m.A.shape[1]:,}", f"{int(m.integer.sum()):,}",
                  f"{m.A.shape[0]:,}", f"{m.A.nnz:,}", f"{r.index_s:.2f}", f"{r.build_s:.2f}",
                  f"{r.index_s + r.build_s:.2f}", f"{r.build_s / (m.A.nnz / 1e6):.3f}",
                  f"{r.solve_s:.1f}", method(m), r.sol.status, num(r.sol.gap, "{:.2%}"))
        console.print(f"  swept {w} x {p} x {periods}", style="dim")
    console.print(t)
    console.print("index/build s: median of 3 runs; solve s: wall time of the planner's path "
                  "inside the budget, one run (monolithic: LP relaxation + rounded start + "
                  "MIP; decomposition: column generation + dive + period LPs); gap against "
                  "a valid lower bound.\n")
    return out


# -------------------------------------------------------------------- goals
def table_goals(quick: bool, sweep: dict[tuple[int, int, int], Timed]) -> None:
    t = Table(title="(c) Goals")
    for col in ("goal", "measured", "result"):
        t.add_column(col)

    def verdict(ok: bool) -> str:
        return "[green]PASS" if ok else "[red]FAIL"

    if quick:
        t.add_row("flagship <= 0.5% gap in <= 10 s", "not measured in --quick", "SKIP")
        t.add_row(f"{BIG[0]} x {BIG[1]} x {BIG[2]} builds in <= 5 s",
                  "not measured in --quick", "SKIP")
        t.add_row(f"{BIG[0]} x {BIG[1]} x {BIG[2]} <= 1% gap within 120 s",
                  "not measured in --quick", "SKIP")
        console.print(t)
        return
    fleets = dict(load_examples(False))
    if "frontier-lab" in fleets:
        r = timed_solve(fleets["frontier-lab"], 60.0, 0.005, repeat=REPEAT)
        gap = r.sol.gap
        ok = r.sol.has_solution and gap is not None and gap <= 0.005 and r.solve_s <= 10.0
        t.add_row("flagship frontier-lab: <= 0.5% gap in <= 10 s (solve only)",
                  f"solve {r.solve_s:.2f} s (median of {REPEAT}), gap {num(gap, '{:.3%}')}, "
                  f"{r.sol.status}; build {r.index_s + r.build_s:.3f} s "
                  f"({r.model.A.shape[1]:,} vars, {r.model.A.nnz:,} nnz)", verdict(ok))
    else:
        t.add_row("flagship frontier-lab: <= 0.5% gap in <= 10 s", f"{FLAGSHIP} missing",
                  verdict(False))
    big = sweep.get(BIG)
    if big is None:
        big = timed_solve(generate_fleet(*BIG, seed=0), 120.0, 0.01)
    built = big.index_s + big.build_s
    t.add_row(f"{BIG[0]} x {BIG[1]} x {BIG[2]}: index+build <= 5 s",
              f"{built:.2f} s (index {big.index_s:.2f} + build {big.build_s:.2f}; "
              f"{big.model.A.nnz:,} nnz)", verdict(built <= 5.0))
    gap = big.sol.gap
    ok = big.sol.has_solution and gap is not None and gap <= 0.01 and big.solve_s <= 120.5
    t.add_row(f"{BIG[0]} x {BIG[1]} x {BIG[2]}: <= 1% gap within 120 s",
              f"{method(big.model)}: {big.sol.status} after {big.solve_s:.1f} s, gap "
              f"{num(gap, '{:.2%}')} (plan {usd(big.sol.objective)}, lower bound "
              f"{usd(big.sol.mip_bound)})", verdict(ok))
    console.print(t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args(argv)
    console.print(f"cloudhedge planner bench: python {platform.python_version()}, HiGHS "
                  f"{_new_highs().version()}, {os.cpu_count()} CPUs"
                  f"{' (quick)' if args.quick else ''}")
    if not args.skip_baselines:
        table_baselines(args.quick)
    sweep = table_sweep(args.quick)
    table_goals(args.quick, sweep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
