"""Build the shipped ``prices.csv`` from the shared, collapsed price list.

Contract: ``python -m cloudhedge.catalog.build_data SHARED_CSV OUT_CSV`` reads a CSV with
columns ``provider,region,instance_type,accelerator,chips_per_instance,
on_demand_usd_per_instance_hour,spot_usd_per_instance_hour,source_file`` (one row per
provider, region and instance type; prices per instance-hour in USD, empty when unknown)
and writes the catalog's price file (:data:`cloudhedge.catalog.catalog.PRICE_COLUMNS`):

- per-instance prices are kept verbatim; per-chip prices are ``instance / chips``,
  rounded to 6 decimals; an empty price stays empty (never invented);
- ``source`` is the row's ``source_file``;
- ``flags`` (``;``-separated) records every oddity that ``data/README.md`` describes:

  ``spot_equals_on_demand``
      the source's spot price equals its on-demand price (Azure always, some AWS rows);
      such a spot price is not a spot price: it is written as unknown (empty).
  ``no_on_demand_price``
      the source has no on-demand price (AWS trn2, trn1 in some regions).
  ``gcp_h100_low_level_suspicious``
      a GCP H100 row on the low price level (host + GPUs below
      :data:`GCP_H100_SUSPICIOUS_BELOW_USD_PER_CHIP_HOUR`), kept but not trusted.
  ``spot_from_local_zone``
      AWS us-east-1 p5 / p6-b200: the lowest spot price comes from a Local Zone.
  ``chip_count_corrected``
      Azure ND96isr_H100_v5: the source says 12 GPUs, the real count (8) is used.
  ``availability_unverified``
      OCI lists every shape in every region: a row does not prove the shape is offered.
  ``a100_40gb_variant``
      AWS p4d.24xlarge carries A100 40GB GPUs, not the 80GB part of ``accelerators.csv``.

Rows are sorted by provider, region, accelerator and instance type, so that the output
is reproducible byte for byte.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from cloudhedge.catalog.catalog import FLAG_SEPARATOR, PRICE_COLUMNS
from cloudhedge.core.errors import CatalogError

logger = logging.getLogger(__name__)

SHARED_COLUMNS = (
    "provider",
    "region",
    "instance_type",
    "accelerator",
    "chips_per_instance",
    "on_demand_usd_per_instance_hour",
    "spot_usd_per_instance_hour",
    "source_file",
)

# GCP a3-highgpu-8g has two on-demand levels: host + GPUs at about 5.4-5.7 USD per
# GPU-hour (GPU component about 4.20) and about 11-14 USD elsewhere (GPU 9.80-12.74).
GCP_H100_SUSPICIOUS_BELOW_USD_PER_CHIP_HOUR = 7.0

_LOCAL_ZONE_SPOT = {("aws", "us-east-1", "p5.48xlarge"), ("aws", "us-east-1", "p6-b200.48xlarge")}
_CHIP_COUNT_CORRECTED = {("azure", "Standard_ND96isr_H100_v5")}
_A100_40GB = {("aws", "p4d.24xlarge")}


def _price(text: str, where: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CatalogError(f"{where}: price {text!r} is not a number") from None
    if value < 0:
        raise CatalogError(f"{where}: price {text!r} is negative")
    return value


def _per_chip(value: float | None, chips: int) -> str:
    return "" if value is None else repr(round(value / chips, 6))


def build_row(row: dict[str, str], where: str) -> dict[str, str]:
    """One shared row -> one ``prices.csv`` row (per-chip prices, source, flags)."""
    provider, region, itype = row["provider"], row["region"], row["instance_type"]
    try:
        chips = int(row["chips_per_instance"])
    except ValueError:
        raise CatalogError(f"{where}: chips_per_instance {row['chips_per_instance']!r}") from None
    if chips <= 0:
        raise CatalogError(f"{where}: chips_per_instance must be positive")
    od_text = row["on_demand_usd_per_instance_hour"].strip()
    spot_text = row["spot_usd_per_instance_hour"].strip()
    od = _price(od_text, where)
    spot = _price(spot_text, where)
    flags: list[str] = []
    if od is None:
        flags.append("no_on_demand_price")
    if spot is not None and od is not None and spot == od:
        flags.append("spot_equals_on_demand")
        spot, spot_text = None, ""
    if (
        provider == "gcp"
        and row["accelerator"] == "h100"
        and od is not None
        and od / chips < GCP_H100_SUSPICIOUS_BELOW_USD_PER_CHIP_HOUR
    ):
        flags.append("gcp_h100_low_level_suspicious")
    if (provider, region, itype) in _LOCAL_ZONE_SPOT and spot is not None:
        flags.append("spot_from_local_zone")
    if (provider, itype) in _CHIP_COUNT_CORRECTED:
        flags.append("chip_count_corrected")
    if (provider, itype) in _A100_40GB:
        flags.append("a100_40gb_variant")
    if provider == "oci":
        flags.append("availability_unverified")
    return {
        "provider": provider,
        "region": region,
        "instance_type": itype,
        "accelerator": row["accelerator"],
        "chips_per_instance": str(chips),
        "on_demand_usd_per_instance_hour": od_text,
        "spot_usd_per_instance_hour": spot_text,
        "on_demand_usd_per_chip_hour": _per_chip(od, chips),
        "spot_usd_per_chip_hour": _per_chip(spot, chips),
        "source": row["source_file"],
        "flags": FLAG_SEPARATOR.join(flags),
    }


def build(shared_csv: Path, out_csv: Path) -> int:
    """Write ``out_csv`` from ``shared_csv``; return the number of rows written."""
    with shared_csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in SHARED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise CatalogError(f"{shared_csv}: missing columns {', '.join(missing)}")
        rows = [build_row(r, f"{shared_csv}:{reader.line_num}") for r in reader]
    rows.sort(key=lambda r: (r["provider"], r["region"], r["accelerator"], r["instance_type"]))
    with out_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=PRICE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    logger.info("wrote %d rows to %s", len(rows), out_csv)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; messages go through :mod:`logging` (to stderr)."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(args) != 2:
        logger.error("usage: python -m cloudhedge.catalog.build_data SHARED_CSV OUT_CSV")
        return 2
    try:
        build(Path(args[0]), Path(args[1]))
    except (CatalogError, OSError) as exc:
        logger.error("error: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
