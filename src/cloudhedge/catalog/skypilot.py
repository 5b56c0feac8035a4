"""Import accelerator offers from a SkyPilot catalog (``<cloud>/vms.csv``, schema v6-v8).

Contract: :func:`import_skypilot` reads ``<dir>/<cloud>/vms.csv`` for cloud in aws, azure,
gcp, oci (or one ``vms.csv`` whose folder is named after its cloud) and returns an
:class:`ImportResult`: one :class:`~cloudhedge.catalog.catalog.Offer` per (provider, region,
instance type), with the minimum price over zones, per chip; and every accelerator row it
did not take, as ``(file, line, reason)``. Rows without an accelerator (CPU-only machines,
GCP host VMs) are not offers and are not reported.

Column layouts (``shared/data/README.md``):

- aws: ``InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,
  SpotPrice,Region,AvailabilityZone,Arch``; oci: the same without ``Arch``;
- gcp: ``InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,
  AvailabilityZone,Price,SpotPrice``. TPU and GPU rows have an empty ``InstanceType``. A
  TPU row prices a whole slice (``tpu-v5p-8`` is 4 chips: v5p names count TensorCores).
  A GPU row prices ``AcceleratorCount`` GPUs as a component: the matching host VM row
  (e.g. ``a3-highgpu-8g`` for 8 H100) in the same zone is added; without one, the offer
  is kept with flag ``gpu_component_price_only``;
- azure: ``InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,
  SpotPrice,Region,Generation`` (no zones).

Oddities are skipped or flagged, never taken at face value:

- GCP 700.0 prices are placeholders for unavailable regions: row skipped;
- no on-demand price: kept (spot only), flag ``no_on_demand_price``;
- spot equal to on-demand (Azure, some AWS zones): that spot is unknown; if no zone has a
  real spot price, flag ``spot_equals_on_demand``;
- AWS: the lowest spot price comes from a Local Zone: flag ``spot_from_local_zone``;
- Azure ND96isr_H100_v5 is listed with 12 GPUs; 8 is used, flag ``chip_count_corrected``;
- OCI lists every shape everywhere: flag ``availability_unverified``;
- accelerators the catalog does not know (T4, L4, A100 40GB, Inferentia 1, ...): skipped.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cloudhedge.catalog.catalog import Offer
from cloudhedge.core.errors import CatalogError

logger = logging.getLogger(__name__)

CLOUDS = ("aws", "azure", "gcp", "oci")

# Columns the importer reads (others, e.g. vCPUs, GpuInfo, Arch, Generation, are ignored).
_BASE_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "SpotPrice")
_COLUMNS: dict[str, tuple[str, ...]] = {
    "aws": (*_BASE_COLUMNS, "Region", "AvailabilityZone"),
    "oci": (*_BASE_COLUMNS, "Region", "AvailabilityZone"),
    "gcp": (*_BASE_COLUMNS, "Region", "AvailabilityZone"),
    "azure": (*_BASE_COLUMNS, "Region"),
}

# SkyPilot accelerator name -> catalog accelerator (names compared case-insensitively).
_GPU_NAMES = {
    "h100": "h100",
    "h100-mega": "h100",
    "h200": "h200",
    "b200": "b200",
    "gb200": "gb200",
    "a100-80gb": "a100",
    "mi300x": "mi300x",
    "inferentia2": "inf2",
}
_SKIP_REASONS = {
    "a100": "A100 40GB: the catalog's a100 is the 80GB part",
    "inferentia": "Inferentia (inf1) is not in the catalog",
}
_TRAINIUM_FAMILIES = {"trn1": "trn1", "trn1n": "trn1", "trn2": "trn2", "trn2u": "trn2"}
# TPU name prefix -> (accelerator, TensorCores per chip): v5p-N has N cores, N/2 chips.
_TPU_PREFIXES = {
    "tpu-v5litepod-": ("tpu-v5e", 1),
    "tpu-v5p-": ("tpu-v5p", 2),
    "tpu-v6e-": ("tpu-v6e", 1),
}
# (provider, instance type) -> real chip count, where SkyPilot's count is wrong.
_CHIP_COUNT_FIXES = {("azure", "Standard_ND96isr_H100_v5"): 8}
GCP_PLACEHOLDER_PRICE = 700.0


@dataclass(frozen=True)
class ImportResult:
    """Offers imported, and accelerator rows skipped as ``(file, line, reason)``."""

    offers: list[Offer]
    skipped: list[tuple[str, int, str]]


@dataclass
class _Obs:
    """One priced row in one zone (after host addition for GCP GPUs)."""

    on_demand: float | None
    spot: float | None
    spot_equal: bool
    zone: str
    flags: set[str] = field(default_factory=set)


@dataclass
class _Group:
    provider: str
    region: str
    accelerator: str
    instance_type: str
    chips: int
    source: str
    observations: list[_Obs] = field(default_factory=list)


def _files(directory: Path) -> list[tuple[str, Path]]:
    path = Path(directory)
    if path.is_file():
        cloud = path.parent.name.lower()
        if path.name != "vms.csv" or cloud not in CLOUDS:
            raise CatalogError(
                f"{path}: expected a vms.csv inside a folder named one of {', '.join(CLOUDS)}"
            )
        return [(cloud, path)]
    if not path.is_dir():
        raise CatalogError(f"{path}: no such SkyPilot catalog folder")
    found = [(c, path / c / "vms.csv") for c in CLOUDS if (path / c / "vms.csv").is_file()]
    if not found:
        raise CatalogError(f"{path}: no <cloud>/vms.csv found (looked for {', '.join(CLOUDS)})")
    return found


def _source(cloud: str, path: Path) -> str:
    parts = path.resolve().parts
    if "catalogs" in parts:
        rel = "/".join(parts[len(parts) - parts[::-1].index("catalogs") - 1 :])
        return f"skypilot-catalog {rel}"
    return f"skypilot-catalog {cloud}/vms.csv"


class _Skip(Exception):
    """A row is not taken; the message is the reason."""


def _price(text: str, what: str) -> float | None:
    text = text.strip()
    if not text or text.lower() == "nan":
        return None
    try:
        value = float(text)
    except ValueError:
        raise _Skip(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _Skip(f"{what} {text!r} is not a finite, non-negative number")
    return value


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise _Skip(f"AcceleratorCount {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0 or value != int(value):
        raise _Skip(f"AcceleratorCount {text!r} is not a positive integer")
    return int(value)


def _map_accelerator(name: str, instance_type: str) -> str:
    key = name.strip().lower()
    if key in _GPU_NAMES:
        return _GPU_NAMES[key]
    if key in ("trainium", "trainium2"):
        family = instance_type.split(".", 1)[0].lower()
        if family in _TRAINIUM_FAMILIES:
            return _TRAINIUM_FAMILIES[family]
        raise _Skip(f"Trainium on unknown instance family {family!r}")
    if key in _SKIP_REASONS:
        raise _Skip(_SKIP_REASONS[key])
    raise _Skip(f"accelerator {name!r} is not in the catalog")


def _tpu(name: str) -> tuple[str, int]:
    """TPU slice name -> (accelerator, chips)."""
    for prefix, (accelerator, cores_per_chip) in _TPU_PREFIXES.items():
        if name.startswith(prefix):
            size = name[len(prefix) :]
            if not size.isdigit() or int(size) % cores_per_chip:
                raise _Skip(f"TPU slice {name!r}: cannot read its size")
            return accelerator, int(size) // cores_per_chip
    raise _Skip(f"TPU {name!r} is not in the catalog")


def _gcp_host(accelerator_name: str, count: int) -> str | None:
    """The GCP host machine type a GPU component row belongs to, if known."""
    key = accelerator_name.lower()
    if key == "h100" and count in (1, 2, 4, 8):
        return f"a3-highgpu-{count}g"
    if key == "a100-80gb" and count in (1, 2, 4, 8):
        return f"a2-ultragpu-{count}g"
    return {
        ("h100-mega", 8): "a3-megagpu-8g",
        ("h200", 8): "a3-ultragpu-8g",
        ("b200", 8): "a4-highgpu-8g",
    }.get((key, count))


def _read(path: Path, cloud: str) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _COLUMNS[cloud] if c not in (reader.fieldnames or ())]
        if missing:
            raise CatalogError(f"{path}:1: missing column(s) {', '.join(missing)} for {cloud}")
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def _is_local_zone(region: str, zone: str) -> bool:
    return bool(zone) and re.fullmatch(re.escape(region) + r"[a-z]", zone) is None


class _Importer:
    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str, str], _Group] = {}
        self.skipped: list[tuple[str, int, str]] = []

    def add(
        self,
        cloud: str,
        source: str,
        region: str,
        itype: str,
        accelerator: str,
        chips: int,
        obs: _Obs,
    ) -> None:
        key = (cloud, region, accelerator, itype)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(cloud, region, accelerator, itype, chips, source)
        elif group.chips != chips:
            raise _Skip(f"{itype} listed with {chips} chips here, {group.chips} elsewhere")
        group.observations.append(obs)

    def observe(self, cloud: str, row: dict[str, str], chips: int, region: str) -> _Obs:
        od = _price(row["Price"], "Price")
        spot = _price(row["SpotPrice"], "SpotPrice")
        if cloud == "gcp" and GCP_PLACEHOLDER_PRICE in (od, spot):
            raise _Skip(f"placeholder price {GCP_PLACEHOLDER_PRICE} (region not available)")
        equal = spot is not None and od is not None and spot == od
        zone = row.get("AvailabilityZone", "")
        obs = _Obs(od, None if equal else spot, equal, zone)
        if cloud == "aws" and _is_local_zone(region, zone):
            obs.flags.add("spot_from_local_zone")
        return obs

    def read_file(self, cloud: str, path: Path) -> None:
        source = _source(cloud, path)
        rows = list(_read(path, cloud))
        hosts: dict[tuple[str, str, str], tuple[float | None, float | None]] = {}
        if cloud == "gcp":
            for _, row in rows:
                if row["InstanceType"] and not row["AcceleratorName"]:
                    try:
                        hosts[(row["Region"], row["AvailabilityZone"], row["InstanceType"])] = (
                            _price(row["Price"], "Price"),
                            _price(row["SpotPrice"], "SpotPrice"),
                        )
                    except _Skip:
                        continue
        for line, row in rows:
            if not row["AcceleratorName"]:
                continue  # CPU-only machine or GCP host VM: not an offer by itself
            try:
                self._row(cloud, source, row, hosts)
            except _Skip as reason:
                self.skipped.append((str(path), line, str(reason)))

    def _row(
        self,
        cloud: str,
        source: str,
        row: dict[str, str],
        hosts: dict[tuple[str, str, str], tuple[float | None, float | None]],
    ) -> None:
        name, itype, region = row["AcceleratorName"], row["InstanceType"], row["Region"]
        if not region:
            raise _Skip("Region is empty")
        if cloud == "gcp" and not itype and name.lower().startswith("tpu-"):
            accelerator, chips = _tpu(name)
            self.add(
                cloud,
                source,
                region,
                name,
                accelerator,
                chips,
                self.observe(cloud, row, chips, region),
            )
            return
        accelerator = _map_accelerator(name, itype)
        chips = _count(row["AcceleratorCount"])
        obs = self.observe(cloud, row, chips, region)
        if cloud == "gcp" and not itype:
            itype, obs = self._gcp_component(row, name, chips, obs, hosts)
        if not itype:
            raise _Skip("InstanceType is empty")
        fixed = _CHIP_COUNT_FIXES.get((cloud, itype))
        if fixed is not None and fixed != chips:
            chips = fixed
            obs.flags.add("chip_count_corrected")
        self.add(cloud, source, region, itype, accelerator, chips, obs)

    @staticmethod
    def _gcp_component(
        row: dict[str, str],
        name: str,
        count: int,
        obs: _Obs,
        hosts: dict[tuple[str, str, str], tuple[float | None, float | None]],
    ) -> tuple[str, _Obs]:
        host_type = _gcp_host(name, count)
        host = hosts.get((row["Region"], obs.zone, host_type)) if host_type else None
        if host_type is None or host is None:
            obs.flags.add("gpu_component_price_only")
            return host_type or f"{name} x{count} (accelerator only)", obs
        host_od, host_spot = host
        od = None if obs.on_demand is None or host_od is None else obs.on_demand + host_od
        spot = None if obs.spot is None or host_spot is None else obs.spot + host_spot
        return host_type, _Obs(od, spot, obs.spot_equal, obs.zone, obs.flags)

    def offers(self) -> list[Offer]:
        out: list[Offer] = []
        for group in self.groups.values():
            obs = group.observations
            full = [o for o in obs if "gpu_component_price_only" not in o.flags]
            if full and len(full) < len(obs):
                obs = full  # a zone with host + GPUs beats a GPU-only component price
            ods = [o.on_demand for o in obs if o.on_demand is not None]
            spots = [o for o in obs if o.spot is not None]
            flags: set[str] = set()
            for o in obs:
                flags |= o.flags - {"spot_from_local_zone"}
            best_spot = min(spots, key=lambda o: o.spot or 0.0) if spots else None
            if best_spot is not None and "spot_from_local_zone" in best_spot.flags:
                flags.add("spot_from_local_zone")
            if not ods:
                flags.add("no_on_demand_price")
            if best_spot is None and any(o.spot_equal for o in obs):
                flags.add("spot_equals_on_demand")
            if group.provider == "oci":
                flags.add("availability_unverified")
            out.append(
                Offer(
                    provider=group.provider,
                    region=group.region,
                    accelerator=group.accelerator,
                    instance_type=group.instance_type,
                    chips_per_instance=group.chips,
                    on_demand_usd_per_chip_hour=min(ods) / group.chips if ods else None,
                    spot_usd_per_chip_hour=(
                        best_spot.spot / group.chips
                        if best_spot is not None and best_spot.spot is not None
                        else None
                    ),
                    source=group.source,
                    flags=tuple(sorted(flags)),
                )
            )
        out.sort(key=lambda o: o.key)
        return out


def import_skypilot(directory: Path) -> ImportResult:
    """Read SkyPilot ``vms.csv`` files under ``directory`` (see the module docstring).

    Raises :class:`CatalogError` when no file is found or a file lacks its columns.
    """
    importer = _Importer()
    for cloud, path in _files(Path(directory)):
        try:
            importer.read_file(cloud, path)
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    offers = importer.offers()
    logger.info("imported %d offers, skipped %d rows", len(offers), len(importer.skipped))
    return ImportResult(offers=offers, skipped=importer.skipped)
