"""Smoke tests: the quick runs of the bench scripts print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "planner.py"


def test_quick_bench_prints_its_tables() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for header in ("(a) Baselines", "(b) Scale sweep", "(c) Goals", "variables",
                   "nonzeros", "cap breaches", "per-workload cheapest", "single provider"):
        assert header in out, header


STRESS = BENCH.with_name("stress.py")


def test_quick_stress_bench_prints_the_sweep_and_monte_carlo() -> None:
    done = subprocess.run([sys.executable, str(STRESS), "--quick"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for header in ("N-1 sweep", "re-plan s", "Monte Carlo", "samples/s", "CVaR95"):
        assert header in out, header
