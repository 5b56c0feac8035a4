"""Load a fleet spec: YAML text -> :class:`FleetSpec` plus a :class:`SourceMap`.

The YAML is parsed with ruamel.yaml's round-trip loader, which keeps the line and
column of every mapping key and sequence item. The parsed tree is turned into plain
Python data (dicts, lists, scalars) while the positions are recorded by path, then
validated with pydantic. Every failure raises :class:`SpecError` with located
issues:

- YAML syntax errors and duplicate keys, at the mark ruamel reports;
- every pydantic error, translated by :mod:`cloudhedge.spec.errors` into the YAML's
  path and plain words.

Cross references (names, periods, prices) are checked later, by
:func:`cloudhedge.spec.resolve.resolve`, using the same :class:`SourceMap`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from cloudhedge.core.errors import SpecError, SpecIssue
from cloudhedge.spec.errors import translate_validation_error
from cloudhedge.spec.schema import FleetSpec
from cloudhedge.spec.source import PathKey, Position, SourceMap

__all__ = ["load_spec", "load_spec_text", "parse_yaml", "read_input", "validate_text"]


def read_input(path: Path) -> str:
    """The text of an input file; a :class:`SpecError` naming it when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(
            [SpecIssue(str(path), 0, 0, "", f"cannot read the file: {reason}")]
        ) from exc


def load_spec(path: Path) -> tuple[FleetSpec, SourceMap]:
    """Read, parse and validate the fleet spec at ``path``."""
    return load_spec_text(read_input(path), str(path))


def load_spec_text(text: str, filename: str) -> tuple[FleetSpec, SourceMap]:
    """Parse and validate fleet spec ``text``; ``filename`` is used in issues."""
    data, source = parse_yaml(text, filename)
    if data is None:
        raise SpecError([SpecIssue(filename, 1, 1, "", "the file is empty: expected a fleet spec")])
    try:
        spec = FleetSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(translate_validation_error(exc, data, source)) from exc
    return spec, source


def parse_yaml(text: str, filename: str, *,
               max_nodes: int | None = None) -> tuple[Any, SourceMap]:
    """YAML ``text`` -> (plain Python data, positions of its nodes).

    ``max_nodes`` bounds the nodes of the data once aliases are expanded (an "alias
    bomb" of a few hundred bytes expands to millions): past it, a :class:`SpecError`.
    """
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        raise SpecError([_yaml_issue(exc, filename)]) from exc
    except YAMLError as exc:  # e.g. a character YAML does not allow (ReaderError)
        raise SpecError([_reader_issue(exc, text, filename)]) from exc
    except RecursionError:
        raise SpecError([SpecIssue(filename, 1, 1, "", "the YAML is nested too deeply")]) \
            from None
    root = (tree.lc.line + 1, tree.lc.col + 1) if isinstance(tree, CommentedMap) else (1, 1)
    nodes: dict[PathKey, Position] = {(): root}
    keys: dict[PathKey, Position] = {}
    budget = [max_nodes if max_nodes is not None else -1]
    try:
        data = _plain(tree, (), nodes, keys, budget)
    except RecursionError:
        raise SpecError([SpecIssue(filename, 1, 1, "", "the YAML is nested too deeply")]) \
            from None
    except _TooBig:
        raise SpecError([SpecIssue(filename, 1, 1, "", (
            f"the YAML expands to more than {max_nodes:,} values (through aliases?): "
            "too large for this input"))]) from None
    return data, SourceMap(filename, nodes, keys)


class _TooBig(Exception):
    """More nodes than the caller allows."""


def _plain(
    node: Any,
    path: PathKey,
    nodes: dict[PathKey, Position],
    keys: dict[PathKey, Position],
    budget: list[int],
) -> Any:
    """Copy a ruamel tree into plain data, recording each node's position by path.

    ``budget[0]`` counts down the nodes still allowed (negative: no bound).
    """
    if budget[0] >= 0:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooBig
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        positions = getattr(node.lc, "data", None) or {}  # None under a merge key
        for key, value in node.items():
            child = (*path, str(key))
            where = positions.get(key)
            if where is not None:
                keys[child] = (where[0] + 1, where[1] + 1)
                # A null value has no node of its own: point at its key.
                at = (where[0], where[1]) if value is None else (where[2], where[3])
                nodes[child] = (at[0] + 1, at[1] + 1)
            out[_scalar(key)] = _plain(value, child, nodes, keys, budget)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            where = (getattr(node.lc, "data", None) or {}).get(index)
            if where is not None:
                nodes[child] = (where[0] + 1, where[1] + 1)
            items.append(_plain(value, child, nodes, keys, budget))
        return items
    return _scalar(node)


def _scalar(value: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, ScalarInt, ...) -> builtin types."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _reader_issue(exc: YAMLError, text: str, filename: str) -> SpecIssue:
    """A ruamel error without a mark (a character YAML forbids) -> an issue at it."""
    position = getattr(exc, "position", None)
    line, column = 0, 0
    if isinstance(position, int) and 0 <= position <= len(text):
        before = text[:position]
        line = before.count("\n") + 1
        column = position - (before.rfind("\n") + 1) + 1
    character = getattr(exc, "character", None)
    what = (f"character {character!r} is not allowed in YAML"
            if isinstance(character, (str, int)) and character != "" else str(exc))
    return SpecIssue(filename, line, column, "", f"YAML syntax error: {what}")


_DUPLICATE = re.compile(r'found duplicate key "(?P<key>.*?)"')


def _yaml_issue(exc: MarkedYAMLError, filename: str) -> SpecIssue:
    """A ruamel error -> an issue at its problem mark (its context mark otherwise)."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    problem = str(exc.problem or exc.context or "invalid YAML")
    if isinstance(exc, DuplicateKeyError):
        match = _DUPLICATE.search(problem)
        key = match.group("key") if match else "?"
        where = ""
        if exc.context_mark is not None:
            where = f" starting at line {exc.context_mark.line + 1}"
        message = f"duplicate key '{key}': a key may appear only once in a mapping{where}"
        return SpecIssue(filename, line, column, "", message)
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.problem:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return SpecIssue(filename, line, column, "", message)


_Root = TypeVar("_Root", bound=BaseModel)


def validate_text(text: str, filename: str, root: type[_Root], expected: str, *,
                  max_nodes: int | None = None) -> tuple[_Root, SourceMap]:
    """Parse YAML ``text`` and validate it as ``root`` (any input file's schema).

    Every problem is a :class:`SpecError` located at file:line:column. The pydantic
    error is not chained: its message echoes input values, which may be secrets.
    ``max_nodes``: see :func:`parse_yaml`.
    """
    data, source = parse_yaml(text, filename, max_nodes=max_nodes)
    if data is None:
        raise SpecError([SpecIssue(filename, 1, 1, "", f"the file is empty: expected {expected}")])
    try:
        return root.model_validate(data), source
    except ValidationError as exc:
        raise SpecError(translate_validation_error(exc, data, source, root)) from None

