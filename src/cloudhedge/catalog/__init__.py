"""Accelerators, providers, regions and prices: built-in data plus importers.

Public API (``__all__``): the value types :class:`Region`, :class:`Offer`, :class:`Figure`,
the :class:`Catalog`, :func:`load_builtin` (the shipped data, see ``data/SOURCES.md``),
:func:`load_offers_csv` / :func:`write_offers_csv` (the price-file format) and the SkyPilot
importer :func:`import_skypilot` with its :class:`ImportResult`. Unknown prices are
``None``, never 0. Imports only ``cloudhedge.core``.
"""

from cloudhedge.catalog.catalog import (
    Catalog,
    Figure,
    Offer,
    Region,
    load_builtin,
    load_offers_csv,
    write_offers_csv,
)
from cloudhedge.catalog.skypilot import ImportResult, import_skypilot

__all__ = [
    "Catalog",
    "Figure",
    "ImportResult",
    "Offer",
    "Region",
    "import_skypilot",
    "load_builtin",
    "load_offers_csv",
    "write_offers_csv",
]
