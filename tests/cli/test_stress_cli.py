"""``cloudhedge stress`` end to end: real specs, real solver, real Monte Carlo."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from cloudhedge.cli.main import EXIT_INVALID, app

ROOT = Path(__file__).resolve().parents[2]
STARTUP = str(ROOT / "examples/startup.yaml")
runner = CliRunner()


def test_stress_writes_json_that_matches_the_schema_and_a_report(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", STARTUP, "--out", str(plan), "--no-explain", "-q"])
    assert res.exit_code == 0, res.output
    out, report = tmp_path / "stress.json", tmp_path / "stress.html"
    res = runner.invoke(app, ["stress", STARTUP, "--plan", str(plan), "--sweep", "n-1-provider",
                              "--scenario", "builtin:spot-x3", "--samples", "512",
                              "--workers", "1", "--out", str(out), "--report", str(report)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((ROOT / "docs/stress.schema.json").read_text()))
    names = [s["name"] for s in doc["scenarios"]]
    assert names == ["spot-x3", "n-1-aws", "n-1-gcp", "n-1-oci"]
    for s in doc["scenarios"]:
        imm = s["immediate"]
        assert 0.0 <= imm["served_share"] <= 1.0
        assert s["replanned"] is not None and s["replanned"]["status"] in ("optimal", "feasible")
        for svc in imm["services"]:  # conservation, per period
            assert all(sv <= d + 1e-6 for sv, d in zip(svc["served_tokens_per_s"],
                                                      svc["demand_tokens_per_s"], strict=True))
    spot = next(s for s in doc["scenarios"] if s["name"] == "spot-x3")
    assert spot["immediate"]["extra_cost_usd"] > 0  # the plan uses spot: it costs more
    assert doc["risk"]["samples"] == 512 and len(doc["risk"]["histogram_counts"]) == 40
    variants = {v["name"]: v for v in doc["hedge_value"]["variants"]}
    assert set(variants) == {"hedged", "unhedged", "single-provider"}
    assert variants["unhedged"]["premium_usd"] == 0.0
    assert variants["hedged"]["premium_usd"] >= -1e-6 * variants["hedged"]["cost_usd"]
    html = report.read_text()
    assert html.count("<svg") >= 3 and "n-1-aws" in html
    assert "n-1-aws" in res.output


def test_same_seed_gives_the_same_risk_numbers(tmp_path: Path) -> None:
    docs = []
    for i in range(2):
        out = tmp_path / f"s{i}.json"
        res = runner.invoke(app, ["stress", STARTUP, "--scenario", "builtin:n-1-oci",
                                  "--samples", "300", "--seed", "7", "--no-replan",
                                  "--no-hedge-value", "--out", str(out), "-q"])
        assert res.exit_code == 0, res.output
        docs.append(json.loads(out.read_text()))
    assert docs[0]["risk"] == {**docs[1]["risk"], "seconds": docs[0]["risk"]["seconds"]}
    assert docs[0]["scenarios"] == docs[1]["scenarios"]


def test_unknown_builtin_scenario_exits_2_with_the_nearest_name() -> None:
    res = runner.invoke(app, ["stress", STARTUP, "--scenario", "builtin:n-1-awz",
                              "--samples", "0"])
    assert res.exit_code == EXIT_INVALID
    assert "n-1-awz" in res.output and "n-1-aws" in res.output


def test_bad_scenario_file_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "scen.yaml"
    bad.write_text("scenarios:\n  - name: x\n    events:\n"
                   "      - {kind: outage, provider: awz, start: 0, hours: 24}\n")
    res = runner.invoke(app, ["stress", STARTUP, "--scenario", str(bad), "--samples", "0"])
    assert res.exit_code == EXIT_INVALID
    assert f"{bad}:4:" in res.output and "aws" in res.output


def test_a_plan_of_another_fleet_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", str(ROOT / "examples/enterprise-eu.yaml"), "--out",
                              str(plan), "--no-explain", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["stress", STARTUP, "--plan", str(plan), "--scenario",
                              "builtin:n-1-aws", "--samples", "0"])
    assert res.exit_code == EXIT_INVALID
    assert "plan" in res.output.lower()


def test_not_a_plan_file_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"name": "x"}')
    res = runner.invoke(app, ["stress", STARTUP, "--plan", str(plan), "--samples", "0"])
    assert res.exit_code == EXIT_INVALID
    assert "not a plan.json" in " ".join(res.output.split())


def _risk_doc(tmp_path: Path, model: str | None, name: str) -> dict[str, object]:
    out = tmp_path / f"{name}.json"
    args = ["stress", STARTUP, "--scenario", "builtin:n-1-oci", "--samples", "512",
            "--no-replan", "--no-hedge-value", "--out", str(out), "-q"]
    if model is not None:
        path = tmp_path / f"{name}.yaml"
        path.write_text(model)
        args += ["--risk-model", str(path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    risk = json.loads(out.read_text())["risk"]
    assert isinstance(risk, dict)
    return risk


def test_risk_model_overrides_change_the_numbers(tmp_path: Path) -> None:
    base = _risk_doc(tmp_path, None, "base")
    calm = _risk_doc(tmp_path, """availability:
  region: {outages_per_year: 0}
  provider: {outages_per_year: 0}
  spot: {preemption_rate_per_hour: 0}
""", "calm")
    stormy = _risk_doc(tmp_path, """availability:
  regions:
    oci/us-ashburn-1: {outages_per_year: 40, median_hours: 48}
""", "stormy")
    assert calm["extra_cost_usd"]["mean"] <= base["extra_cost_usd"]["mean"]
    assert stormy["lost_chip_hours"]["mean"] > base["lost_chip_hours"]["mean"]
    scopes = {m["scope"]: m for m in stormy["model"]}
    assert scopes["region:oci/us-ashburn-1"]["source"] == "override"
    assert scopes["region:oci/us-ashburn-1"]["outages_per_year"] == 40
    assert scopes["region:aws/us-east-1"]["source"].startswith("default")


def test_risk_model_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "risk.yaml"
    bad.write_text("availability:\n  regions:\n    oci/us-ashburn-9: {outages_per_year: 2}\n"
                   "  provider: {outages_per_yeer: 1}\n")
    res = runner.invoke(app, ["stress", STARTUP, "--scenario", "builtin:n-1-oci",
                              "--risk-model", str(bad), "--no-replan", "--no-hedge-value"])
    assert res.exit_code == EXIT_INVALID
    text = " ".join(res.output.split())
    assert f"{bad}:4:" in text and "outages_per_yeer" in text
    bad.write_text("availability:\n  regions:\n    oci/us-ashburn-9: {outages_per_year: 2}\n")
    res = runner.invoke(app, ["stress", STARTUP, "--scenario", "builtin:n-1-oci",
                              "--risk-model", str(bad), "--no-replan", "--no-hedge-value"])
    assert res.exit_code == EXIT_INVALID
    text = " ".join(res.output.split())
    assert f"{bad}:3:" in text and "oci/us-ashburn-1" in text
