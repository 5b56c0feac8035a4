"""Workload files: ``job.yaml`` (training or batch) and ``service.yaml`` (inference).

Loaded exactly like the fleet spec: parsed with :func:`cloudhedge.spec.loader.parse_yaml`
(positions kept), validated by the pydantic models below (``extra="forbid"``), pydantic
errors translated by :func:`cloudhedge.spec.errors.translate_validation_error`, then
checked against a :class:`~cloudhedge.core.models.Fleet`: accelerator names (with
did-you-mean), tenant classes and jurisdictions the fleet's policies know (an unknown
class or jurisdiction would silently escape exclusivity or residency, so it is an
error), checkpoint locations and names. Every problem raises one
:class:`~cloudhedge.core.errors.SpecError` listing all issues, each located
(file:line:column) with its field path.

    load_job(path, fleet)      -> JobSpec
    load_service(path, fleet)  -> ServiceSpec

A ``command`` given as a string runs through ``/bin/sh -c`` (so ``$VARIABLES`` of the
replica's environment expand); a list runs as is (argv).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloudhedge.core.errors import SpecError
from cloudhedge.core.models import Criticality, DomainKind, Fleet
from cloudhedge.spec.loader import read_input, validate_text
from cloudhedge.spec.source import IssueLog, PathKey, SourceMap

__all__ = [
    "AcceleratorOption",
    "JobSpec",
    "Readiness",
    "RetryPolicy",
    "ServiceSpec",
    "load_job",
    "load_job_text",
    "load_service",
    "load_service_text",
]

SHELL = ("/bin/sh", "-c")
"""How a string ``command`` is run."""

MAX_NODES = 10_000
"""Values a workload file may hold once YAML aliases are expanded (they are small)."""

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_S3 = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


# --- the files, as the user writes them ---------------------------------------------


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcceleratorChoiceFile(_File):
    accelerator: str
    chips: Annotated[int, Field(ge=1)]


class RetryFile(_File):
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    backoff_s: Annotated[float, Field(ge=0)] = 30.0
    backoff_factor: Annotated[float, Field(ge=1)] = 2.0
    max_backoff_s: Annotated[float, Field(ge=0)] = 600.0


class JobFile(_File):
    name: str
    kind: Literal["training", "batch"]
    command: str | list[str]
    accelerators: list[AcceleratorChoiceFile]
    gang_size: Annotated[int, Field(ge=1)] = 1
    checkpoint: str | None = None
    heartbeat_timeout_s: Annotated[float, Field(gt=0)] | None = None
    retry: RetryFile = Field(default_factory=RetryFile)
    priority: Annotated[int, Field(ge=1, le=100)] = 1
    tenant_class: str | None = None
    jurisdiction: str | None = None
    spot_allowed: bool | None = None


class ReadinessFile(_File):
    path: str = "/v1/models"
    port_env: str = "CLOUDHEDGE_REPLICA_PORT"
    initial_delay_s: Annotated[float, Field(ge=0)] = 0.0
    period_s: Annotated[float, Field(gt=0)] = 2.0
    timeout_s: Annotated[float, Field(gt=0)] = 1.0
    failure_threshold: Annotated[int, Field(ge=1)] = 3


class ServiceFile(_File):
    name: str
    model: str
    command: str | list[str]
    replicas: Annotated[int, Field(ge=1, le=10_000)] = 1
    accelerators: list[AcceleratorChoiceFile]
    spread: Literal["provider", "region", "vendor"] = "provider"
    readiness: ReadinessFile = Field(default_factory=ReadinessFile)
    tenant_class: str | None = None
    jurisdiction: str | None = None
    criticality: Literal["critical", "high", "standard", "best_effort"] = "standard"
    spot_allowed: bool = False


# --- resolved ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceleratorOption:
    """One acceptable accelerator and the chips one replica needs on it."""

    accelerator: str
    chips: int


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` runs; exponential backoff between them, capped."""

    max_attempts: int = 3
    backoff_s: float = 30.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 600.0

    def delay_s(self, failures: int) -> float:
        """Seconds to wait before the next attempt after ``failures`` failed ones (>= 1)."""
        raw = self.backoff_s * self.backoff_factor ** max(0, failures - 1)
        return float(min(raw, self.max_backoff_s))


@dataclass(frozen=True)
class Readiness:
    """An HTTP GET on ``path`` at the port the replica reads from ``port_env``."""

    path: str = "/v1/models"
    port_env: str = "CLOUDHEDGE_REPLICA_PORT"
    initial_delay_s: float = 0.0
    period_s: float = 2.0
    timeout_s: float = 1.0
    failure_threshold: int = 3


@dataclass(frozen=True)
class JobSpec:
    """A training or batch job: ``gang_size`` replicas that run together in one pool."""

    name: str
    kind: Literal["training", "batch"]
    command: tuple[str, ...]  # argv; a string command is wrapped in SHELL
    accelerators: tuple[AcceleratorOption, ...]  # alternatives, in the user's order
    gang_size: int
    checkpoint: str | None  # an absolute directory or s3://bucket/prefix
    retry: RetryPolicy
    priority: int
    tenant_class: str | None
    jurisdiction: str | None
    spot_allowed: bool
    source: str  # the file it was loaded from
    # a running attempt silent for longer (no heartbeat, counted from its start) is failed
    heartbeat_timeout_s: float | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """An inference service: ``replicas`` copies spread across failure domains."""

    name: str
    model: str
    command: tuple[str, ...]
    replicas: int
    accelerators: tuple[AcceleratorOption, ...]
    spread: DomainKind
    readiness: Readiness
    tenant_class: str | None
    jurisdiction: str | None
    criticality: Criticality
    spot_allowed: bool
    source: str


# --- loading ---------------------------------------------------------------------------


def load_job(path: Path, fleet: Fleet) -> JobSpec:
    """Read, validate and check the job file at ``path`` against ``fleet``."""
    return load_job_text(read_input(path), str(path), fleet)


def load_job_text(text: str, filename: str, fleet: Fleet) -> JobSpec:
    """Validate and check job ``text``; ``filename`` is used in issues."""
    return _load(text, filename, fleet, JobFile, "a job (name, kind, command, ...)", _job)


def _job(spec: JobFile, check: _Checker, filename: str) -> JobSpec:
    check.name(spec.name)
    command = check.command(spec.command)
    options = check.accelerators(spec.accelerators)
    check.policy_names(spec.tenant_class, spec.jurisdiction)
    if spec.checkpoint is not None:
        check.checkpoint(spec.checkpoint)
    check.log.raise_if_any()
    r = spec.retry
    return JobSpec(
        name=spec.name, kind=spec.kind, command=command, accelerators=options,
        gang_size=spec.gang_size, checkpoint=spec.checkpoint,
        retry=RetryPolicy(r.max_attempts, r.backoff_s, r.backoff_factor, r.max_backoff_s),
        priority=spec.priority, tenant_class=spec.tenant_class, jurisdiction=spec.jurisdiction,
        spot_allowed=spec.kind == "batch" if spec.spot_allowed is None else spec.spot_allowed,
        source=filename, heartbeat_timeout_s=spec.heartbeat_timeout_s,
    )


_File_T = TypeVar("_File_T", JobFile, "ServiceFile")
_Spec_T = TypeVar("_Spec_T", JobSpec, "ServiceSpec")


def _load(text: str, filename: str, fleet: Fleet, model: type[_File_T], expected: str,
          build: Callable[[_File_T, _Checker, str], _Spec_T]) -> _Spec_T:
    """Validate, check and resolve a workload file.

    A file in JSON (what programs send to the API) is first read with the standard
    library's parser, which is some 20 times faster than the position-keeping YAML
    parser; JSON is YAML, so the answer is the same. Only if that fast pass finds a
    problem is the text parsed again with positions, to locate every issue.
    """
    if text.lstrip().startswith("{"):
        try:
            fast = model.model_validate(json.loads(text))
            return build(fast, _Checker(fleet, SourceMap(filename, {(): (1, 1)}, {})),
                         filename)
        except (ValueError, SpecError):  # JSON or validation errors: locate them below
            pass
    spec, source = validate_text(text, filename, model, expected, max_nodes=MAX_NODES)
    return build(spec, _Checker(fleet, source), filename)


def load_service(path: Path, fleet: Fleet) -> ServiceSpec:
    """Read, validate and check the service file at ``path`` against ``fleet``."""
    return load_service_text(read_input(path), str(path), fleet)


def load_service_text(text: str, filename: str, fleet: Fleet) -> ServiceSpec:
    """Validate and check service ``text``; ``filename`` is used in issues."""
    return _load(text, filename, fleet, ServiceFile, "a service (name, model, command, ...)",
                 _service)


def _service(spec: ServiceFile, check: _Checker, filename: str) -> ServiceSpec:
    check.name(spec.name)
    command = check.command(spec.command)
    options = check.accelerators(spec.accelerators)
    check.policy_names(spec.tenant_class, spec.jurisdiction)
    probe = spec.readiness
    if not probe.path.startswith("/"):
        check.log.add(("readiness", "path"), f"expected an HTTP path starting with '/', "
                      f"got '{probe.path}'")
    if not _ENV_NAME.match(probe.port_env):
        check.log.add(("readiness", "port_env"),
                      f"expected an environment variable name, got '{probe.port_env}'")
    check.log.raise_if_any()
    return ServiceSpec(
        name=spec.name, model=spec.model, command=command, replicas=spec.replicas,
        accelerators=options, spread=DomainKind(spec.spread),
        readiness=Readiness(probe.path, probe.port_env, probe.initial_delay_s, probe.period_s,
                            probe.timeout_s, probe.failure_threshold),
        tenant_class=spec.tenant_class, jurisdiction=spec.jurisdiction,
        criticality=Criticality(spec.criticality), spot_allowed=spec.spot_allowed,
        source=filename,
    )


class _Checker:
    """Checks a validated workload file against a fleet, collecting located issues."""

    def __init__(self, fleet: Fleet, source: SourceMap) -> None:
        self.fleet = fleet
        self.log = IssueLog(source)

    def name(self, name: str) -> None:
        if not _NAME.match(name):
            self.log.add(("name",), f"expected a name of lowercase letters, digits and '-' "
                         f"(at most 63, starting and ending with a letter or digit), got '{name}'")

    def command(self, command: str | list[str]) -> tuple[str, ...]:
        if isinstance(command, str):
            if not command.strip():
                self.log.add(("command",), "expected a command, got an empty string")
            return (*SHELL, command)
        if not command or not command[0].strip():
            self.log.add(("command",), "expected a command: a non-empty list whose first item "
                         "is the program")
        return tuple(command)

    def accelerators(self, choices: list[AcceleratorChoiceFile]) -> tuple[AcceleratorOption, ...]:
        path: PathKey = ("accelerators",)
        if not choices:
            self.log.add(path, "expected at least one accelerator alternative")
            return ()
        known = set(self.fleet.accelerators) | {p.accelerator for p in self.fleet.pools}
        offered = {p.accelerator for p in self.fleet.pools}
        seen: set[str] = set()
        for i, choice in enumerate(choices):
            at: PathKey = (*path, i, "accelerator")
            if choice.accelerator not in known:
                self.log.unknown(at, "accelerator", choice.accelerator, known)
            elif choice.accelerator in seen:
                self.log.add(at, f"accelerator '{choice.accelerator}' is listed twice")
            seen.add(choice.accelerator)
        if seen & known and not seen & offered:
            self.log.add(path, f"no pool of fleet '{self.fleet.name}' offers any of "
                         f"{', '.join(sorted(seen))} (offered: {', '.join(sorted(offered))})")
        return tuple(AcceleratorOption(c.accelerator, c.chips) for c in choices)

    def policy_names(self, tenant_class: str | None, jurisdiction: str | None) -> None:
        """Fail closed: a name the policies do not know would escape them silently."""
        exclusivity = self.fleet.policies.exclusivity
        if tenant_class is not None and exclusivity and tenant_class not in exclusivity:
            self.log.unknown(("tenant_class",), "tenant class", tenant_class, exclusivity)
        if jurisdiction is not None:
            known = {p.jurisdiction for p in self.fleet.pools} | set(
                self.fleet.policies.residency)
            if jurisdiction not in known:
                self.log.unknown(("jurisdiction",), "jurisdiction", jurisdiction, known)

    def checkpoint(self, location: str) -> None:
        if location.startswith("s3://"):
            if not _S3.match(location):
                self.log.add(("checkpoint",), f"expected s3://bucket/prefix with a valid "
                             f"bucket name, got '{location}'")
        elif not location.startswith("/"):
            hint = "s3://" + location[3:].lstrip("/") if location.startswith("s3:") else None
            self.log.add(("checkpoint",), "expected an absolute directory or "
                         f"s3://bucket/prefix, got '{location}'", hint)
