"""Smoke test of the gateway benchmark: ``bench/gateway/run.py --quick`` without LiteLLM.

LiteLLM's environment is pointed at a folder that does not exist, so the run must skip
LiteLLM cleanly and still measure the mock directly and cloudhedge (about 25 s). Needs
``wrk`` (Debian package ``wrk``); skipped, saying so, where it is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "bench" / "gateway" / "run.py"


@pytest.mark.skipif(shutil.which("wrk") is None,
                    reason="wrk is not installed (apt-get install wrk)")
def test_quick_gateway_bench_skips_litellm_and_measures_mock_and_cloudhedge(
        tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--rates", "50", "--litellm-venv",
         str(tmp_path / "no-litellm-venv"), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    text = done.stdout
    assert "LiteLLM skipped: no LiteLLM environment" in text
    for header in ("(a) Maximum throughput", "(b) Latency at fixed rates", "(c) Goals",
                   "mock (direct)", "cloudhedge", "litellm not run"):
        assert header in text, header

    results = json.loads(out.read_text())
    assert set(results["throughput"]) == {"mock", "cloudhedge"}
    for name, row in results["throughput"].items():
        assert row["ok_rps"] > 0, name
        assert row["non2xx"] == 0 and row["socket_errors"] == 0, (name, row)
    at_50 = results["latency"]["50"]
    assert set(at_50) == {"mock", "cloudhedge"}
    for name, row in at_50.items():
        assert row["errors"] == 0 and row["p99_ms"] >= row["p50_ms"] > 0, (name, row)
    assert at_50["mock"]["added_p99_ms"] == 0
    assert results["goals"]["throughput"] is None  # no LiteLLM: no ratios, no verdicts
    assert results["meta"]["litellm"] is None


FAILOVER = RUN.with_name("failover.py")


def test_failover_proof_bench_passes_its_own_checks() -> None:
    done = subprocess.run(
        [sys.executable, str(FAILOVER), "--rate", "20", "--phase-s", "2", "--port", "0"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for line in ("azure + aws killed", "after the cool-down",
                 "zero failed while one deployment is healthy: PASS",
                 "traffic back on every upstream after the cool-down: PASS"):
        assert line in done.stdout, line
