"""Fixtures for spec tests (see ``spec_helpers`` for the fake catalog and helpers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import MINIMAL, FakeCatalog

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.core.models import Fleet
from cloudhedge.spec import load_fleet


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def minimal() -> str:
    return MINIMAL


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write a spec text to ``tmp_path/fleet.yaml`` and return its path."""

    def _write(text: str, name: str = "fleet.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def fleet_of(write: Callable[[str], Path], catalog: FakeCatalog) -> Callable[[str], Fleet]:
    """Resolve a spec text against the fake catalog."""

    def _fleet(text: str) -> Fleet:
        return load_fleet(write(text), catalog)

    return _fleet


@pytest.fixture
def issues_of(
    write: Callable[[str], Path], catalog: FakeCatalog
) -> Callable[[str], list[SpecIssue]]:
    """The issues a spec text raises (fails the test if it loads)."""

    def _issues(text: str) -> list[SpecIssue]:
        with pytest.raises(SpecError) as caught:
            load_fleet(write(text), catalog)
        return caught.value.issues

    return _issues
