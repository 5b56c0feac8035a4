"""The one error tree of cloudhedge.

    CloudhedgeError
     +-- SpecError            a fleet spec (or another YAML input) is invalid; carries issues
     +-- CatalogError         catalog data or an import is unusable
     +-- PlanningError        the optimizer failed for a reason other than infeasibility
          +-- InfeasibleError  no plan meets the hard policies; carries the conflicts

Callers decide by type, never by message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class CloudhedgeError(Exception):
    """Base of every error cloudhedge raises on purpose."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in an input file, located precisely."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # dotted field path, e.g. "workloads[3].accelerators[0]"
    message: str  # what was expected
    suggestion: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.suggestion:
            text += f" (did you mean '{self.suggestion}'?)"
        return text


class SpecError(CloudhedgeError):
    """An input file is invalid. ``issues`` lists every problem found, located."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class CatalogError(CloudhedgeError):
    """Catalog data or an imported price list cannot be used."""


class PlanningError(CloudhedgeError):
    """The optimizer could not produce a plan (solver error, not infeasibility)."""


@dataclass(frozen=True)
class Conflict:
    """One hard constraint that had to bend for any plan to exist."""

    constraint: str  # stable id, e.g. "cap:provider:azure"
    text: str  # a sentence a user can read
    violation: float  # how far it had to bend, in the constraint's unit
    unit: str


@dataclass
class InfeasibleError(PlanningError):
    """No plan meets the hard policies; ``conflicts`` says which constraints conflict."""

    conflicts: list[Conflict] = field(default_factory=list)

    def __str__(self) -> str:
        lines = ["no plan meets the hard policies; these constraints conflict:"]
        lines += [f"  - {c.text}" for c in self.conflicts]
        return "\n".join(lines)
