"""The SkyPilot importer, on small realistic vms.csv fixtures with the known oddities."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloudhedge.catalog import (
    ImportResult,
    Offer,
    import_skypilot,
    load_builtin,
    load_offers_csv,
    write_offers_csv,
)
from cloudhedge.core.errors import CatalogError

FIXTURES = Path(__file__).parent / "fixtures" / "skypilot"


@pytest.fixture(scope="module")
def result() -> ImportResult:
    return import_skypilot(FIXTURES)


@pytest.fixture(scope="module")
def offers(result: ImportResult) -> dict[tuple[str, str, str], Offer]:
    return {(o.provider, o.region, o.instance_type): o for o in result.offers}


def _skipped(result: ImportResult, cloud: str) -> dict[int, str]:
    return {line: reason for f, line, reason in result.skipped if f.endswith(f"{cloud}/vms.csv")}


def test_imports_every_cloud_and_maps_accelerators(
    offers: dict[tuple[str, str, str], Offer],
) -> None:
    assert {p for p, _, _ in offers} == {"aws", "azure", "gcp", "oci"}
    expected = {
        ("aws", "us-east-1", "p5.48xlarge"): ("h100", 8),
        ("aws", "us-east-2", "p6-b200.48xlarge"): ("b200", 8),
        ("aws", "ap-south-1", "p5en.48xlarge"): ("h200", 8),
        ("aws", "us-east-1", "p4de.24xlarge"): ("a100", 8),
        ("aws", "us-east-1", "trn1.32xlarge"): ("trn1", 16),
        ("aws", "us-east-2", "trn2.48xlarge"): ("trn2", 16),
        ("aws", "us-east-1", "inf2.48xlarge"): ("inf2", 12),
        ("gcp", "us-central1", "tpu-v5p-8"): ("tpu-v5p", 4),
        ("gcp", "us-west4", "tpu-v5litepod-8"): ("tpu-v5e", 8),
        ("gcp", "us-east5", "tpu-v6e-8"): ("tpu-v6e", 8),
        ("gcp", "us-central1", "a2-ultragpu-8g"): ("a100", 8),
        ("oci", "us-ashburn-1", "BM.GPU.GB200.4"): ("gb200", 4),
        ("oci", "eu-frankfurt-1", "BM.GPU.MI300X.8"): ("mi300x", 8),
        ("azure", "eastus", "Standard_ND96amsr_A100_v4"): ("a100", 8),
    }
    for key, (accelerator, chips) in expected.items():
        assert (offers[key].accelerator, offers[key].chips_per_instance) == (accelerator, chips)
    known = set(load_builtin().accelerators)
    assert all(o.accelerator in known for o in offers.values())


def test_minimum_over_zones_per_chip(offers: dict[tuple[str, str, str], Offer]) -> None:
    west = offers[("aws", "us-west-2", "p5.48xlarge")]
    assert west.on_demand_usd_per_chip_hour == pytest.approx(55.04 / 8)
    assert west.spot_usd_per_chip_hour == pytest.approx(12.6935 / 8)  # zone b, not a (13.5012)
    assert "spot_from_local_zone" not in west.flags
    east = offers[("aws", "us-east-1", "p5.48xlarge")]
    assert east.spot_usd_per_chip_hour == pytest.approx(10.2397 / 8)  # us-east-1-atl-2a
    assert "spot_from_local_zone" in east.flags
    v5e = offers[("gcp", "us-west4", "tpu-v5litepod-8")]
    assert (v5e.on_demand_usd_per_chip_hour, v5e.spot_usd_per_chip_hour) == (9.6 / 8, 3.5 / 8)
    tpu = offers[("gcp", "us-central1", "tpu-v5p-8")]
    assert tpu.on_demand_usd_per_chip_hour == pytest.approx(16.8 / 4)


def test_gcp_gpu_component_plus_host_in_same_zone(
    offers: dict[tuple[str, str, str], Offer],
) -> None:
    h100 = offers[("gcp", "us-central1", "a3-highgpu-8g")]
    assert h100.on_demand_usd_per_chip_hour == pytest.approx((33.60609 + 9.46006) / 8)
    assert h100.spot_usd_per_chip_hour == pytest.approx((22.11001 + 2.17547) / 8)  # zone b
    assert h100.flags == ()
    eu = offers[("gcp", "europe-west4", "a3-highgpu-8g")]
    assert eu.on_demand_usd_per_chip_hour == pytest.approx((101.88413 + 9.93306) / 8)
    a100 = offers[("gcp", "us-central1", "a2-ultragpu-8g")]
    assert a100.on_demand_usd_per_chip_hour == pytest.approx((31.252 + 8.79698) / 8)


def test_gcp_gpu_without_host_is_flagged_component_only(
    offers: dict[tuple[str, str, str], Offer],
) -> None:
    asia = offers[("gcp", "asia-south1", "a3-highgpu-8g")]
    assert asia.flags == ("gpu_component_price_only",)
    assert asia.on_demand_usd_per_chip_hour == pytest.approx(81.50728 / 8)


def test_placeholder_700_is_skipped_with_reason(
    result: ImportResult, offers: dict[tuple[str, str, str], Offer]
) -> None:
    assert ("gcp", "europe-west4", "tpu-v5p-8") not in offers
    assert "placeholder price 700.0" in _skipped(result, "gcp")[15]
    assert not any(
        o.on_demand_usd_per_chip_hour is not None
        and o.on_demand_usd_per_chip_hour * o.chips_per_instance == 700.0
        for o in offers.values()
    )


def test_unknown_and_40gb_accelerators_are_skipped_with_reasons(result: ImportResult) -> None:
    aws = _skipped(result, "aws")
    assert "A100 40GB" in aws[12]  # p4d.24xlarge
    assert "Inferentia (inf1)" in aws[17]
    assert "'A10G' is not in the catalog" in aws[18]
    assert "Price 'N/A' is not a number" in aws[8]
    gcp = _skipped(result, "gcp")
    assert "'L4'" in gcp[13] and "'tpu-v4-8'" in gcp[19] and "A100 40GB" in gcp[12]
    assert "'T4'" in _skipped(result, "azure")[8]
    assert "'A10'" in _skipped(result, "oci")[11]
    # CPU-only rows and GCP host VMs are not offers and not reported as skipped
    assert 2 not in aws and 2 not in gcp and 3 not in gcp
    assert len(result.skipped) == 12


def test_spot_equal_to_on_demand_and_missing_on_demand(
    offers: dict[tuple[str, str, str], Offer],
) -> None:
    azure = offers[("azure", "eastus", "Standard_ND96isr_H100_v5")]
    assert azure.chips_per_instance == 8  # the source says 12
    assert azure.on_demand_usd_per_chip_hour == pytest.approx(98.32 / 8)
    assert azure.spot_usd_per_chip_hour is None
    assert set(azure.flags) == {"spot_equals_on_demand", "chip_count_corrected"}
    h200 = offers[("aws", "ap-south-1", "p5en.48xlarge")]
    assert h200.spot_usd_per_chip_hour is None and "spot_equals_on_demand" in h200.flags
    a100 = offers[("azure", "eastus", "Standard_ND96amsr_A100_v4")]
    assert a100.spot_usd_per_chip_hour == pytest.approx(3.6047 / 8) and a100.flags == ()
    trn2 = offers[("aws", "us-east-2", "trn2.48xlarge")]
    assert trn2.on_demand_usd_per_chip_hour is None
    assert trn2.spot_usd_per_chip_hour == pytest.approx(23.0631 / 16)
    assert trn2.flags == ("no_on_demand_price",)
    v6e = offers[("gcp", "us-east5", "tpu-v6e-8")]
    assert v6e.spot_usd_per_chip_hour is None and v6e.flags == ()


def test_oci_offers_flag_unverified_availability(
    offers: dict[tuple[str, str, str], Offer],
) -> None:
    oci = [o for o in offers.values() if o.provider == "oci"]
    assert oci and all("availability_unverified" in o.flags for o in oci)
    assert all(o.spot_usd_per_chip_hour is None for o in oci)
    assert offers[("oci", "us-ashburn-1", "BM.GPU.H100.8")].on_demand_usd_per_chip_hour == 10.0


def test_source_names_the_file(offers: dict[tuple[str, str, str], Offer]) -> None:
    assert offers[("aws", "us-east-1", "p5.48xlarge")].source == "skypilot-catalog aws/vms.csv"


def test_versioned_layout_and_single_file(tmp_path: Path) -> None:
    versioned = tmp_path / "catalogs" / "v8"
    shutil.copytree(FIXTURES, versioned)
    full = import_skypilot(versioned)
    assert full.offers[0].source.startswith("skypilot-catalog catalogs/v8/")
    single = import_skypilot(versioned / "oci" / "vms.csv")
    assert {o.provider for o in single.offers} == {"oci"}
    assert single.offers[0].source == "skypilot-catalog catalogs/v8/oci/vms.csv"


def test_import_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such SkyPilot catalog folder"):
        import_skypilot(tmp_path / "absent")
    with pytest.raises(CatalogError, match=r"no <cloud>/vms\.csv found"):
        import_skypilot(tmp_path)
    stray = tmp_path / "lambda" / "vms.csv"
    stray.parent.mkdir()
    stray.write_text("InstanceType\n")
    with pytest.raises(CatalogError, match="folder named one of"):
        import_skypilot(stray)
    bad = tmp_path / "aws" / "vms.csv"
    bad.parent.mkdir()
    bad.write_text("InstanceType,AcceleratorName,Price\np5.48xlarge,H100,55.04\n")
    with pytest.raises(CatalogError, match=r"aws/vms\.csv:1: missing column\(s\) AcceleratorCount"):
        import_skypilot(tmp_path)


def test_imported_offers_round_trip_and_merge(result: ImportResult, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    write_offers_csv(result.offers, path)
    loaded = load_offers_csv(path)
    assert loaded == result.offers
    merged = load_builtin().with_offers(loaded)
    new_region = merged.region("oci", "xx-newregion-1")
    assert new_region is not None and new_region.jurisdiction == "unknown"
    price = merged.price("aws", "us-east-2", "trn2", "spot")
    assert price is not None and price[1].startswith("skypilot-catalog aws/vms.csv")
