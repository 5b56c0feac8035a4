"""Series forms and period references (cloudhedge.spec.series)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudhedge.spec.schema import Ramp, Steps
from cloudhedge.spec.series import Calendar, parse_month, to_series
from cloudhedge.spec.source import IssueLog, SourceMap

CAL = Calendar(2026, 1, 6)


def log() -> IssueLog:
    return IssueLog(SourceMap("s.yaml"))


def test_parse_month() -> None:
    assert parse_month("2026-03") == (2026, 3)
    assert parse_month("2026-13") is None
    assert parse_month("2026-00") is None
    assert parse_month("2026-3") is None


def test_calendar_indices_and_labels() -> None:
    cal = Calendar(2026, 11, 4)
    assert cal.index("2026-11") == 0
    assert cal.index("2027-02") == 3
    assert cal.index("2026-01") == -10
    assert cal.index("2026-13") is None
    assert [cal.label(t) for t in range(4)] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert cal.horizon.labels == ("2026-11", "2026-12", "2027-01", "2027-02")
    assert cal.span == "2026-11..2027-02"


def test_constant_and_list() -> None:
    issues = log()
    assert to_series(5.0, CAL, ("x",), issues) == (5.0,) * 6
    assert to_series([1.0, 2, 3, 4, 5, 6], CAL, ("x",), issues) == (1, 2, 3, 4, 5, 6)
    assert not issues


def test_list_of_the_wrong_length_is_reported_and_zeroed() -> None:
    issues = log()
    assert to_series([1.0, 2.0], CAL, ("pools", 0, "capacity_chips"), issues) == (0.0,) * 6
    (issue,) = issues.issues
    assert issue.path == "pools[0].capacity_chips"
    assert issue.message.startswith("expected 6 values")


def test_ramp() -> None:
    ramp = Ramp.model_validate({"from": 10, "to": 60})
    assert to_series(ramp, CAL, ("x",), log()) == (10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
    assert to_series(ramp, Calendar(2026, 1, 1), ("x",), log()) == (10.0,)


def test_steps_hold_from_their_period_on() -> None:
    steps = Steps.model_validate({"steps": {"2026-05": 7, "2026-02": 3}})
    assert to_series(steps, CAL, ("x",), log()) == (0.0, 3.0, 3.0, 3.0, 7.0, 7.0)


def test_a_step_before_the_horizon_sets_its_start() -> None:
    steps = Steps.model_validate({"steps": {"2025-06": 4, "2026-03": 9}})
    assert to_series(steps, CAL, ("x",), log()) == (4.0, 4.0, 9.0, 9.0, 9.0, 9.0)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("2026-13", "bad date '2026-13'"),
        ("2027-01", "the step 2027-01 comes after the horizon ends (2026-06)"),
    ],
)
def test_bad_step_keys(key: str, message: str) -> None:
    issues = log()
    steps = Steps.model_validate({"steps": {key: 1}})
    assert to_series(steps, CAL, ("d",), issues) == (0.0,) * 6
    (issue,) = issues.issues
    assert issue.path == f"d.steps.{key}"
    assert issue.message.startswith(message)


@given(
    start=st.floats(0, 1e6),
    end=st.floats(0, 1e6),
    periods=st.integers(1, 60),
)
def test_ramp_runs_from_start_to_end_monotonically(start: float, end: float, periods: int) -> None:
    values = to_series(
        Ramp.model_validate({"from": start, "to": end}), Calendar(2026, 1, periods), ("x",), log()
    )
    assert len(values) == periods
    assert values[0] == pytest.approx(start)
    if periods > 1:
        assert values[-1] == pytest.approx(end)
    diffs = [b - a for a, b in itertools.pairwise(values)]
    assert all(d >= -1e-6 for d in diffs) or all(d <= 1e-6 for d in diffs)


@given(
    steps=st.dictionaries(st.integers(-24, 11), st.floats(0, 1e6), min_size=1, max_size=6),
)
def test_steps_equal_the_latest_step_at_or_before_each_period(steps: dict[int, float]) -> None:
    cal = Calendar(2026, 1, 12)
    refs = {Calendar(2026, 1, 1).label(t): v for t, v in steps.items()}
    values = to_series(Steps.model_validate({"steps": refs}), cal, ("x",), log())
    for t, value in enumerate(values):
        earlier = [k for k in steps if k <= t]
        assert value == (steps[max(earlier)] if earlier else 0.0)
