"""The scenario file: the YAML a user writes, as pydantic models (``extra="forbid"``).

These models check shape and types only. Names (providers, regions, accelerators,
vendors, tiers, workload kinds, workloads, tenant classes), periods against the
fleet's horizon, and the rules between fields (exactly one outage target, ``end`` or
``hours``, at least one selector) are checked by :mod:`cloudhedge.stress.scenario`,
which resolves a file against a :class:`~cloudhedge.core.models.Fleet`. Documented
field by field in ``docs/stress-scenarios.md``.

Two small unions are written the user's way and reported as one error when a value
fits neither form: a *period* (an index, ``0`` being the horizon's first period, or a
month ``"YYYY-MM"``) and *names* (one name or a list of names).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from cloudhedge.spec.schema import PeriodRef

__all__ = [
    "DemandSurgeSpec",
    "EventSpec",
    "OutageSpec",
    "PriceChangeSpec",
    "ScenarioFileSpec",
    "ScenarioSpec",
    "SupplyShockSpec",
]


def _one_form(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A value that fits no member of a small union: one error, not one per member."""
    try:
        return handler(value)
    except ValidationError as exc:
        raise PydanticCustomError("no_form", "the value fits none of the accepted forms") from exc


Period = Annotated[int | PeriodRef, WrapValidator(_one_form)]
"""A period: an index into the horizon (0 = first period) or a month ``YYYY-MM``."""

Names = Annotated[str | list[str], WrapValidator(_one_form)]
"""One name or a list of names."""

Fraction = Annotated[float, Field(gt=0, le=1)]
Factor = Annotated[float, Field(gt=0)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutageSpec(_Spec):
    """Capacity of one provider, region, accelerator or vendor lost for a while."""

    kind: Literal["outage"]
    provider: str | None = None
    region: str | None = None  # provider/region, e.g. azure/eastus
    accelerator: str | None = None
    vendor: str | None = None
    fraction: Fraction = 1.0
    start: Period
    end: Period | None = None  # last period, inclusive
    hours: Annotated[float, Field(gt=0)] | None = None  # from the start of ``start``


class SupplyShockSpec(_Spec):
    """An accelerator or vendor loses a fraction of its capacity from a period on."""

    kind: Literal["supply_shock"]
    accelerator: str | None = None
    vendor: str | None = None
    fraction: Fraction
    start: Period


class PriceChangeSpec(_Spec):
    """Prices of the selected pools multiplied by ``factor``."""

    kind: Literal["price_change"]
    provider: Names | None = None
    accelerator: Names | None = None
    tier: Names | None = None
    factor: Factor
    start: Period
    end: Period | None = None  # default: the horizon's last period


class DemandSurgeSpec(_Spec):
    """Demand of the selected workloads multiplied by ``factor``."""

    kind: Literal["demand_surge"]
    workload_kind: Names | None = None  # training | batch | inference | agentic
    name: Names | None = None
    tenant: Names | None = None
    factor: Factor
    start: Period
    end: Period | None = None  # default: the horizon's last period


EventSpec = Annotated[
    OutageSpec | SupplyShockSpec | PriceChangeSpec | DemandSurgeSpec,
    Field(discriminator="kind"),
]


class ScenarioSpec(_Spec):
    name: str
    description: str | None = None
    events: list[EventSpec]


class ScenarioFileSpec(_Spec):
    scenarios: list[ScenarioSpec]
