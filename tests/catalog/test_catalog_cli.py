"""``cloudhedge catalog``, mounted on a throwaway root app and driven through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from cloudhedge.catalog import load_offers_csv
from cloudhedge.cli.catalog_cmd import app as catalog_app

FIXTURES = Path(__file__).parent / "fixtures" / "skypilot"

root = typer.Typer()
root.add_typer(catalog_app, name="catalog")


@root.callback()
def _root() -> None:
    """Throwaway root, as the main CLI mounts the sub-app."""


runner = CliRunner()


def _json(*args: str) -> list[dict[str, Any]]:
    result = runner.invoke(root, ["catalog", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def test_json_filters_by_provider_accelerator_and_jurisdiction() -> None:
    rows = _json("--provider", "aws", "--accelerator", "h100")
    assert rows and {(r["provider"], r["accelerator"]) for r in rows} == {("aws", "h100")}
    assert set(rows[0]) >= {
        "region",
        "jurisdiction",
        "vendor",
        "instance_type",
        "chips_per_instance",
        "on_demand_usd_per_chip_hour",
        "spot_usd_per_chip_hour",
        "source",
        "flags",
    }
    eu = _json("--jurisdiction", "eu", "--vendor", "nvidia")
    assert eu and all(r["jurisdiction"] == "eu" and r["vendor"] == "nvidia" for r in eu)
    assert {r["provider"] for r in eu} == {"aws", "gcp", "oci"}
    google = _json("list", "--vendor", "google", "--region", "us-central1")
    assert {r["accelerator"] for r in google} == {"tpu-v5e", "tpu-v5p", "tpu-v6e"}


def test_json_unknown_prices_are_null_and_tier_filters() -> None:
    (trn2,) = _json("--provider", "aws", "--accelerator", "trn2")
    assert trn2["on_demand_usd_per_chip_hour"] is None
    assert trn2["spot_usd_per_chip_hour"] > 0
    assert "no_on_demand_price" in trn2["flags"]
    spot = _json("--provider", "azure", "--tier", "spot")
    assert spot and all(r["spot_usd_per_chip_hour"] is not None for r in spot)
    assert {r["accelerator"] for r in spot} == {"a100"}  # azure h100 spot is unknown


def test_sort_by_price_puts_cheapest_first_and_unknown_last() -> None:
    rows = _json("--accelerator", "h100", "--sort", "price")
    prices = [r["on_demand_usd_per_chip_hour"] for r in rows]
    known = [p for p in prices if p is not None]
    assert known == sorted(known)
    assert prices[: len(known)] == known


def test_table_shows_unknown_never_zero() -> None:
    result = runner.invoke(root, ["catalog", "--provider", "aws", "--accelerator", "trn2"])
    assert result.exit_code == 0, result.output
    assert "trn2.48xlarge" in result.stdout
    assert "unknown" in result.stdout
    assert "0.0000" not in result.stdout


def test_table_explains_provider_without_prices() -> None:
    result = runner.invoke(root, ["catalog", "--provider", "coreweave"])
    assert result.exit_code == 0, result.output
    assert "no offers match" in result.stdout
    assert "coreweave: 4 region(s) known, no public price" in result.stdout


def test_import_writes_prices_and_reports_skipped(tmp_path: Path) -> None:
    out = tmp_path / "prices.csv"
    result = runner.invoke(
        root, ["catalog", "import", "--skypilot", str(FIXTURES), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "imported 25 offer(s)" in result.stdout
    assert "skipped rows: 12" in result.stdout
    assert "placeholder price 700.0" in result.stdout
    assert len(load_offers_csv(out)) == 25
    merged = _json("--prices", str(out), "--provider", "oci", "--region", "xx-newregion-1")
    assert [(r["accelerator"], r["jurisdiction"]) for r in merged] == [("h200", "unknown")]


def test_import_and_prices_errors_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(root, ["catalog", "import", "--skypilot", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "no such SkyPilot catalog folder" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "provider,region,instance_type,accelerator,chips_per_instance,"
        "on_demand_usd_per_chip_hour,spot_usd_per_chip_hour,source\n"
        "aws,us-east-1,p5.48xlarge,h100,8,free,,me\n"
    )
    result = runner.invoke(root, ["catalog", "--prices", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2" in result.output.replace("\n", "")


def test_accelerators_lists_figures_with_kind() -> None:
    rows = _json("accelerators")
    assert len(rows) >= 10
    for r in rows:
        assert r["throughput_kind"] in ("measured", "modelled")
        assert r["relative_speed_kind"] == "modelled"
        assert r["tokens_per_s_per_chip"] > 0 and r["relative_speed"] > 0
    by_name = {r["accelerator"]: r for r in rows}
    assert by_name["h100"]["throughput_kind"] == "measured"
    assert by_name["trn2"]["throughput_kind"] == "modelled"
    table = runner.invoke(root, ["catalog", "accelerators"])
    assert table.exit_code == 0 and "modelled" in table.stdout and "tpu-v6e" in table.stdout
