"""Periods and series: ``YYYY-MM`` references -> period indices, spec series -> tuples.

A :class:`Calendar` knows the horizon's first month and its number of periods; it
turns a month reference into a period index (negative before the horizon, beyond
the last period after it). :func:`to_series` turns any of the four spec forms of a
series into a tuple with one float per period, reporting located issues to an
:class:`IssueLog` (and returning zeros for a series it cannot read, so that
resolution can go on and report everything at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from cloudhedge.core.models import Horizon
from cloudhedge.spec.schema import Ramp, Series, Steps
from cloudhedge.spec.source import IssueLog, PathKey

__all__ = ["Calendar", "parse_month", "to_series"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(ref: str) -> tuple[int, int] | None:
    """``"2026-03"`` -> (2026, 3); None unless a ``YYYY-MM`` with a month 01-12."""
    match = _MONTH.match(ref)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return year, month


def bad_date(ref: str) -> str:
    """The message for a period reference that is not a valid month."""
    return f"bad date '{ref}': expected a month as YYYY-MM with the month 01-12"


@dataclass(frozen=True)
class Calendar:
    """Monthly periods from ``year``-``month`` on, ``periods`` of them."""

    year: int
    month: int
    periods: int

    @property
    def horizon(self) -> Horizon:
        return Horizon(start=date(self.year, self.month, 1), periods=self.periods)

    @property
    def last(self) -> int:
        return self.periods - 1

    def index(self, ref: str) -> int | None:
        """The period index of month ``ref`` (may lie outside the horizon); None if bad."""
        parsed = parse_month(ref)
        if parsed is None:
            return None
        return (parsed[0] - self.year) * 12 + (parsed[1] - self.month)

    def label(self, t: int) -> str:
        months = self.month - 1 + t
        return f"{self.year + months // 12:04d}-{months % 12 + 1:02d}"

    @property
    def span(self) -> str:
        """The horizon as text, e.g. ``2026-01..2028-12``."""
        return f"{self.label(0)}..{self.label(self.last)}"

    def term(
        self, start: str, end: str, path: PathKey, log: IssueLog, what: str
    ) -> tuple[int, int] | None:
        """A ``start``..``end`` term (a window, a contract) as period indices, clipped.

        ``path`` points at the mapping holding ``start`` and ``end``. Reports a bad
        month, an end before the start, or a term wholly outside the horizon.
        """
        first, last = self.index(start), self.index(end)
        if first is None:
            log.add((*path, "start"), bad_date(start))
        if last is None:
            log.add((*path, "end"), bad_date(end))
        if first is None or last is None:
            return None
        if last < first:
            log.add((*path, "end"), f"the {what} ends ({end}) before it starts ({start})")
            return None
        if last < 0 or first > self.last:
            message = f"the {what} {start}..{end} lies outside the horizon {self.span}"
            log.add((*path, "start"), message)
            return None
        return max(first, 0), min(last, self.last)


def to_series(value: Series, calendar: Calendar, path: PathKey, log: IssueLog) -> tuple[float, ...]:
    """A spec series -> one float per period (zeros if it cannot be read; issues logged)."""
    n = calendar.periods
    if isinstance(value, Ramp):
        if n == 1:
            return (float(value.from_),)
        # weights rather than steps, so that both ends are exact
        return tuple(
            float(value.from_ * (n - 1 - t) / (n - 1) + value.to * t / (n - 1)) for t in range(n)
        )
    if isinstance(value, Steps):
        return _steps(value, calendar, path, log)
    if isinstance(value, list):
        if len(value) != n:
            log.add(
                path,
                f"expected {n} values (one per period of the horizon {calendar.span}), "
                f"got {len(value)}",
            )
            return (0.0,) * n
        return tuple(float(v) for v in value)
    return (float(value),) * n


def _steps(value: Steps, calendar: Calendar, path: PathKey, log: IssueLog) -> tuple[float, ...]:
    """A step function: 0 before the first step; each value holds from its period on."""
    changes: list[tuple[int, float]] = []
    ok = True
    for ref, amount in value.steps.items():
        where = (*path, "steps", ref)
        index = calendar.index(ref)
        if index is None:
            log.add(where, bad_date(ref), at_key=True)
            ok = False
        elif index > calendar.last:
            log.add(
                where,
                f"the step {ref} comes after the horizon ends ({calendar.label(calendar.last)})",
                at_key=True,
            )
            ok = False
        else:
            changes.append((index, float(amount)))
    if not ok:
        return (0.0,) * calendar.periods
    changes.sort()
    values: list[float] = []
    current, pending = 0.0, iter(changes)
    upcoming = next(pending, None)
    for t in range(calendar.periods):
        while upcoming is not None and upcoming[0] <= t:
            current = upcoming[1]
            upcoming = next(pending, None)
        values.append(current)
    return tuple(values)
