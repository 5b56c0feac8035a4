"""Translate pydantic validation errors into located issues in plain words.

pydantic reports each error with a ``loc`` in *its* terms: union member tags
(``constrained-float``, ``Ramp``), discriminated-union tags (``training``) and
``[key]`` markers for bad mapping keys. :func:`translate_validation_error` walks
the root model's annotations (:class:`FleetSpec` by default; any other YAML input
validated the same way, e.g. a scenario file) along each ``loc`` to recover

- the path in the YAML's terms (``workloads[3].accelerators[0]``), located with
  the :class:`SourceMap` (a missing field at its parent mapping, an unknown field
  at its key, anything else at the offending value);
- the expected type with its bounds, to say what was expected
  ("expected a number >= 0, got 'lots'");
- the model at that place, to list valid fields and suggest the nearest one.

A *series* (number | list | {from, to} | {steps}) fails in every member of its
union at once; those errors collapse into one: the member the value's shape asks
for (a list's bad item, a ramp's missing ``to``), or one message listing the four
forms when the shape fits none.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, StringConstraints, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from cloudhedge.core.errors import SpecIssue
from cloudhedge.spec.schema import FleetSpec, Ramp, Steps
from cloudhedge.spec.source import PathKey, Position, SourceMap, format_path, sorted_issues
from cloudhedge.spec.source import suggest as closest

__all__ = ["SERIES_EXPECTED", "translate_validation_error"]

SERIES_EXPECTED = "a number, a list of numbers, {from: a, to: b} or {steps: {YYYY-MM: value}}"
_MONTH_PATTERN = r"^\d{4}-\d{2}$"
_MISSING = object()


@dataclass(frozen=True)
class _Where:
    """What a pydantic ``loc`` points at, in the YAML's terms."""

    path: PathKey
    model: type[BaseModel] | None  # model owning the last path segment (or the unknown key)
    annotation: Any  # the expected type at ``path``; None for an unknown field
    constraints: tuple[Any, ...]
    discriminator: str | None = None
    series: PathKey | None = None  # path of the enclosing series, if any
    branch: str | None = None  # series member: number | list | ramp | steps
    on_key: bool = False  # the error is about a mapping key, not its value


def translate_validation_error(
    exc: ValidationError,
    data: Any,
    source: SourceMap,
    root: type[BaseModel] = FleetSpec,
) -> list[SpecIssue]:
    """Every error of ``exc`` as a located issue, series errors collapsed, in file order.

    ``root`` is the model ``data`` was validated against.
    """
    issues: list[SpecIssue] = []
    series: dict[PathKey, list[tuple[ErrorDetails, _Where]]] = {}
    for error in exc.errors():
        where = _locate(tuple(error["loc"]), root)
        if where.series is not None:
            series.setdefault(where.series, []).append((error, where))
        else:
            issues.append(_issue(error, where, source))
    for path, group in series.items():
        value = _value_at(data, path)
        shape = _shape(value)
        chosen = [(e, w) for e, w in group if shape is not None and w.branch == shape]
        if chosen:
            issues.extend(_issue(e, w, source) for e, w in chosen)
        else:
            issues.append(source.issue(path, f"expected {SERIES_EXPECTED}, got {_got(value)}"))
    return sorted_issues(issues)


# --- walking the schema along a loc -------------------------------------------------


def _locate(loc: tuple[int | str, ...], root: type[BaseModel]) -> _Where:
    """Follow ``loc`` through ``root``'s annotations (see the module docstring)."""
    tp: Any = root
    path: list[str | int] = []
    model: type[BaseModel] | None = None
    series: PathKey | None = None
    branch: str | None = None
    i = 0
    while True:
        tp, constraints, discriminator = _unwrap(tp)
        if i >= len(loc):
            return _Where(tuple(path), model, tp, constraints, discriminator, series, branch)
        segment = loc[i]
        members = _union_members(tp)
        if members is not None:  # the segment names the union member that failed
            i += 1
            if discriminator is not None:
                tp = _member_by_tag(members, discriminator, segment)
            elif _is_series(members):
                series, (branch, tp) = tuple(path), _series_member(members, str(segment))
            else:
                tp = _member_by_name(members, str(segment))
            continue
        if _is_model(tp):
            model = tp
            found = _field(tp, str(segment))
            path.append(found[0] if found else str(segment))
            if found is None:  # an unknown key: nothing more to walk
                return _Where(tuple(path), model, None, (), None, series, branch)
            tp, i = found[1].rebuild_annotation(), i + 1
            continue
        origin = get_origin(tp)
        if origin is list and isinstance(segment, int):
            path.append(segment)
            tp, model, i = get_args(tp)[0], None, i + 1
            continue
        if origin is dict:
            key_type, value_type = get_args(tp)
            path.append(str(segment))
            model = None
            if i + 1 < len(loc) and loc[i + 1] == "[key]":
                key, key_constraints, _ = _unwrap(key_type)
                return _Where(tuple(path), None, key, key_constraints, None, series, branch, True)
            tp, i = value_type, i + 1
            continue
        # Anything else: keep the rest of the loc as it is.
        path.extend(s if isinstance(s, int) else str(s) for s in loc[i:])
        return _Where(tuple(path), model, None, (), None, series, branch)


def _unwrap(tp: Any) -> tuple[Any, tuple[Any, ...], str | None]:
    """Strip ``Annotated`` and ``| None``; collect constraints and a discriminator."""
    constraints: list[Any] = []
    discriminator: str | None = None
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *metadata = get_args(tp)
            for item in metadata:
                if isinstance(item, FieldInfo):
                    constraints.extend(item.metadata)
                    if isinstance(item.discriminator, str):
                        discriminator = item.discriminator
                else:
                    constraints.append(item)
            tp = base
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, tuple(constraints), discriminator


def _union_members(tp: Any) -> list[Any] | None:
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not type(None)]
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_series(members: list[Any]) -> bool:
    return Ramp in members and Steps in members


def _series_member(members: list[Any], tag: str) -> tuple[str, Any]:
    if tag == Ramp.__name__:
        return "ramp", Ramp
    if tag == Steps.__name__:
        return "steps", Steps
    if tag.startswith("list"):
        return "list", _member_by_name(members, tag)
    return "number", _member_by_name(members, tag)


def _member_by_name(members: list[Any], tag: str) -> Any:
    """A smart-union member from pydantic's tag for it (class name, ``list[...]``, ...)."""
    for member in members:
        bare = _unwrap(member)[0]
        if _is_model(bare) and bare.__name__ == tag:
            return member
        origin = get_origin(bare)
        if origin is not None and tag.startswith(getattr(origin, "__name__", "?")):
            return member
    plain = [m for m in members if get_origin(_unwrap(m)[0]) is None]
    return plain[0] if plain else members[0]


def _member_by_tag(members: list[Any], discriminator: str, tag: object) -> Any:
    for member in members:
        if tag in _tags_of(member, discriminator):
            return member
    return None


def _tags_of(member: Any, discriminator: str) -> tuple[Any, ...]:
    if _is_model(member):
        info = member.model_fields.get(discriminator)
        if info is not None and get_origin(info.annotation) is Literal:
            return get_args(info.annotation)
    return ()


def _field(model: type[BaseModel], key: str) -> tuple[str, FieldInfo] | None:
    """(the name the YAML uses, field info) for ``key`` given by alias or by name."""
    for name, info in model.model_fields.items():
        if key in (info.alias, name):
            return (info.alias or name), info
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


# --- messages -------------------------------------------------------------------------


def _issue(error: ErrorDetails, where: _Where, source: SourceMap) -> SpecIssue:
    kind = error["type"]
    value = error.get("input", _MISSING)
    context = error.get("ctx") or {}
    path = where.path
    if kind == "missing":
        return _at(source, source.key_position(path[:-1]), path, "field required")
    if kind == "extra_forbidden":
        key = str(path[-1])
        valid = _field_names(where.model) if where.model is not None else []
        message = f"unknown field '{key}'"
        if valid:
            message += f" (valid fields: {', '.join(valid)})"
        return _at(source, source.key_position(path), path, message, closest(key, valid))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        name = where.discriminator or str(context.get("discriminator", "kind")).strip("'")
        tags = [str(t) for m in _union_members(where.annotation) or [] for t in _tags_of(m, name)]
        choices = ", ".join(tags)
        if kind == "union_tag_not_found":
            text = f"field required (one of {choices})"
            return _at(source, source.position(path), (*path, name), text)
        tag = str(context.get("tag", ""))
        text = f"expected one of {choices}, got {_got(tag)}"
        return _at(source, source.position((*path, name)), (*path, name), text, closest(tag, tags))
    if where.on_key:
        hint = None
        if get_origin(where.annotation) is Literal and isinstance(value, str):
            hint = closest(value, [str(c) for c in get_args(where.annotation)])
        text = f"expected the key to be {_describe(where)}, got {_got(value)}"
        return _at(source, source.key_position(path), path, text, hint)
    if kind == "literal_error" and get_origin(where.annotation) is Literal:
        options = [str(c) for c in get_args(where.annotation)]
        hint = closest(value, options) if isinstance(value, str) else None
        text = f"expected one of {', '.join(options)}, got {_got(value)}"
        return _at(source, source.position(path), path, text, hint)
    if where.annotation is None:  # the schema walk lost track: keep pydantic's words
        return _at(source, source.position(path), path, error["msg"].lower())
    text = f"expected {_describe(where)}, got {_got(value)}"
    return _at(source, source.position(path), path, text)


def _at(
    source: SourceMap,
    position: Position,
    path: PathKey,
    message: str,
    suggestion: str | None = None,
) -> SpecIssue:
    line, column = position
    return SpecIssue(source.file, line, column, format_path(path), message, suggestion)


def _describe(where: _Where) -> str:
    return _describe_type(where.annotation, where.constraints, where.discriminator)


def _describe_type(tp: Any, constraints: tuple[Any, ...], discriminator: str | None) -> str:
    """What a value of type ``tp`` looks like, in plain words."""
    members = _union_members(tp)
    if members is not None:
        if _is_series(members):
            return SERIES_EXPECTED
        if discriminator is not None:
            tags = [str(t) for m in members for t in _tags_of(m, discriminator)]
            return f"a mapping with {discriminator}: one of {', '.join(tags)}"
        return " or ".join(_describe_type(*_unwrap(m)) for m in members)
    if _is_model(tp):
        return f"a mapping with fields {', '.join(_field_names(tp))}"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if origin is list:
        item = _describe_type(*_unwrap(get_args(tp)[0]))
        return f"a list (of {item})"
    if origin is dict:
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + _bounds(constraints)
    if tp is float:
        return "a number" + _bounds(constraints)
    if tp is str:
        for c in constraints:
            if isinstance(c, StringConstraints) and c.pattern == _MONTH_PATTERN:
                return "a month as YYYY-MM"
        return "text"
    return getattr(tp, "__name__", str(tp))


def _bounds(constraints: tuple[Any, ...]) -> str:
    parts = []
    for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        for c in constraints:
            bound = getattr(c, attr, None)
            if isinstance(bound, int | float):
                parts.append(f"{symbol} {_number(bound)}")
    return " " + " and ".join(parts) if parts else ""


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _got(value: Any) -> str:
    """A value as the user wrote it, for "got ..." in messages."""
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"'{text}'"
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:6])
        return f"a mapping ({keys})" if keys else "an empty mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return repr(value)


def _value_at(data: Any, path: PathKey) -> Any:
    """The raw value at ``path`` (mapping keys compared as strings)."""
    for part in path:
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            matches = [v for k, v in data.items() if str(k) == part]
            if not matches:
                return _MISSING
            data = matches[0]
        else:
            return _MISSING
    return data


def _shape(value: Any) -> str | None:
    """Which series form a value is trying to be."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        keys = {str(k) for k in value}
        if "steps" in keys:
            return "steps"
        if keys & {"from", "to", "from_"}:
            return "ramp"
    return None
