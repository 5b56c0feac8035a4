"""``cloudhedge stress``: scenarios, risk and hedge value for a plan."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cloudhedge.core.errors import CatalogError, PlanningError, SpecError, SpecIssue
from cloudhedge.core.models import Fleet
from cloudhedge.core.plan import Plan
from cloudhedge.spec.source import SourceMap

if TYPE_CHECKING:
    from cloudhedge.stress.risk import RiskModel

DEFAULT_SWEEPS = ("n-1-provider", "n-1-vendor", "shocks")


def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def stress(
    file: Annotated[Path, typer.Argument(help="Fleet spec (YAML).")],
    plan_path: Annotated[
        Path | None,
        typer.Option("--plan", help="plan.json to stress (default: plan the fleet now).",
                     exists=True, dir_okay=False),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s",
                     help="builtin:NAME, FILE.yaml or FILE.yaml#NAME; repeatable."),
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="A built-in family: n-1-provider, n-1-vendor, n-1-region, "
                                     "n-1, shocks, all; repeatable."),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Monte Carlo samples (0: no risk).")
    ] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Monte Carlo seed.")] = 0,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes (default: up to 2).")
    ] = None,
    risk_model: Annotated[
        Path | None,
        typer.Option("--risk-model", help="Availability overrides (YAML, see "
                                          "docs/stress-model.md).", exists=True,
                     dir_okay=False),
    ] = None,
    hedge_value: Annotated[
        bool, typer.Option("--hedge-value/--no-hedge-value",
                           help="Also stress the unhedged and single-provider plans.")
    ] = True,
    replan: Annotated[
        bool, typer.Option("--replan/--no-replan", help="Re-plan under each scenario.")
    ] = True,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write stress.json here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report here.")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", min=0.1,
                                   help="Solver time limit per (re-)plan, seconds.")
    ] = 60.0,
    gap: Annotated[
        float, typer.Option("--gap", min=0.0, max=1.0, help="Relative MIP gap to stop at.")
    ] = 0.005,
    prices: Annotated[
        Path | None,
        typer.Option("--prices", help="An imported prices CSV over the built-in one.",
                     exists=True, dir_okay=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No terminal summary.")] = False,
) -> None:
    """Stress a plan: what each outage or shock does, its risk, and what the hedge is worth."""
    from cloudhedge.cli.main import EXIT_INVALID, _catalog, _fail_input, err, out
    from cloudhedge.cli.stress_report import render_stress_html
    from cloudhedge.cli.stress_summary import render_stress_summary
    from cloudhedge.planning.planner import PlanOptions, make_plan
    from cloudhedge.planning.solve import SolveOptions
    from cloudhedge.spec import load_fleet
    from cloudhedge.stress.library import family, resolve_scenario_ref
    from cloudhedge.stress.run import Labelled, StressOptions, run_stress

    options = StressOptions(
        plan=PlanOptions(solve=SolveOptions(time_limit_s=time_limit, gap=gap), explain=False),
        replan=replan, workers=workers or _workers(), samples=samples, seed=seed,
        hedge_value=hedge_value)
    try:
        fleet = load_fleet(file, _catalog(prices))
        chosen: list[Labelled] = []
        for ref in scenario or []:
            chosen += [Labelled(s) for s in resolve_scenario_ref(fleet, ref)]
        sweeps = sweep or ([] if scenario else list(DEFAULT_SWEEPS))
        for fam in sweeps:
            chosen += [Labelled(s, fam) for s in family(fleet, fam)]
        chosen = list({lab.scenario.name: lab for lab in chosen}.values())  # first wins
        if risk_model is not None:
            options = replace(options, risk_model=_load_risk_model(risk_model, fleet))
        base = _read_plan(plan_path) if plan_path is not None else None
    except (SpecError, CatalogError, FileNotFoundError, ValueError) as exc:
        raise _fail_input(exc) from None
    if not chosen:
        err.print("[red]no scenario to run[/]: give --scenario or --sweep")
        raise typer.Exit(EXIT_INVALID)

    steps = len(chosen) * (2 if replan else 1) + (1 if samples else 0) \
        + (2 if hedge_value else 0) + (0 if base is not None else 1)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True,
                  disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("planning", total=steps)

        def step(label: str) -> None:
            bar.update(task, advance=1, description=label)

        if base is None:
            base = make_plan(fleet, options.plan)
            step("planned")
        try:
            result = run_stress(fleet, base, chosen, options, step)
        except PlanningError as exc:
            err.print(f"[bold red]the plan does not fit the fleet[/]: {exc}")
            raise typer.Exit(EXIT_INVALID) from None
    if out_path is not None:
        out_path.write_text(result.model_dump_json(indent=1))
    if report is not None:
        report.write_text(render_stress_html(result), encoding="utf-8")
    if not quiet:
        render_stress_summary(result, out)
        written = [str(p) for p in (out_path, report) if p is not None]
        if written:
            out.print(f"wrote {', '.join(written)}")


def _read_plan(path: Path) -> Plan:
    try:
        return Plan.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: not a plan.json ({where}: {first['msg']}; "
                         f"{exc.error_count()} problem(s))") from None


def _load_risk_model(path: Path, fleet: Fleet) -> RiskModel:
    """Availability overrides from a YAML file (under ``availability:``), checked against
    the fleet; every problem located at its line in the file."""
    from cloudhedge.spec.loader import parse_yaml
    from cloudhedge.stress.risk import RiskModel, check_names

    data, src = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    nested = isinstance(data, dict) and "availability" in data
    body = data.get("availability") if nested else data
    if not isinstance(body, dict):
        raise ValueError(f"{path}: expected a mapping (under 'availability:') of overrides; "
                         f"see docs/stress-model.md")
    try:
        model = RiskModel.from_mapping(body, file=str(path), path="availability")
        check_names(fleet, model)
    except SpecError as exc:
        raise SpecError([_locate(i, src, nested) for i in exc.issues]) from None
    return model


def _locate(issue: SpecIssue, src: SourceMap, nested: bool) -> SpecIssue:
    """The issue at its key's line and column (paths are dotted, from 'availability')."""
    parts = tuple(issue.path.split("."))
    key = parts if nested else parts[1:]
    located = src.issue(key, issue.message, issue.suggestion, at_key=True)
    return replace(located, path=issue.path)
