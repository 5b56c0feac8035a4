"""The built-in catalog: coverage, figures, regions, prices and flags, checked against the data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import cloudhedge.catalog as catalog_pkg
from cloudhedge.catalog import Catalog, Offer, load_builtin
from cloudhedge.catalog.build_data import build, build_row
from cloudhedge.core.errors import CatalogError

REPO = Path(__file__).resolve().parents[2]
SHARED_PRICES = REPO.parent / "shared" / "data" / "catalog-prices.csv"
SHIPPED_PRICES = REPO / "src" / "cloudhedge" / "catalog" / "data" / "prices.csv"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_builtin()


def _offer(cat: Catalog, provider: str, region: str, instance_type: str) -> Offer:
    found = [
        o for o in cat.find(provider=provider, region=region) if o.instance_type == instance_type
    ]
    assert len(found) == 1, found
    return found[0]


def test_public_api_is_exactly_the_curated_names() -> None:
    assert sorted(catalog_pkg.__all__) == [
        "Catalog",
        "Figure",
        "ImportResult",
        "Offer",
        "Region",
        "import_skypilot",
        "load_builtin",
        "load_offers_csv",
        "write_offers_csv",
    ]


def test_load_builtin_is_cached(cat: Catalog) -> None:
    assert load_builtin() is cat


def test_at_least_five_providers_and_ten_accelerators(cat: Catalog) -> None:
    assert {"aws", "azure", "coreweave", "gcp", "oci"} <= set(cat.providers)
    assert cat.providers == tuple(sorted(cat.providers))
    assert len(cat.accelerators) >= 10
    for name in ("h100", "h200", "b200", "gb200", "a100", "trn1", "trn2", "inf2"):
        assert name in cat.accelerators
    assert cat.accelerators["tpu-v6e"].vendor == "google"
    assert cat.accelerators["mi300x"].stack == "rocm"
    assert cat.reference_model_params_b == 70.0


def test_every_accelerator_has_throughput_and_speed_with_kind(cat: Catalog) -> None:
    for name in cat.accelerators:
        for figures in (cat.throughput, cat.relative_speed):
            fig = figures[name]
            assert fig.accelerator == name
            assert fig.kind in ("measured", "modelled")
            assert fig.value > 0
            assert fig.source


def test_measured_throughput_is_the_mlperf_figure(cat: Catalog) -> None:
    measured = {n: f.value for n, f in cat.throughput.items() if f.kind == "measured"}
    assert measured == {"h100": 3066, "h200": 3913, "b200": 11264, "mi300x": 2939}


def test_modelled_throughput_scales_by_hbm_bandwidth(cat: Catalog) -> None:
    h100 = cat.accelerators["h100"]
    for name in ("a100", "trn1", "trn2", "inf2", "tpu-v5e", "tpu-v5p", "tpu-v6e"):
        fig = cat.throughput[name]
        assert fig.kind == "modelled"
        expected = 3066 * cat.accelerators[name].memory_tb_per_s / h100.memory_tb_per_s
        assert fig.value == pytest.approx(expected, abs=0.05), name
    gb200 = cat.throughput["gb200"]
    assert gb200.kind == "modelled" and "b200" in gb200.source
    ratio = cat.accelerators["gb200"].memory_tb_per_s / cat.accelerators["b200"].memory_tb_per_s
    assert gb200.value == pytest.approx(11264 * ratio)


def test_relative_speed_is_modelled_from_tflops(cat: Catalog) -> None:
    for name, acc in cat.accelerators.items():
        fig = cat.relative_speed[name]
        assert fig.kind == "modelled"
        assert fig.value == pytest.approx(acc.bf16_dense_tflops / 989, abs=1e-4)
    assert cat.relative_speed["h100"].value == 1.0


def test_every_priced_region_has_a_known_jurisdiction(cat: Catalog) -> None:
    priced = {(o.provider, o.region) for o in cat.offers}
    assert len(priced) == 87
    for key in priced:
        region = cat.regions[key]
        assert region.jurisdiction != "unknown" and region.source and region.location


@pytest.mark.parametrize(
    ("provider", "region", "jurisdiction"),
    [
        ("aws", "eu-central-1", "eu"),
        ("aws", "eu-west-2", "uk"),
        ("aws", "ap-northeast-1", "jp"),
        ("gcp", "europe-west4", "eu"),
        ("gcp", "asia-east1", "tw"),
        ("oci", "eu-zurich-1", "ch"),
        ("oci", "uk-london-1", "uk"),
        ("oci", "me-riyadh-1", "sa"),
        ("azure", "eastus", "us"),
        ("azure", "westeurope", "eu"),
        ("azure", "uksouth", "uk"),
        ("coreweave", "eu-south-03", "eu"),
    ],
)
def test_jurisdictions(cat: Catalog, provider: str, region: str, jurisdiction: str) -> None:
    found = cat.region(provider, region)
    assert found is not None and found.jurisdiction == jurisdiction


def test_regions_examples_need_exist_without_prices(cat: Catalog) -> None:
    for provider, region in [
        ("azure", "swedencentral"),
        ("azure", "northeurope"),
        ("azure", "francecentral"),
        ("aws", "eu-west-1"),
        ("aws", "eu-north-1"),
        ("coreweave", "us-east-04"),
        ("coreweave", "us-central-07"),
        ("coreweave", "us-west-09"),
    ]:
        assert cat.region(provider, region) is not None, (provider, region)
    for (provider, _), known in cat.regions.items():
        if provider == "coreweave":
            assert known.source.startswith("assumed:")
    assert cat.region("aws", "nowhere-1") is None
    assert cat.jurisdiction("aws", "nowhere-1") == "unknown"


def test_unknown_prices_are_none_never_zero(cat: Catalog) -> None:
    assert cat.price("aws", "us-east-2", "trn2", "on_demand") is None
    spot = cat.price("aws", "us-east-2", "trn2", "spot")
    assert spot is not None and spot[0] == pytest.approx(23.0631 / 16, abs=1e-6)
    for region in ("us-east-04", "us-central-07", "us-west-09", "eu-south-03"):
        for acc in cat.accelerators:
            for tier in ("on_demand", "spot", "committed"):
                assert cat.price("coreweave", region, acc, tier) is None
    assert cat.price("aws", "us-east-1", "h100", "committed") is None
    for offer in cat.offers:
        assert offer.on_demand_usd_per_chip_hour != 0 and offer.spot_usd_per_chip_hour != 0


def test_per_chip_price_is_instance_price_over_chips(cat: Catalog) -> None:
    # shared/data/catalog-prices.csv: aws,us-east-1,p5.48xlarge,h100,8,55.04,10.2397
    p5 = _offer(cat, "aws", "us-east-1", "p5.48xlarge")
    assert p5.chips_per_instance == 8
    assert p5.on_demand_usd_per_chip_hour == pytest.approx(55.04 / 8)
    assert p5.spot_usd_per_chip_hour == pytest.approx(10.2397 / 8, abs=1e-6)
    # gcp,europe-west1,tpu-v5p-8,tpu-v5p,4,17.83782,7.13513
    tpu = _offer(cat, "gcp", "europe-west1", "tpu-v5p-8")
    assert tpu.on_demand_usd_per_chip_hour == pytest.approx(17.83782 / 4, abs=1e-6)
    price = cat.price("aws", "us-east-1", "h100", "on_demand")
    assert price is not None
    assert price[0] == pytest.approx(6.88)
    assert "catalogs/v8/aws/vms.csv" in price[1] and "p5.48xlarge" in price[1]


def test_azure_spot_equal_to_on_demand_is_unknown_and_flagged(cat: Catalog) -> None:
    h100 = cat.find(provider="azure", accelerator="h100")
    assert h100
    for offer in h100:
        assert offer.spot_usd_per_chip_hour is None
        assert "spot_equals_on_demand" in offer.flags
        assert "chip_count_corrected" in offer.flags
    assert cat.price("azure", "eastus", "h100", "spot") is None
    eastus = cat.price("azure", "eastus", "h100", "on_demand")
    assert eastus is not None and eastus[0] == pytest.approx(98.32 / 8)
    # AWS rows where spot == on-demand get the same treatment
    ap = _offer(cat, "aws", "ap-south-1", "p4d.24xlarge")
    assert ap.spot_usd_per_chip_hour is None and "spot_equals_on_demand" in ap.flags


def test_other_oddities_are_flagged(cat: Catalog) -> None:
    suspicious = "gcp_h100_low_level_suspicious"
    assert suspicious in _offer(cat, "gcp", "us-central1", "a3-highgpu-8g").flags
    assert suspicious not in _offer(cat, "gcp", "europe-west4", "a3-highgpu-8g").flags
    assert "no_on_demand_price" in _offer(cat, "aws", "us-east-2", "trn2.48xlarge").flags
    assert "spot_from_local_zone" in _offer(cat, "aws", "us-east-1", "p5.48xlarge").flags
    assert all("availability_unverified" in o.flags for o in cat.find(provider="oci"))
    price = cat.price("gcp", "us-central1", "h100", "on_demand")
    assert price is not None and "gcp_h100_low_level_suspicious" in price[1]


def test_find_filters(cat: Catalog) -> None:
    google = cat.find(vendor="google")
    assert google and {o.provider for o in google} == {"gcp"}
    eu = cat.find(jurisdiction="eu", accelerator="h100")
    assert eu and all(cat.jurisdiction(o.provider, o.region) == "eu" for o in eu)
    spot = cat.find(provider="aws", tier="spot")
    assert spot and all(o.spot_usd_per_chip_hour is not None for o in spot)
    assert len(spot) < len(cat.find(provider="aws"))
    assert cat.find(tier="committed") == []
    with pytest.raises(CatalogError, match="unknown tier"):
        cat.find(tier="reserved")
    with pytest.raises(CatalogError, match="unknown tier"):
        cat.price("aws", "us-east-1", "h100", "reserved")


def _new(**kw: object) -> Offer:
    base: dict[str, object] = {
        "provider": "aws",
        "region": "us-east-1",
        "accelerator": "h100",
        "instance_type": "p5.48xlarge",
        "chips_per_instance": 8,
        "on_demand_usd_per_chip_hour": 4.0,
        "spot_usd_per_chip_hour": None,
        "source": "test",
    }
    base.update(kw)
    return Offer(**base)  # type: ignore[arg-type]


def test_with_offers_replaces_same_key_and_keeps_builtin_untouched(cat: Catalog) -> None:
    merged = cat.with_offers([_new()])
    assert merged is not cat and len(merged.offers) == len(cat.offers)
    assert merged.price("aws", "us-east-1", "h100", "on_demand") == (4.0, "test (p5.48xlarge)")
    assert merged.price("aws", "us-east-1", "h100", "spot") is None  # new offer has no spot
    kept = cat.with_offers([_new()], replace=False)
    assert kept.price("aws", "us-east-1", "h100", "on_demand") == cat.price(
        "aws", "us-east-1", "h100", "on_demand"
    )
    original = cat.price("aws", "us-east-1", "h100", "on_demand")  # the built-in is unchanged
    assert original is not None and original[0] == pytest.approx(6.88)


def test_with_offers_price_is_cheapest_instance_type(cat: Catalog) -> None:
    merged = cat.with_offers([_new(instance_type="p5.4xlarge", chips_per_instance=1)])
    assert len(merged.offers) == len(cat.offers) + 1
    price = merged.price("aws", "us-east-1", "h100", "on_demand")
    assert price == (4.0, "test (p5.4xlarge)")
    spot = merged.price("aws", "us-east-1", "h100", "spot")
    assert spot is not None and "p5.48xlarge" in spot[1]


def test_with_offers_new_region_and_unknown_accelerator(cat: Catalog) -> None:
    merged = cat.with_offers([_new(provider="lambda", region="us-tx-1")])
    region = merged.region("lambda", "us-tx-1")
    assert region is not None and region.jurisdiction == "unknown"
    assert "lambda" in merged.providers and "lambda" not in cat.providers
    with pytest.raises(CatalogError, match="unknown accelerator 'x9'"):
        cat.with_offers([_new(accelerator="x9")])


def test_build_row_flags_and_per_chip() -> None:
    row = {
        "provider": "aws",
        "region": "ca-central-1",
        "instance_type": "p5.48xlarge",
        "accelerator": "h100",
        "chips_per_instance": "8",
        "on_demand_usd_per_instance_hour": "63.296",
        "spot_usd_per_instance_hour": "63.296",
        "source_file": "src",
    }
    out = build_row(row, "x:2")
    assert out["on_demand_usd_per_chip_hour"] == "7.912"
    assert out["spot_usd_per_chip_hour"] == "" and out["spot_usd_per_instance_hour"] == ""
    assert out["flags"] == "spot_equals_on_demand"
    out = build_row(row | {"on_demand_usd_per_instance_hour": "", "chips_per_instance": "16"}, "x")
    assert out["on_demand_usd_per_chip_hour"] == "" and out["flags"] == "no_on_demand_price"
    assert out["spot_usd_per_chip_hour"] == "3.956"
    with pytest.raises(CatalogError, match="x:3"):
        build_row(row | {"spot_usd_per_instance_hour": "cheap"}, "x:3")


@pytest.mark.skipif(not SHARED_PRICES.is_file(), reason="shared/data not beside the repository")
def test_shipped_prices_csv_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "prices.csv"
    assert build(SHARED_PRICES, out) == 376
    assert out.read_bytes() == SHIPPED_PRICES.read_bytes()


def test_shipped_prices_csv_has_all_376_rows() -> None:
    with SHIPPED_PRICES.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 376
    assert {r["provider"] for r in rows} == {"aws", "azure", "gcp", "oci"}
