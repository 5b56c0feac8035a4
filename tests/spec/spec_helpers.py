"""Shared pieces of the spec tests: a fake catalog, a minimal fleet, position helpers.

:class:`FakeCatalog` has the attributes the resolver reads from
:class:`cloudhedge.catalog.Catalog` (accelerators, regions, providers, prices,
throughput, relative speed), with a handful of made-up entries so that tests state
their numbers exactly. ``MINIMAL`` is a valid fleet spec that tests edit a little.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudhedge.core.errors import SpecIssue
from cloudhedge.core.models import Accelerator


@dataclass(frozen=True)
class FakeRegion:
    provider: str
    name: str
    jurisdiction: str


@dataclass(frozen=True)
class FakeFigure:
    accelerator: str
    value: float
    kind: str
    source: str


def _acc(name: str, vendor: str, stack: str) -> Accelerator:
    return Accelerator(name, vendor, stack, 80.0, 3.0, 1000.0, "fake")


@dataclass
class FakeCatalog:
    accelerators: dict[str, Accelerator] = field(
        default_factory=lambda: {
            "h100": _acc("h100", "nvidia", "cuda"),
            "h200": _acc("h200", "nvidia", "cuda"),
            "b200": _acc("b200", "nvidia", "cuda"),
            "mi300x": _acc("mi300x", "amd", "rocm"),
            "trn2": _acc("trn2", "aws", "neuron"),
            "tpu-v5e": _acc("tpu-v5e", "google", "xla"),
        }
    )
    regions: dict[tuple[str, str], FakeRegion] = field(
        default_factory=lambda: {
            (p, r): FakeRegion(p, r, j)
            for p, r, j in [
                ("azure", "eastus", "us"),
                ("azure", "westeurope", "eu"),
                ("aws", "us-east-1", "us"),
                ("gcp", "us-central1", "us"),
                ("coreweave", "us-east-04", "us"),
            ]
        }
    )
    prices: dict[tuple[str, str, str, str], tuple[float, str]] = field(
        default_factory=lambda: {
            ("azure", "eastus", "h100", "on_demand"): (10.0, "fake list azure"),
            ("azure", "eastus", "h100", "spot"): (3.0, "fake list azure spot"),
            ("azure", "eastus", "h200", "on_demand"): (14.0, "fake list azure"),
            ("azure", "westeurope", "h100", "on_demand"): (12.0, "fake list azure"),
            ("aws", "us-east-1", "trn2", "on_demand"): (4.0, "fake list aws"),
            ("coreweave", "us-east-04", "h100", "committed"): (2.2, "assumed: neocloud quote"),
        }
    )
    throughput: dict[str, FakeFigure] = field(
        default_factory=lambda: {
            "h100": FakeFigure("h100", 3000.0, "measured", "fake bench"),
            "h200": FakeFigure("h200", 4000.0, "measured", "fake bench"),
            "mi300x": FakeFigure("mi300x", 2900.0, "measured", "fake bench"),
            "trn2": FakeFigure("trn2", 2600.0, "modelled", "fake model"),
        }
    )
    relative_speed: dict[str, FakeFigure] = field(
        default_factory=lambda: {
            "h100": FakeFigure("h100", 1.0, "modelled", "fake"),
            "h200": FakeFigure("h200", 1.0, "modelled", "fake"),
            "trn2": FakeFigure("trn2", 0.7, "modelled", "fake"),
        }
    )
    reference_model_params_b: float = 70.0

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted({p for p, _ in self.regions}))

    def region(self, provider: str, region: str) -> FakeRegion | None:
        return self.regions.get((provider, region))

    def price(
        self, provider: str, region: str, accelerator: str, tier: str
    ) -> tuple[float, str] | None:
        return self.prices.get((provider, region, accelerator, str(tier)))


MINIMAL = """\
name: test-fleet
horizon:
  start: 2026-01
  periods: 12
pools:
  - name: az-h100
    provider: azure
    region: eastus
    accelerator: h100
    tier: on_demand
    capacity_chips: 1000
  - name: az-h100-committed
    provider: azure
    region: eastus
    accelerator: h100
    tier: committed
    capacity_chips: 2000
contracts:
  - name: az-deal
    provider: azure
    pools: [az-h100-committed]
    start: 2026-01
    end: 2027-12
    committed_chips: 1500
    discount: 0.4
workloads:
  - kind: training
    name: pretrain
    gang_chips: 512
    chip_hours: 1000000
    accelerators: [h100]
    window: {start: 2026-02, end: 2026-09}
  - kind: inference
    name: chat
    model: llama-70b
    demand_tokens_per_s: {us: 100000}
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")


def column_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based column where ``needle`` starts on its line."""
    line = text.splitlines()[line_of(text, needle, occurrence) - 1]
    return line.index(needle) + 1


def only(issues: list[SpecIssue], path: str) -> SpecIssue:
    """The one issue at ``path``."""
    found = [i for i in issues if i.path == path]
    assert len(found) == 1, f"expected one issue at {path}, got {issues}"
    return found[0]
