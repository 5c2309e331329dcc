"""Build frozen dataclasses from plain dicts (YAML, CLI), reporting every problem at once."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any


def type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + str(list(typing.get_args(hint)))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as YAML gives it) fits the annotation ``hint``."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(matches(v, args[0]) for v in value if args)
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def build(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    """``cls(**data)`` for a dataclass tree; problems go to ``problems`` as ``path: message``."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        problems.append(f"{path or 'config'}: expected a mapping of {cls.__name__} fields, got {data!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            problems.append(f"{where}: unknown key{hint} Valid keys: {', '.join(sorted(fields))}")
            continue
        hint = hints[key]
        nested = _dataclass_in(hint)
        if nested is not None and typing.get_origin(hint) is list:
            if not isinstance(value, list):
                problems.append(f"{where}: expected a list, got {value!r}")
                continue
            items = [build(nested, item, f"{where}[{i}]", problems) for i, item in enumerate(value)]
            if None not in items:
                kwargs[key] = items
        elif nested is not None and isinstance(value, dict):
            built = build(nested, value, where, problems)
            if built is not None:
                kwargs[key] = built
        elif not matches(value, hint):
            problems.append(f"{where}: expected {type_name(hint)}, got {value!r}")
        else:
            kwargs[key] = value
    # Fields that failed are left at their defaults, so this level's own checks still run and
    # report in the same error.
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        problems.append(f"{path or 'config'}: {error}")
        return None
