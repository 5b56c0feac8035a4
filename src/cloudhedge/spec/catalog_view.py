"""What the spec resolver needs from a catalog, as a structural type.

:class:`cloudhedge.catalog.Catalog` satisfies :class:`CatalogView`; so does any
small stand-in with the same attributes (tests use a dataclass). The resolver only
reads a catalog; it never changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from cloudhedge.core.models import Accelerator, Tier

__all__ = ["CatalogView", "FigureView", "RegionView"]


class RegionView(Protocol):
    """A provider's region and the jurisdiction its traffic falls under."""

    @property
    def provider(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def jurisdiction(self) -> str: ...


class FigureView(Protocol):
    """A per-accelerator figure (throughput, relative speed) with its provenance."""

    @property
    def accelerator(self) -> str: ...

    @property
    def value(self) -> float: ...

    @property
    def kind(self) -> str: ...  # e.g. "measured", "published", "modelled"

    @property
    def source(self) -> str: ...


class CatalogView(Protocol):
    """Accelerators, regions, prices and figures, read-only."""

    @property
    def accelerators(self) -> Mapping[str, Accelerator]: ...

    @property
    def regions(self) -> Mapping[tuple[str, str], RegionView]: ...

    @property
    def providers(self) -> tuple[str, ...]: ...

    @property
    def throughput(self) -> Mapping[str, FigureView]: ...  # tokens/s per chip, reference model

    @property
    def relative_speed(self) -> Mapping[str, FigureView]: ...

    @property
    def reference_model_params_b(self) -> float: ...

    def region(self, provider: str, region: str) -> RegionView | None: ...

    def price(
        self, provider: str, region: str, accelerator: str, tier: Tier
    ) -> tuple[float, str] | None: ...
