"""The catalog: accelerators, regions, price offers and performance figures, as values.

Contract:

- :func:`load_builtin` reads the package data (``catalog/data/*.csv``, described in
  ``data/SOURCES.md``) once and returns a checked, read-only :class:`Catalog`.
- Prices are per chip-hour in USD. An unknown price is ``None``, never ``0``: the catalog
  never invents a price. :meth:`Catalog.price` answers ``None`` when it does not know.
- Every figure (throughput, relative speed) says whether it is ``measured`` or
  ``modelled`` and where it comes from.
- :func:`load_offers_csv` / :func:`write_offers_csv` read and write the price-file
  format (:data:`PRICE_COLUMNS`) that ``prices.csv`` and the SkyPilot importer use;
  bad rows raise :class:`~cloudhedge.core.errors.CatalogError` naming ``file:line``.

This module does no printing; it logs through ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cloudhedge.core.errors import CatalogError
from cloudhedge.core.models import Accelerator

logger = logging.getLogger(__name__)

TIERS = ("committed", "on_demand", "spot")
KINDS = ("measured", "modelled")
UNKNOWN_JURISDICTION = "unknown"
FLAG_SEPARATOR = ";"

PRICE_COLUMNS = (
    "provider",
    "region",
    "instance_type",
    "accelerator",
    "chips_per_instance",
    "on_demand_usd_per_instance_hour",
    "spot_usd_per_instance_hour",
    "on_demand_usd_per_chip_hour",
    "spot_usd_per_chip_hour",
    "source",
    "flags",
)
"""Columns of a price file (``prices.csv``; what the importer writes), in order."""
# per-instance prices and flags are optional when reading
_REQUIRED_PRICE_COLUMNS = tuple(
    c for c in PRICE_COLUMNS if not c.endswith("instance_hour") and c != "flags"
)
_ACCELERATOR_NUMBERS = ("memory_gib", "memory_tb_per_s", "bf16_dense_tflops")
_ACCELERATOR_COLUMNS = ("accelerator", "vendor", "stack", "source", *_ACCELERATOR_NUMBERS)
_REGION_COLUMNS = ("provider", "region", "jurisdiction", "location", "source")
_THROUGHPUT_COLUMNS = ("accelerator", "tokens_per_s_per_chip", "kind", "source")
_SPEED_COLUMNS = ("accelerator", "relative_speed", "kind", "source")
# per-chip and per-instance prices may disagree by rounding (6 decimals) only
_PRICE_TOLERANCE_USD = 1e-4


@dataclass(frozen=True)
class Region:
    """A provider's region and the jurisdiction its data sits in (``us``, ``eu``, ...)."""

    provider: str
    name: str
    jurisdiction: str
    location: str
    source: str


@dataclass(frozen=True)
class Offer:
    """One instance type of one accelerator, listed in one region, with per-chip prices."""

    provider: str
    region: str
    accelerator: str
    instance_type: str
    chips_per_instance: int
    on_demand_usd_per_chip_hour: float | None
    spot_usd_per_chip_hour: float | None
    source: str
    flags: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity of an offer: (provider, region, accelerator, instance_type)."""
        return (self.provider, self.region, self.accelerator, self.instance_type)

    def price(self, tier: str) -> float | None:
        """Per-chip price of a tier (``None`` when unknown; always for ``committed``)."""
        _check_tier(tier)
        if tier == "on_demand":
            return self.on_demand_usd_per_chip_hour
        if tier == "spot":
            return self.spot_usd_per_chip_hour
        return None


@dataclass(frozen=True)
class Figure:
    """A throughput or relative-speed figure, ``measured`` or ``modelled``, with its source."""

    accelerator: str
    value: float
    kind: str  # "measured" | "modelled"
    source: str


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise CatalogError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")


@dataclass(frozen=True)
class Catalog:
    """Everything the planner and the spec need to know about the market. Read-only.

    ``throughput`` is LLM inference tokens/s per chip for the reference model
    (Llama-2-70B, ``reference_model_params_b`` billion parameters); ``relative_speed`` is
    training speed relative to h100 (= 1.0).
    """

    accelerators: dict[str, Accelerator]
    regions: dict[tuple[str, str], Region]
    offers: tuple[Offer, ...]
    throughput: dict[str, Figure]
    relative_speed: dict[str, Figure]
    reference_model_params_b: float = 70.0
    _by_triple: dict[tuple[str, str, str], tuple[Offer, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[tuple[str, str, str], list[Offer]] = {}
        for offer in self.offers:
            index.setdefault((offer.provider, offer.region, offer.accelerator), []).append(offer)
        object.__setattr__(self, "_by_triple", {k: tuple(v) for k, v in index.items()})

    @property
    def providers(self) -> tuple[str, ...]:
        """Every provider with a region or an offer, sorted."""
        names = {p for p, _ in self.regions} | {o.provider for o in self.offers}
        return tuple(sorted(names))

    def region(self, provider: str, region: str) -> Region | None:
        return self.regions.get((provider, region))

    def jurisdiction(self, provider: str, region: str) -> str:
        """The region's jurisdiction, or ``"unknown"``."""
        found = self.regions.get((provider, region))
        return found.jurisdiction if found else UNKNOWN_JURISDICTION

    def price(
        self, provider: str, region: str, accelerator: str, tier: str
    ) -> tuple[float, str] | None:
        """Cheapest known per-chip price of a tier for (provider, region, accelerator).

        Returns ``(usd_per_chip_hour, source)`` where ``source`` names the price list,
        the instance type and any flags of the offer; ``None`` when no offer has a
        known price for the tier. The catalog has no committed prices: ``committed``
        always gives ``None``.
        """
        _check_tier(tier)
        best: tuple[float, Offer] | None = None
        for offer in self._by_triple.get((provider, region, accelerator), ()):
            value = offer.price(tier)
            if value is not None and (best is None or value < best[0]):
                best = (value, offer)
        if best is None:
            return None
        value, offer = best
        source = f"{offer.source} ({offer.instance_type}"
        if offer.flags:
            source += "; flags: " + ", ".join(offer.flags)
        return value, source + ")"

    def find(
        self,
        *,
        provider: str | None = None,
        region: str | None = None,
        accelerator: str | None = None,
        vendor: str | None = None,
        jurisdiction: str | None = None,
        tier: str | None = None,
    ) -> list[Offer]:
        """Offers matching every given filter, in catalog order.

        ``tier`` keeps offers with a known price in that tier (none for ``committed``).
        """
        if tier is not None:
            _check_tier(tier)

        def keep(o: Offer) -> bool:
            acc = self.accelerators.get(o.accelerator)
            where = self.jurisdiction(o.provider, o.region)
            return (
                (provider is None or o.provider == provider)
                and (region is None or o.region == region)
                and (accelerator is None or o.accelerator == accelerator)
                and (vendor is None or (acc is not None and acc.vendor == vendor))
                and (jurisdiction is None or where == jurisdiction)
                and (tier is None or o.price(tier) is not None)
            )

        return [o for o in self.offers if keep(o)]

    def with_offers(self, offers: Iterable[Offer], replace: bool = True) -> Catalog:
        """A new catalog with ``offers`` merged in.

        An offer replaces the existing one with the same (provider, region, accelerator,
        instance_type) when ``replace`` is true; when false, existing offers win and the
        new ones only fill gaps. A region not in the catalog is added with jurisdiction
        ``"unknown"``. An accelerator not in the catalog raises :class:`CatalogError`.
        """
        merged: dict[tuple[str, str, str, str], Offer] = {o.key: o for o in self.offers}
        regions = dict(self.regions)
        for offer in offers:
            if offer.accelerator not in self.accelerators:
                raise CatalogError(
                    f"offer {offer.provider}/{offer.region}/{offer.instance_type}: "
                    f"unknown accelerator {offer.accelerator!r}"
                )
            if replace or offer.key not in merged:
                merged[offer.key] = offer
            if (offer.provider, offer.region) not in regions:
                regions[(offer.provider, offer.region)] = Region(
                    offer.provider,
                    offer.region,
                    UNKNOWN_JURISDICTION,
                    "",
                    f"not in the built-in catalog; region of an imported offer ({offer.source})",
                )
        return Catalog(
            accelerators=self.accelerators,
            regions=regions,
            offers=tuple(sorted(merged.values(), key=lambda o: o.key)),
            throughput=self.throughput,
            relative_speed=self.relative_speed,
            reference_model_params_b=self.reference_model_params_b,
        )


# ---------------------------------------------------------------------------- reading CSV


def _rows(text: str, name: str, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)``; raise CatalogError when a required column is missing."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
        raise CatalogError(f"{name}:1: missing column(s) {', '.join(missing)}")
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise CatalogError(f"{name}:{reader.line_num}: wrong number of fields")
        yield reader.line_num, {k: v.strip() for k, v in row.items()}


def _number(text: str, where: str, what: str, *, optional: bool = False) -> float | None:
    if not text:
        if optional:
            return None
        raise CatalogError(f"{where}: {what} is empty")
    try:
        value = float(text)
    except ValueError:
        raise CatalogError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise CatalogError(f"{where}: {what} {text!r} must be a finite, non-negative number")
    return value


def _required(text: str, where: str, what: str) -> float:
    value = _number(text, where, what)
    assert value is not None  # _number raises on empty when not optional
    return value


def _offer_from_row(row: dict[str, str], where: str) -> Offer:
    for key in ("provider", "region", "instance_type", "accelerator", "source"):
        if not row[key]:
            raise CatalogError(f"{where}: {key} is empty")
    try:
        chips = int(row["chips_per_instance"])
    except ValueError:
        raise CatalogError(
            f"{where}: chips_per_instance {row['chips_per_instance']!r} is not an integer"
        ) from None
    if chips <= 0:
        raise CatalogError(f"{where}: chips_per_instance must be positive, got {chips}")
    prices: dict[str, float | None] = {}
    for tier in ("on_demand", "spot"):
        per_chip = _number(
            row[f"{tier}_usd_per_chip_hour"], where, f"{tier} per-chip price", optional=True
        )
        per_instance = _number(
            row.get(f"{tier}_usd_per_instance_hour", ""),
            where,
            f"{tier} per-instance price",
            optional=True,
        )
        if per_chip is None and per_instance is not None:
            per_chip = per_instance / chips
        elif (
            per_chip is not None
            and per_instance is not None
            and abs(per_chip * chips - per_instance) > _PRICE_TOLERANCE_USD * chips
        ):
            raise CatalogError(
                f"{where}: {tier} per-chip price {per_chip} x {chips} chips != "
                f"per-instance price {per_instance}"
            )
        prices[tier] = per_chip
    flags = tuple(f for f in row.get("flags", "").split(FLAG_SEPARATOR) if f)
    return Offer(
        provider=row["provider"],
        region=row["region"],
        accelerator=row["accelerator"],
        instance_type=row["instance_type"],
        chips_per_instance=chips,
        on_demand_usd_per_chip_hour=prices["on_demand"],
        spot_usd_per_chip_hour=prices["spot"],
        source=row["source"],
        flags=flags,
    )


def _parse_offers(text: str, name: str) -> list[Offer]:
    offers: list[Offer] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for line, row in _rows(text, name, _REQUIRED_PRICE_COLUMNS):
        offer = _offer_from_row(row, f"{name}:{line}")
        if offer.key in seen:
            raise CatalogError(
                f"{name}:{line}: duplicate offer {'/'.join(offer.key)} "
                f"(first at line {seen[offer.key]})"
            )
        seen[offer.key] = line
        offers.append(offer)
    return offers


def load_offers_csv(path: Path) -> list[Offer]:
    """Read a price file (``prices.csv`` format, as the importer writes it).

    Per-chip columns are authoritative; per-instance columns are optional and, when both
    are given, must agree. Raises :class:`CatalogError` with ``file:line`` on a bad row.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read price file: {exc.strerror or exc}") from exc
    return _parse_offers(text, str(path))


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(value)


def write_offers_csv(offers: Iterable[Offer], path: Path) -> None:
    """Write offers in the price-file format (:data:`PRICE_COLUMNS`); unknown prices empty."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=PRICE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for o in offers:
            od, spot = o.on_demand_usd_per_chip_hour, o.spot_usd_per_chip_hour
            writer.writerow(
                {
                    "provider": o.provider,
                    "region": o.region,
                    "instance_type": o.instance_type,
                    "accelerator": o.accelerator,
                    "chips_per_instance": str(o.chips_per_instance),
                    "on_demand_usd_per_instance_hour": _fmt(
                        None if od is None else round(od * o.chips_per_instance, 6)
                    ),
                    "spot_usd_per_instance_hour": _fmt(
                        None if spot is None else round(spot * o.chips_per_instance, 6)
                    ),
                    "on_demand_usd_per_chip_hour": _fmt(od),
                    "spot_usd_per_chip_hour": _fmt(spot),
                    "source": o.source,
                    "flags": FLAG_SEPARATOR.join(o.flags),
                }
            )


# ------------------------------------------------------------------------ built-in data


def _read_data(name: str) -> str:
    try:
        return resources.files("cloudhedge.catalog").joinpath("data", name).read_text("utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise CatalogError(f"built-in catalog file {name} is missing: {exc}") from exc


def _parse_accelerators(text: str, name: str) -> dict[str, Accelerator]:
    out: dict[str, Accelerator] = {}
    for line, row in _rows(text, name, _ACCELERATOR_COLUMNS):
        where = f"{name}:{line}"
        out[row["accelerator"]] = Accelerator(
            name=row["accelerator"],
            vendor=row["vendor"],
            stack=row["stack"],
            memory_gib=_required(row["memory_gib"], where, "memory_gib"),
            memory_tb_per_s=_required(row["memory_tb_per_s"], where, "memory_tb_per_s"),
            bf16_dense_tflops=_required(row["bf16_dense_tflops"], where, "bf16_dense_tflops"),
            source=row["source"],
        )
    return out


def _parse_regions(text: str, name: str) -> dict[tuple[str, str], Region]:
    out: dict[tuple[str, str], Region] = {}
    for line, row in _rows(text, name, _REGION_COLUMNS):
        key = (row["provider"], row["region"])
        if key in out:
            raise CatalogError(f"{name}:{line}: duplicate region {key[0]}/{key[1]}")
        if not row["jurisdiction"]:
            raise CatalogError(f"{name}:{line}: jurisdiction is empty")
        out[key] = Region(key[0], key[1], row["jurisdiction"], row["location"], row["source"])
    return out


def _parse_figures(text: str, name: str, columns: tuple[str, ...]) -> dict[str, Figure]:
    value_column = columns[1]
    out: dict[str, Figure] = {}
    for line, row in _rows(text, name, columns):
        where = f"{name}:{line}"
        if row["kind"] not in KINDS:
            raise CatalogError(f"{where}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        if not row["source"]:
            raise CatalogError(f"{where}: source is empty")
        value = _required(row[value_column], where, value_column)
        out[row["accelerator"]] = Figure(row["accelerator"], value, row["kind"], row["source"])
    return out


def _check(catalog: Catalog) -> None:
    """Cross-file consistency of the built-in data; raise CatalogError on the first gap."""
    for offer in catalog.offers:
        where = f"prices.csv: {offer.provider}/{offer.region}/{offer.instance_type}"
        if offer.accelerator not in catalog.accelerators:
            raise CatalogError(f"{where}: unknown accelerator {offer.accelerator!r}")
        if (offer.provider, offer.region) not in catalog.regions:
            raise CatalogError(f"{where}: region not in regions.csv")
    for name in catalog.accelerators:
        if name not in catalog.throughput:
            raise CatalogError(f"throughput.csv: no figure for accelerator {name!r}")
        if name not in catalog.relative_speed:
            raise CatalogError(f"relative_speed.csv: no figure for accelerator {name!r}")


@functools.cache
def load_builtin() -> Catalog:
    """The built-in catalog (package data), read and checked once per process."""
    catalog = Catalog(
        accelerators=_parse_accelerators(_read_data("accelerators.csv"), "accelerators.csv"),
        regions=_parse_regions(_read_data("regions.csv"), "regions.csv"),
        offers=tuple(_parse_offers(_read_data("prices.csv"), "prices.csv")),
        throughput=_parse_figures(
            _read_data("throughput.csv"), "throughput.csv", _THROUGHPUT_COLUMNS
        ),
        relative_speed=_parse_figures(
            _read_data("relative_speed.csv"), "relative_speed.csv", _SPEED_COLUMNS
        ),
    )
    _check(catalog)
    logger.debug(
        "built-in catalog: %d accelerators, %d regions, %d offers",
        len(catalog.accelerators),
        len(catalog.regions),
        len(catalog.offers),
    )
    return catalog
