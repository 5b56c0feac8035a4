"""``cloudhedge catalog``: browse accelerators and price offers; import a SkyPilot catalog.

Contract: ``app`` is a typer sub-app (mounted as ``catalog`` by the main CLI).

- ``cloudhedge catalog [filters] [--prices FILE] [--format table|json] [--sort price]``
  (same as ``cloudhedge catalog list``) prints the offers that match; ``--prices`` merges
  an imported price file over the built-in data. Unknown prices print as ``unknown`` in
  a table and ``null`` in JSON, never as 0.
- ``cloudhedge catalog import --skypilot DIR [--out FILE]`` writes a price file and
  reports the rows it skipped, with reasons.
- ``cloudhedge catalog accelerators`` lists accelerators with their throughput and
  relative-speed figures and whether each is measured or modelled.

Errors (:class:`~cloudhedge.core.errors.CatalogError`) print to stderr; exit code 1.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cloudhedge.catalog import (
    Catalog,
    Offer,
    import_skypilot,
    load_builtin,
    load_offers_csv,
    write_offers_csv,
)
from cloudhedge.core.errors import CatalogError

app = typer.Typer(
    help="Accelerators, regions and prices: list offers, import a SkyPilot catalog.",
    no_args_is_help=False,
)

UNKNOWN = "unknown"
_OFFER_COLUMNS = (
    "provider",
    "region",
    "jurisdiction",
    "accelerator",
    "vendor",
    "instance type",
    "chips",
    "on-demand $/chip-h",
    "spot $/chip-h",
    "source",
    "flags",
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class TierChoice(StrEnum):
    on_demand = "on_demand"
    spot = "spot"


class SortKey(StrEnum):
    provider = "provider"
    price = "price"


ProviderOpt = Annotated[str | None, typer.Option("--provider", "-p", help="Provider, e.g. aws.")]
AcceleratorOpt = Annotated[
    str | None, typer.Option("--accelerator", "-a", help="Accelerator, e.g. h100.")
]
VendorOpt = Annotated[str | None, typer.Option("--vendor", help="Chip vendor, e.g. nvidia.")]
RegionOpt = Annotated[str | None, typer.Option("--region", "-r", help="Region name.")]
JurisdictionOpt = Annotated[
    str | None, typer.Option("--jurisdiction", "-j", help="Jurisdiction, e.g. us, eu.")
]
TierOpt = Annotated[
    TierChoice | None, typer.Option("--tier", help="Only offers with a known price in this tier.")
]
PricesOpt = Annotated[
    Path | None,
    typer.Option("--prices", help="An imported price file, merged over the built-in prices."),
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")]
SortOpt = Annotated[
    SortKey, typer.Option("--sort", help="provider (default) or price (cheapest first).")
]


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(stderr=stderr, width=220)
    return console


def _fail(message: str) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=1)


def _usd(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.4f}"


def _catalog(prices: Path | None) -> Catalog:
    catalog = load_builtin()
    if prices is not None:
        catalog = catalog.with_offers(load_offers_csv(prices))
    return catalog


def _offer_json(catalog: Catalog, offer: Offer) -> dict[str, Any]:
    acc = catalog.accelerators.get(offer.accelerator)
    return {
        "provider": offer.provider,
        "region": offer.region,
        "jurisdiction": catalog.jurisdiction(offer.provider, offer.region),
        "accelerator": offer.accelerator,
        "vendor": acc.vendor if acc else None,
        "instance_type": offer.instance_type,
        "chips_per_instance": offer.chips_per_instance,
        "on_demand_usd_per_chip_hour": offer.on_demand_usd_per_chip_hour,
        "spot_usd_per_chip_hour": offer.spot_usd_per_chip_hour,
        "source": offer.source,
        "flags": list(offer.flags),
    }


def _list(
    *,
    provider: str | None,
    accelerator: str | None,
    vendor: str | None,
    region: str | None,
    jurisdiction: str | None,
    tier: TierChoice | None,
    prices: Path | None,
    output: OutputFormat,
    sort: SortKey,
) -> None:
    try:
        catalog = _catalog(prices)
        offers = catalog.find(
            provider=provider,
            region=region,
            accelerator=accelerator,
            vendor=vendor,
            jurisdiction=jurisdiction,
            tier=tier.value if tier else None,
        )
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    if sort is SortKey.price:
        price_tier = tier.value if tier else "on_demand"

        def key(o: Offer) -> tuple[bool, float, tuple[str, str, str, str]]:
            value = o.price(price_tier)
            return (value is None, value or 0.0, o.key)

        offers.sort(key=key)
    if output is OutputFormat.json:
        typer.echo(json.dumps([_offer_json(catalog, o) for o in offers], indent=2))
        return
    console = _console()
    if not offers:
        console.print("no offers match.", highlight=False)
        regions = [name for (p, name) in catalog.regions if p == provider]
        if regions and not catalog.find(provider=provider):
            console.print(
                f"{provider}: {len(regions)} region(s) known, no public price in the catalog; "
                "give assumed prices in the fleet spec or import a price file (--prices).",
                highlight=False,
            )
        return
    table = Table(title="catalog offers (USD per chip-hour)", header_style="bold")
    for name in _OFFER_COLUMNS:
        right = name in ("chips", "on-demand $/chip-h", "spot $/chip-h")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "flags")
    for o in offers:
        row = _offer_json(catalog, o)
        table.add_row(
            o.provider,
            o.region,
            row["jurisdiction"],
            o.accelerator,
            row["vendor"] or "?",
            o.instance_type,
            str(o.chips_per_instance),
            _usd(o.on_demand_usd_per_chip_hour),
            _usd(o.spot_usd_per_chip_hour),
            o.source,
            ", ".join(o.flags),
        )
    console.print(table)
    console.print(
        f"{len(offers)} offer(s). 'unknown' = the source gives no price.", highlight=False
    )


@app.callback(invoke_without_command=True)
def catalog_main(
    ctx: typer.Context,
    provider: ProviderOpt = None,
    accelerator: AcceleratorOpt = None,
    vendor: VendorOpt = None,
    region: RegionOpt = None,
    jurisdiction: JurisdictionOpt = None,
    tier: TierOpt = None,
    prices: PricesOpt = None,
    output: FormatOpt = OutputFormat.table,
    sort: SortOpt = SortKey.provider,
) -> None:
    """List catalog offers (same as ``catalog list``) unless a subcommand is given."""
    if ctx.invoked_subcommand is not None:
        return
    _list(
        provider=provider,
        accelerator=accelerator,
        vendor=vendor,
        region=region,
        jurisdiction=jurisdiction,
        tier=tier,
        prices=prices,
        output=output,
        sort=sort,
    )


@app.command("list")
def list_cmd(
    provider: ProviderOpt = None,
    accelerator: AcceleratorOpt = None,
    vendor: VendorOpt = None,
    region: RegionOpt = None,
    jurisdiction: JurisdictionOpt = None,
    tier: TierOpt = None,
    prices: PricesOpt = None,
    output: FormatOpt = OutputFormat.table,
    sort: SortOpt = SortKey.provider,
) -> None:
    """List price offers (per chip-hour), filtered; unknown prices show as 'unknown'."""
    _list(
        provider=provider,
        accelerator=accelerator,
        vendor=vendor,
        region=region,
        jurisdiction=jurisdiction,
        tier=tier,
        prices=prices,
        output=output,
        sort=sort,
    )


@app.command("import")
def import_cmd(
    skypilot: Annotated[
        Path,
        typer.Option(
            "--skypilot", help="A SkyPilot catalog folder holding <cloud>/vms.csv (or a vms.csv)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Price file to write.")] = Path(
        "prices.csv"
    ),
) -> None:
    """Import a SkyPilot catalog into a price file usable with --prices and fleet specs."""
    try:
        result = import_skypilot(skypilot)
        write_offers_csv(result.offers, out)
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        raise _fail(f"{out}: cannot write: {exc.strerror or exc}") from exc
    console = _console()
    per_provider = Counter(o.provider for o in result.offers)
    detail = ", ".join(f"{p} {n}" for p, n in sorted(per_provider.items())) or "none"
    console.print(
        f"imported {len(result.offers)} offer(s) ({detail}) from {skypilot} -> {out}",
        highlight=False,
    )
    if not result.skipped:
        console.print("skipped rows: none", highlight=False)
        return
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for file, line, reason in result.skipped:
        groups[(file, reason)].append(line)
    table = Table(title=f"skipped rows: {len(result.skipped)}", header_style="bold")
    table.add_column("file")
    table.add_column("lines")
    table.add_column("rows", justify="right")
    table.add_column("reason")
    for (file, reason), lines in sorted(groups.items(), key=lambda g: (g[0][0], g[1][0])):
        shown = ", ".join(str(n) for n in lines[:8]) + (", ..." if len(lines) > 8 else "")
        table.add_row(file, shown, str(len(lines)), reason)
    console.print(table)


@app.command("accelerators")
def accelerators_cmd(output: FormatOpt = OutputFormat.table) -> None:
    """List accelerators with throughput (Llama-2-70B) and training speed vs h100."""
    try:
        catalog = load_builtin()
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    rows: list[dict[str, Any]] = []
    for name, acc in catalog.accelerators.items():
        tput, speed = catalog.throughput.get(name), catalog.relative_speed.get(name)
        rows.append(
            {
                "accelerator": name,
                "vendor": acc.vendor,
                "stack": acc.stack,
                "memory_gib": acc.memory_gib,
                "memory_tb_per_s": acc.memory_tb_per_s,
                "bf16_dense_tflops": acc.bf16_dense_tflops,
                "tokens_per_s_per_chip": tput.value if tput else None,
                "throughput_kind": tput.kind if tput else None,
                "throughput_source": tput.source if tput else None,
                "relative_speed": speed.value if speed else None,
                "relative_speed_kind": speed.kind if speed else None,
                "relative_speed_source": speed.source if speed else None,
            }
        )
    if output is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        title=f"accelerators (throughput: Llama-2-70B, {catalog.reference_model_params_b:g}B "
        "params; speed: training vs h100)",
        header_style="bold",
    )
    for name in (
        "accelerator",
        "vendor",
        "stack",
        "memory GiB",
        "HBM TB/s",
        "bf16 TFLOPS",
        "tokens/s/chip",
        "kind",
        "speed vs h100",
        "kind ",
    ):
        right = name not in ("accelerator", "vendor", "stack", "kind", "kind ")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for r in rows:
        table.add_row(
            r["accelerator"],
            r["vendor"],
            r["stack"],
            f"{r['memory_gib']:g}",
            f"{r['memory_tb_per_s']:g}",
            f"{r['bf16_dense_tflops']:g}",
            UNKNOWN if r["tokens_per_s_per_chip"] is None else f"{r['tokens_per_s_per_chip']:,.0f}",
            r["throughput_kind"] or UNKNOWN,
            UNKNOWN if r["relative_speed"] is None else f"{r['relative_speed']:.3f}",
            r["relative_speed_kind"] or UNKNOWN,
        )
    console = _console()
    console.print(table)
    console.print(
        "modelled = not measured: see catalog/data/SOURCES.md for the rule of each figure.",
        highlight=False,
    )
