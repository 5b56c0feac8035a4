"""Where each node of a fleet spec sits in its file, and located issues.

A :class:`SourceMap` maps a *path* (a tuple of mapping keys and sequence indices,
e.g. ``("workloads", 3, "accelerators", 0)``) to the 1-based line and column of the
node in the YAML file. Mapping keys are always strings (non-string YAML keys are
stored as ``str(key)``) and sequence indices always ints, so a path can be printed
unambiguously in the YAML's terms: ``workloads[3].accelerators[0]``.

An :class:`IssueLog` collects :class:`~cloudhedge.core.errors.SpecIssue` values
while a spec is checked, so that every problem is reported at once in one
:class:`~cloudhedge.core.errors.SpecError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from cloudhedge.core.errors import SpecError, SpecIssue

PathKey: TypeAlias = tuple[str | int, ...]
"""A node's path: mapping keys (str) and sequence indices (int)."""

Position: TypeAlias = tuple[int, int]
"""A 1-based (line, column); (0, 0) when unknown."""

UNKNOWN: Position = (0, 0)


def format_path(path: Iterable[str | int]) -> str:
    """``("workloads", 3, "accelerators", 0)`` -> ``"workloads[3].accelerators[0]"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a misspelled ``name`` (case, spelling, prefix), or None."""
    options = sorted(set(candidates))
    folded = {c.casefold(): c for c in options}
    if name.casefold() in folded and folded[name.casefold()] != name:
        return folded[name.casefold()]
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
    if close:
        return folded[close[0]]
    # a shortened name: "unmet_penalty" -> "unmet_penalty_usd_per_million_tokens"
    prefixed = [c for c in options if c.casefold().startswith(name.casefold())] if name else []
    return prefixed[0] if len(prefixed) == 1 else None


class SourceMap:
    """Positions of the nodes of one spec file, by path.

    ``nodes`` holds the position of each node (a value or a sequence item); ``keys``
    the position of the key of each mapping entry. Lookups of a path that was not
    recorded fall back to its longest recorded prefix, so a spec built in code (with
    an empty map) still yields issues, only without positions.
    """

    def __init__(
        self,
        file: str,
        nodes: Mapping[PathKey, Position] | None = None,
        keys: Mapping[PathKey, Position] | None = None,
    ) -> None:
        self.file = file
        self._nodes: dict[PathKey, Position] = dict(nodes or {})
        self._keys: dict[PathKey, Position] = dict(keys or {})

    def __contains__(self, path: object) -> bool:
        return path in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"SourceMap({self.file!r}, {len(self._nodes)} nodes)"

    def position(self, path: PathKey) -> Position:
        """Where the node at ``path`` starts (its value, for a mapping entry)."""
        for end in range(len(path), -1, -1):
            found = self._nodes.get(path[:end])
            if found is not None:
                return found
        return UNKNOWN

    def key_position(self, path: PathKey) -> Position:
        """Where the key of the mapping entry at ``path`` is; the node's position otherwise."""
        return self._keys.get(path) or self.position(path)

    def issue(
        self,
        path: PathKey,
        message: str,
        suggestion: str | None = None,
        *,
        at_key: bool = False,
    ) -> SpecIssue:
        """A :class:`SpecIssue` located at ``path`` (at its key with ``at_key``)."""
        line, column = self.key_position(path) if at_key else self.position(path)
        return SpecIssue(
            file=self.file,
            line=line,
            column=column,
            path=format_path(path),
            message=message,
            suggestion=suggestion,
        )


class IssueLog:
    """Collects located issues; :meth:`raise_if_any` raises them as one SpecError."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.issues: list[SpecIssue] = []

    def __bool__(self) -> bool:
        return bool(self.issues)

    def add(
        self,
        path: PathKey,
        message: str,
        suggestion: str | None = None,
        *,
        at_key: bool = False,
    ) -> None:
        self.issues.append(self.source.issue(path, message, suggestion, at_key=at_key))

    def unknown(self, path: PathKey, what: str, name: str, known: Iterable[str]) -> None:
        """Report an unknown name, suggesting the closest known one."""
        self.add(path, f"unknown {what} '{name}'", suggest(name, known))

    def raise_if_any(self) -> None:
        if self.issues:
            raise SpecError(sorted_issues(self.issues))


def sorted_issues(issues: Iterable[SpecIssue]) -> list[SpecIssue]:
    """Issues without duplicates, in file order (unlocated ones last)."""
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.line == 0, i.line, i.column, i.path))
