"""Smoke test: the quick run of bench/control_store.py prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "control_store.py"


def test_quick_control_store_bench_prints_placements_per_second() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for text in ("Placements per second", "sqlite", "single", "batched", "median /s"):
        assert text in done.stdout, text
