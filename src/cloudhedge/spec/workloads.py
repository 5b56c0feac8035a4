"""Resolve the workloads of a fleet spec: training runs, batch jobs, inference services.

- Names are unique across all kinds; accelerators must be known to the catalog.
- Training and batch windows become period indices, clipped to the horizon.
- An inference workload's throughput per chip is given (``throughput_tokens_per_s``)
  or taken from the catalog's figures for its reference model, scaled by
  ``reference_model_params_b / model_params_b`` when the model size is given;
  restricted to ``accelerators`` when they are listed.
- An agentic workload becomes an inference service (``source="agentic:<name>"``)
  with the throughput of the inference workload(s) serving the model it calls and
  a demand of ``tasks_per_day x steps_per_task x tokens_per_step / 86400 x
  peak_to_average`` tokens/s.

Issues go to the caller's :class:`IssueLog`; notes (modelled figures) to ``notes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloudhedge.core.models import BatchJob, Criticality, InferenceService, Pool, TrainingRun
from cloudhedge.spec.catalog_view import CatalogView
from cloudhedge.spec.schema import (
    AgenticSpec,
    BatchSpec,
    FleetSpec,
    InferenceSpec,
    Series,
    TrainingSpec,
)
from cloudhedge.spec.series import Calendar, to_series
from cloudhedge.spec.source import IssueLog, PathKey, suggest

__all__ = ["SECONDS_PER_DAY", "resolve_workloads"]

SECONDS_PER_DAY = 86_400.0


@dataclass
class _Workloads:
    spec: FleetSpec
    catalog: CatalogView
    calendar: Calendar
    log: IssueLog
    pooled: set[str]  # accelerators some pool offers
    notes: list[str]


def resolve_workloads(
    spec: FleetSpec,
    catalog: CatalogView,
    calendar: Calendar,
    log: IssueLog,
    pools: Sequence[Pool],
    notes: list[str],
) -> tuple[tuple[TrainingRun, ...], tuple[BatchJob, ...], tuple[InferenceService, ...]]:
    """(training runs, batch jobs, inference services incl. agentic ones), in spec order."""
    ctx = _Workloads(spec, catalog, calendar, log, {p.accelerator for p in pools}, notes)
    _unique_names(ctx)
    training: list[TrainingRun] = []
    batch: list[BatchJob] = []
    services: dict[int, InferenceService] = {}
    agentic: list[tuple[int, AgenticSpec]] = []
    for i, workload in enumerate(spec.workloads):
        path: PathKey = ("workloads", i)
        if isinstance(workload, TrainingSpec):
            run = _training(ctx, workload, path)
            if run is not None:
                training.append(run)
        elif isinstance(workload, BatchSpec):
            job = _batch(ctx, workload, path)
            if job is not None:
                batch.append(job)
        elif isinstance(workload, InferenceSpec):
            service = _inference(ctx, workload, path)
            if service is not None:
                services[i] = service
        else:
            agentic.append((i, workload))
    served: dict[str, list[InferenceService]] = {}
    for service in services.values():
        served.setdefault(service.model, []).append(service)
    served_models = {w.model for w in spec.workloads if isinstance(w, InferenceSpec)}
    for i, workload in agentic:
        service = _agentic(ctx, workload, ("workloads", i), served, served_models)
        if service is not None:
            services[i] = service
    return tuple(training), tuple(batch), tuple(services[i] for i in sorted(services))


def _unique_names(ctx: _Workloads) -> None:
    first: dict[str, int] = {}
    for i, workload in enumerate(ctx.spec.workloads):
        if workload.name in first:
            j = first[workload.name]
            line = ctx.log.source.position(("workloads", j, "name"))[0]
            where = f" at line {line}" if line else ""
            ctx.log.add(
                ("workloads", i, "name"),
                f"duplicate workload name '{workload.name}' (also workloads[{j}]{where}); "
                "names are unique across all kinds",
            )
        else:
            first[workload.name] = i


def _accelerators(ctx: _Workloads, names: Sequence[str], path: PathKey) -> tuple[str, ...] | None:
    """Known accelerators of a list (None if any is unknown or the list is empty)."""
    if not names:
        ctx.log.add(path, "expected at least one accelerator")
        return None
    ok = True
    for j, name in enumerate(names):
        if name not in ctx.catalog.accelerators:
            ctx.log.unknown((*path, j), "accelerator", name, ctx.catalog.accelerators)
            ok = False
    return tuple(names) if ok else None


def _training(ctx: _Workloads, w: TrainingSpec, path: PathKey) -> TrainingRun | None:
    accelerators = _accelerators(ctx, w.accelerators, (*path, "accelerators"))
    window = ctx.calendar.term(w.window.start, w.window.end, (*path, "window"), ctx.log, "window")
    if accelerators is None or window is None:
        return None
    return TrainingRun(
        name=w.name,
        gang_chips=w.gang_chips,
        chip_hours=w.chip_hours,
        accelerators=accelerators,
        window_start=window[0],
        window_end=window[1],
        checkpoint_interval_hours=w.checkpoint_interval_hours,
        priority=w.priority,
        spot_allowed=w.spot_allowed,
        required=w.required,
        tenant_class=w.tenant_class,
    )


def _batch(ctx: _Workloads, w: BatchSpec, path: PathKey) -> BatchJob | None:
    accelerators = _accelerators(ctx, w.accelerators, (*path, "accelerators"))
    window = ctx.calendar.term(w.window.start, w.window.end, (*path, "window"), ctx.log, "window")
    if accelerators is None or window is None:
        return None
    return BatchJob(
        name=w.name,
        chip_hours=w.chip_hours,
        accelerators=accelerators,
        window_start=window[0],
        window_end=window[1],
        spot_allowed=w.spot_allowed,
        priority=w.priority,
        tenant_class=w.tenant_class,
    )


def _demand(
    ctx: _Workloads, series: Mapping[str, Series], path: PathKey, field: str
) -> dict[str, tuple[float, ...]]:
    if not series:
        ctx.log.add((*path, field), "expected at least one jurisdiction (e.g. us: 1000)")
    return {
        jurisdiction: to_series(value, ctx.calendar, (*path, field, jurisdiction), ctx.log)
        for jurisdiction, value in series.items()
    }


def _inference(ctx: _Workloads, w: InferenceSpec, path: PathKey) -> InferenceService | None:
    demand = _demand(ctx, w.demand_tokens_per_s, path, "demand_tokens_per_s")
    allowed: tuple[str, ...] | None = None
    if w.accelerators is not None:
        allowed = _accelerators(ctx, w.accelerators, (*path, "accelerators"))
        if allowed is None:
            return None
    throughput = _throughput(ctx, w, path)
    if throughput is None:
        return None
    if allowed is not None:
        throughput = {a: v for a, v in throughput.items() if a in allowed}
    if not throughput:
        ctx.log.add(
            path,
            f"no throughput figure for inference workload '{w.name}' on "
            f"{', '.join(allowed) if allowed else 'any accelerator'}: "
            "give throughput_tokens_per_s",
        )
        return None
    if w.throughput_tokens_per_s is None:
        _throughput_notes(ctx, w, throughput)
    return InferenceService(
        name=w.name,
        model=w.model,
        demand_tokens_per_s=demand,
        throughput_tokens_per_s=throughput,
        tenant_class=w.tenant_class,
        criticality=Criticality(w.criticality),
        spot_allowed=w.spot_allowed,
        source="inference",
        unmet_penalty_usd_per_million_tokens=_penalty(ctx, w.unmet_penalty_usd_per_million_tokens),
    )


def _throughput(ctx: _Workloads, w: InferenceSpec, path: PathKey) -> dict[str, float] | None:
    """Tokens/s per chip by accelerator: given, or the catalog's scaled to the model size."""
    if w.throughput_tokens_per_s is not None:
        given: dict[str, float] = {}
        for accelerator, value in w.throughput_tokens_per_s.items():
            if accelerator not in ctx.catalog.accelerators:
                ctx.log.add(
                    (*path, "throughput_tokens_per_s", accelerator),
                    f"unknown accelerator '{accelerator}'",
                    suggest(accelerator, ctx.catalog.accelerators),
                    at_key=True,
                )
            else:
                given[accelerator] = float(value)
        return given if len(given) == len(w.throughput_tokens_per_s) else None
    scale = 1.0
    if w.model_params_b is not None:
        scale = ctx.catalog.reference_model_params_b / w.model_params_b
    return {
        accelerator: figure.value * scale
        for accelerator, figure in ctx.catalog.throughput.items()
        if figure.value > 0
    }


def _throughput_notes(ctx: _Workloads, w: InferenceSpec, throughput: dict[str, float]) -> None:
    if w.throughput_tokens_per_s is not None:
        return  # the user's own figures
    modelled = [
        a for a in sorted(throughput)
        if a in ctx.pooled and str(ctx.catalog.throughput[a].kind).startswith("model")
    ]
    if modelled:
        ctx.notes.append(
            f"service {w.name}: throughput on {', '.join(modelled)} is modelled, not measured "
            f"(rules in catalog/data/SOURCES.md)"
        )
    if w.model_params_b is not None and w.model_params_b != ctx.catalog.reference_model_params_b:
        reference = ctx.catalog.reference_model_params_b
        ctx.notes.append(
            f"throughput for service {w.name} is the catalog's for a {reference:g} B model "
            f"scaled by {reference:g}/{w.model_params_b:g} (model_params_b)"
        )


def _penalty(ctx: _Workloads, given: float | None) -> float:
    if given is not None:
        return given
    return ctx.spec.defaults.unmet_penalty_usd_per_million_tokens


def _agentic(
    ctx: _Workloads,
    w: AgenticSpec,
    path: PathKey,
    served: dict[str, list[InferenceService]],
    served_models: set[str],
) -> InferenceService | None:
    """An agentic workload as an inference service on the throughput of its model."""
    factor = w.steps_per_task * w.tokens_per_step / SECONDS_PER_DAY * w.peak_to_average
    tasks = _demand(ctx, w.tasks_per_day, path, "tasks_per_day")
    if w.model not in served_models:
        ctx.log.add(
            (*path, "model"),
            f"agentic workload {w.name} calls model {w.model}, which no inference workload serves",
            suggest(w.model, served_models),
        )
        return None
    services = served.get(w.model)
    if not services:  # the serving workload has errors of its own, already reported
        return None
    throughput: dict[str, float] = {}
    for service in services:
        for accelerator, value in service.throughput_tokens_per_s.items():
            throughput.setdefault(accelerator, value)
    tenant_class = w.tenant_class if w.tenant_class is not None else services[0].tenant_class
    return InferenceService(
        name=w.name,
        model=w.model,
        demand_tokens_per_s={j: tuple(v * factor for v in vs) for j, vs in tasks.items()},
        throughput_tokens_per_s=throughput,
        tenant_class=tenant_class,
        criticality=Criticality(w.criticality),
        spot_allowed=w.spot_allowed,
        source=f"agentic:{w.name}",
        unmet_penalty_usd_per_million_tokens=_penalty(ctx, w.unmet_penalty_usd_per_million_tokens),
    )
