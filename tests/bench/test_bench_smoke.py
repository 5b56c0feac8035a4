"""Smoke test: ``bench/planner.py --quick`` runs and prints its three tables."""

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
