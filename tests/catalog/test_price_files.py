"""The price-file format: write/load round trip and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudhedge.catalog import Offer, load_offers_csv, write_offers_csv
from cloudhedge.catalog.catalog import PRICE_COLUMNS
from cloudhedge.core.errors import CatalogError

HEADER = ",".join(PRICE_COLUMNS)
GOOD = "aws,us-east-1,p5.48xlarge,h100,8,55.04,10.2397,6.88,1.2799625,src,spot_from_local_zone"

OFFERS = [
    Offer("aws", "us-east-1", "h100", "p5.48xlarge", 8, 6.88, 1.2799625, "src a", ("x", "y")),
    Offer("aws", "us-east-2", "trn2", "trn2.48xlarge", 16, None, 1.44144375, "src b"),
    Offer("coreweave", "us-east-04", "gb200", "gb200-4x", 4, None, None, "assumed, with comma"),
    Offer("gcp", "us-central1", "tpu-v5e", "tpu-v5litepod-8", 8, 1.2, 0.1 + 0.2, "src c"),
]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    write_offers_csv(OFFERS, path)
    assert load_offers_csv(path) == OFFERS
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[2].startswith("aws,us-east-2,trn2.48xlarge,trn2,16,,23.0631,,1.44144375,")


def test_load_accepts_per_instance_only_and_missing_flags(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "provider,region,instance_type,accelerator,chips_per_instance,"
        "on_demand_usd_per_instance_hour,on_demand_usd_per_chip_hour,spot_usd_per_chip_hour,source\n"
        "oci,us-ashburn-1,BM.GPU.H100.8,h100,8,80,,,mine\n"
    )
    (offer,) = load_offers_csv(path)
    assert offer.on_demand_usd_per_chip_hour == 10.0
    assert offer.spot_usd_per_chip_hour is None and offer.flags == ()


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("aws,us-east-1,p5.48xlarge,h100,8,55.04,,cheap,,src,", "is not a number"),
        ("aws,us-east-1,p5.48xlarge,h100,eight,55.04,,6.88,,src,", "not an integer"),
        ("aws,us-east-1,p5.48xlarge,h100,0,55.04,,6.88,,src,", "must be positive"),
        ("aws,us-east-1,p5.48xlarge,h100,8,55.04,,-1,,src,", "non-negative"),
        ("aws,us-east-1,p5.48xlarge,h100,8,55.04,,7.5,,src,", "!= per-instance price"),
        (",us-east-1,p5.48xlarge,h100,8,55.04,,6.88,,src,", "provider is empty"),
        ("aws,us-east-1,p5.48xlarge,h100,8", "wrong number of fields"),
        (GOOD, "duplicate offer aws/us-east-1/h100/p5.48xlarge"),
    ],
)
def test_load_error_names_file_and_line(tmp_path: Path, bad_row: str, message: str) -> None:
    path = tmp_path / "imported.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{bad_row}\n")
    with pytest.raises(CatalogError) as err:
        load_offers_csv(path)
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)


def test_load_missing_column_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("provider,region\naws,us-east-1\n")
    with pytest.raises(CatalogError, match=r"p\.csv:1: missing column\(s\) instance_type"):
        load_offers_csv(path)
    with pytest.raises(CatalogError, match="cannot read price file"):
        load_offers_csv(tmp_path / "absent.csv")
