"""The command line end to end: real specs, real solver, files written and checked."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from cloudhedge.cli.main import EXIT_INFEASIBLE, EXIT_INVALID, app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_plan_writes_json_that_matches_the_published_schema(tmp_path: Path) -> None:
    out, report = tmp_path / "plan.json", tmp_path / "report.html"
    res = runner.invoke(app, ["plan", str(ROOT / "examples/startup.yaml"), "--out", str(out),
                              "--report", str(report)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    schema = json.loads((ROOT / "docs/plan.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["schema_version"] == "1.0"
    assert doc["status"] in ("optimal", "feasible")
    assert doc["solver"]["nonzeros"] > 0 and doc["solver"]["lp_relaxation_bound_usd"] > 0
    html = report.read_text()
    for chart in ("chart-cost-by-provider", "chart-share-provider", "chart-share-vendor",
                  "chart-contracts", "chart-survivability"):
        assert f'id="{chart}"' in html
    assert "startup" in res.output and "USD" in res.output


def test_published_schema_is_current() -> None:
    res = runner.invoke(app, ["schema", "plan"])
    assert res.exit_code == 0
    assert json.loads(res.output) == json.loads((ROOT / "docs/plan.schema.json").read_text())


def test_invalid_spec_exits_2_and_names_file_line_and_field(tmp_path: Path) -> None:
    text = (ROOT / "examples/startup.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("gang_chips:", "gang_chip:", 1))
    line = next(i for i, row in enumerate(bad.read_text().splitlines(), 1) if "gang_chip:" in row)
    for cmd in ("validate", "plan"):
        res = runner.invoke(app, [cmd, str(bad)])
        assert res.exit_code == EXIT_INVALID
        assert f"{bad}:{line}:" in res.output
        assert "gang_chip" in res.output and "gang_chips" in res.output


def test_infeasible_spec_exits_3_and_names_the_conflict(tmp_path: Path) -> None:
    spec = tmp_path / "conflict.yaml"
    spec.write_text("""
name: conflict
horizon: {start: 2026-01, periods: 2}
pools:
  - {name: az, provider: azure, region: eastus, accelerator: h100, tier: on_demand,
     capacity_chips: 100}
  - {name: aw, provider: aws, region: us-east-1, accelerator: h100, tier: on_demand,
     capacity_chips: 100}
policies:
  survivability: [{kind: provider, alpha: {critical: 0.8}}]
  exclusivity: {api: [azure]}
workloads:
  - kind: inference
    name: api
    model: gpt
    tenant_class: api
    criticality: critical
    demand_tokens_per_s: {us: 30000}
""")
    out = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", str(spec), "--out", str(out), "--no-explain"])
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    doc = json.loads(out.read_text())
    assert doc["status"] == "infeasible"
    assert doc["conflicts"][0]["constraint"] == "survivability:provider|azure|api/us"


@pytest.mark.parametrize("example", ["startup", "enterprise-eu", "frontier-lab"])
def test_examples_plan_without_conflicts(example: str, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", str(ROOT / f"examples/{example}.yaml"), "--out", str(out),
                              "--no-explain", "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["conflicts"] == []
    assert all(cell["ok"] for cell in doc["survivability"])
    caps = [c for c in doc["concentration"] if c["cap"] is not None]
    assert all(c["max_share"] <= c["cap"] + 1e-4 for c in caps)
