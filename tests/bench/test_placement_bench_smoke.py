"""Smoke test: the quick run of bench/placement.py reports its rates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "placement.py"


def test_quick_placement_bench_prints_its_rates() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "55 pools" in done.stdout
    assert "decisions + explain" in done.stdout and "placements/s" in done.stdout
