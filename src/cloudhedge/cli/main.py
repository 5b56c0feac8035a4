"""``cloudhedge``: the command line.

Exit codes (documented in docs/outputs.md):

    0  ok
    2  invalid input (fleet spec, prices file, options)
    3  infeasible: the hard policies cannot all be met (the plan lists the conflicts)
    1  unexpected error
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console

from cloudhedge import __version__
from cloudhedge.catalog import Catalog, load_builtin, load_offers_csv
from cloudhedge.cli import control_cmd, gateway_cmd, stress_cmd
from cloudhedge.cli.catalog_cmd import app as catalog_app
from cloudhedge.core.errors import CatalogError, SpecError
from cloudhedge.core.plan import Plan

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3

app = typer.Typer(
    name="cloudhedge",
    help="The compute supply chain for AI: plan workloads across clouds and chips.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(catalog_app, name="catalog")
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"cloudhedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _catalog(prices: Path | None) -> Catalog:
    cat = load_builtin()
    if prices is not None:
        cat = cat.with_offers(load_offers_csv(prices))
    return cat


def _fail_input(exc: Exception) -> typer.Exit:
    if isinstance(exc, SpecError):
        err.print(f"[bold red]invalid input[/]: {len(exc.issues)} problem(s)")
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False, highlight=False)
    else:
        err.print(f"[bold red]invalid input[/]: {exc}")
    return typer.Exit(EXIT_INVALID)


PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        help="An imported prices CSV (cloudhedge catalog import) over the built-in one.",
        exists=True,
        dir_okay=False,
    ),
]


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Fleet spec (YAML).")],
    prices: PricesOpt = None,
) -> None:
    """Check a fleet spec: every error with file, line, column and field."""
    from cloudhedge.spec import load_fleet

    try:
        fleet = load_fleet(file, _catalog(prices))
    except (SpecError, CatalogError, FileNotFoundError) as exc:
        raise _fail_input(exc) from None
    out.print(
        f"[green]ok[/]: {file}: {len(fleet.pools)} pools, {len(fleet.contracts)} "
        f"contracts, {len(fleet.workload_names)} workloads, "
        f"{fleet.horizon.periods} periods"
    )
    for note in fleet.notes:
        out.print(f"  note: {note}", markup=False)


@app.command()
def plan(
    file: Annotated[Path, typer.Argument(help="Fleet spec (YAML).")],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write plan.json here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report here.")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", min=0.1, help="Solver time limit, seconds.")
    ] = None,
    gap: Annotated[
        float, typer.Option("--gap", min=0.0, max=1.0, help="Relative MIP gap to stop at.")
    ] = 0.005,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Solver threads.")] = None,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Compute the cost of each policy.")
    ] = True,
    prices: PricesOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No terminal summary.")] = False,
) -> None:
    """Plan a fleet: least-cost allocation that honours every hedge."""
    from cloudhedge.cli.report import write_report
    from cloudhedge.cli.summary import render_summary
    from cloudhedge.planning.planner import PlanOptions, make_plan
    from cloudhedge.planning.solve import SolveOptions
    from cloudhedge.spec import load_fleet

    try:
        fleet = load_fleet(file, _catalog(prices))
    except (SpecError, CatalogError, FileNotFoundError) as exc:
        raise _fail_input(exc) from None
    options = PlanOptions(
        solve=SolveOptions(time_limit_s=time_limit, gap=gap, threads=threads), explain=explain
    )
    with err.status("planning…", spinner="dots"):
        result = make_plan(fleet, options)
    if out_path is not None:
        out_path.write_text(result.model_dump_json(indent=1))
    if report is not None:
        write_report(result, report)
    if not quiet:
        render_summary(result, out)
        written = [str(p) for p in (out_path, report) if p is not None]
        if written:
            out.print(f"wrote {', '.join(written)}")
    if result.status == "infeasible":
        raise typer.Exit(EXIT_INFEASIBLE)


@app.command()
def schema(
    what: Annotated[
        str,
        typer.Argument(
            help="'plan' (plan.json), 'stress' (stress.json) or 'fleet' (the fleet spec)."
        ),
    ] = "plan",
) -> None:
    """Print a JSON Schema: of plan.json, of stress.json or of the fleet spec."""
    from cloudhedge.core.stress_report import StressReport
    from cloudhedge.spec.schema import FleetSpec

    models: dict[str, type[BaseModel]] = {
        "plan": Plan,
        "stress": StressReport,
        "fleet": FleetSpec,
    }
    if what not in models:
        err.print(f"[red]unknown schema '{what}'[/]: expected one of {', '.join(models)}")
        raise typer.Exit(EXIT_INVALID)
    sys.stdout.write(json.dumps(models[what].model_json_schema(by_alias=True), indent=2) + "\n")


app.command(name="stress")(stress_cmd.stress)
app.command(name="gateway")(gateway_cmd.gateway)
app.command(name="mock-upstream")(gateway_cmd.mock_upstream)
app.command(name="up")(control_cmd.up)
app.command(name="down")(control_cmd.down)
app.command(name="launch")(control_cmd.launch)
app.command(name="serve")(control_cmd.serve)
app.command(name="status")(control_cmd.status)
app.command(name="cancel")(control_cmd.cancel)
app.command(name="explain")(control_cmd.explain)
app.command(name="logs")(control_cmd.logs)
app.command(name="key")(control_cmd.key)
app.add_typer(control_cmd.chaos_app, name="chaos")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
