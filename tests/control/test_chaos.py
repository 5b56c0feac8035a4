"""Scopes and durations as ``cloudhedge chaos`` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudhedge.control.chaos import ChaosError, parse_duration, parse_scope
from cloudhedge.control.providers import Scope, ScopeKind
from cloudhedge.core.models import Fleet
from cloudhedge.spec import load_fleet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(ROOT / "examples" / "frontier-lab.yaml")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1.5m", 90),
    ("2h0m5s", 7205), (" 10M ", 600)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", "0", "0s", "1d", "5m10h"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ChaosError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "scope"), [
    ("aws", Scope(ScopeKind.PROVIDER, "aws")),
    ("aws/us-east-1", Scope(ScopeKind.REGION, "aws/us-east-1")),
    ("aws/us-east-1/us-east-1a", Scope(ScopeKind.ZONE, "aws/us-east-1/us-east-1a")),
    ("h100", Scope(ScopeKind.ACCELERATOR, "h100")),
    ("azure-eus-h100-committed", Scope(ScopeKind.POOL, "azure-eus-h100-committed")),
    ("provider:gcp", Scope(ScopeKind.PROVIDER, "gcp")),
    ("pool:azure-eus-h100-committed", Scope(ScopeKind.POOL, "azure-eus-h100-committed")),
])
def test_scopes_resolve_against_the_fleet(fleet: Fleet, text: str, scope: Scope) -> None:
    assert parse_scope(text, fleet) == scope


@pytest.mark.parametrize(("text", "message"), [
    ("azur", "no provider, region, accelerator or pool 'azur' in this fleet "
             "(did you mean 'azure'?)"),
    ("aws/us-eats-1", "did you mean 'aws/us-east-1'?"),
    ("provider:h100", "no provider 'h100'"),
    ("zone:aws/nowhere/z", "expected a zone"),
])
def test_unknown_scopes_are_refused_with_a_suggestion(fleet: Fleet, text: str,
                                                      message: str) -> None:
    with pytest.raises(ChaosError) as caught:
        parse_scope(text, fleet)
    assert message in str(caught.value)
