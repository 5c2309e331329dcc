"""One validation mechanism for every config the user writes: training configs (YAML, ``key=value``),
constraint ``Params`` and model configs.

Each is a dataclass whose annotations say what a field accepts (``Literal`` for a choice). Values
are checked against the annotations the way YAML and JSON produce them (an ``int`` is a fine
``float``), and every problem is collected so that one error names them all, with close matches
for misspelled names (:func:`did_you_mean`, the only "did you mean" in the project).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Iterable
from typing import Any


def did_you_mean(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """``" Did you mean 'a' or 'b'?"`` for the choices closest to ``name``; ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=cutoff)
    if not close:
        return ""
    quoted = [repr(c) for c in close]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" Did you mean {listed}?"


def type_name(hint: Any) -> str:
    """A readable name for an annotation: ``one of ['a', 'b']``, ``int``, ``list[str] | None``."""
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + str(list(typing.get_args(hint)))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return str(getattr(hint, "__name__", hint)) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as YAML or JSON gives it) fits the annotation ``hint``."""
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
        key_hint, value_hint = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(matches(k, key_hint) and matches(v, value_hint) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    return isinstance(value, hint) if isinstance(hint, type) else True


def own_field_hints(cls: type, stop: type) -> dict[str, Any]:
    """The annotations of ``cls`` and its bases below ``stop``, evaluated in each class's own module.

    Used for model configs, whose ``transformers`` base declares fields of its own that are not ours
    to check (and whose annotations need imports we do not make).
    """
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is stop or not issubclass(klass, stop):
            continue
        hints.update(inspect.get_annotations(klass, eval_str=True))
    return {name: hint for name, hint in hints.items() if typing.get_origin(hint) is not typing.ClassVar}


def mismatch(where: str, value: Any, hint: Any) -> str:
    """``where: expected <type>, got <value>``, with close matches when a choice was misspelled."""
    choices = [
        arg for h in (hint, *typing.get_args(hint)) if typing.get_origin(h) is typing.Literal for arg in typing.get_args(h)
    ]
    close = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
    return f"{where}: expected {type_name(hint)}, got {value!r}" + (f".{close}" if close else "")


def check_types(values: dict[str, Any], hints: dict[str, Any], path: str, problems: list[str]) -> None:
    """Add a problem for every value whose type its annotation does not accept."""
    for name, value in values.items():
        if name in hints and not matches(value, hints[name]):
            problems.append(mismatch(_join(path, name), value, hints[name]))


def _dataclass_in(hint: Any) -> type | None:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if isinstance(arg, type) and dataclasses.is_dataclass(arg):
            return arg
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    """``cls(**data)`` for a tree of dataclasses; every problem goes to ``problems`` as ``path: message``.

    Unknown keys are named with close matches and the valid keys; values are checked against the
    annotations; ``ValueError`` / ``TypeError`` from a dataclass's own ``__post_init__`` checks are
    reported under its path. Returns ``None`` when this level could not be built.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        problems.append(f"{path or 'config'}: expected a mapping of {cls.__name__} fields, got {data!r}")
        return None
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        where = _join(path, key)
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "none"
            problems.append(f"{where}: unknown key.{did_you_mean(key, fields)} Valid keys: {valid}")
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
            problems.append(mismatch(where, value, hint))
        else:
            kwargs[key] = value
    # Fields that failed are left at their defaults, so this level's own checks still run and
    # report in the same error.
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        problems.append(f"{path}: {error}" if path else str(error))
        return None


def validate(cls: type, data: Any, error: type[Exception], what: str) -> Any:
    """:func:`build`, raising one ``error`` that lists every problem (``what`` names the config)."""
    problems: list[str] = []
    built = build(cls, data, "", problems)
    if problems:
        raise error(f"{what}: " + "; ".join(problems))
    return built


def raise_problems(problems: list[str], error: type[Exception], what: str) -> None:
    """Raise one ``error`` listing ``problems`` (one per line), if there are any."""
    if problems:
        listed = "\n  - ".join(problems)
        raised = error(f"{len(problems)} problem(s) in {what}:\n  - {listed}")
        raised.problems = list(problems)  # type: ignore[attr-defined]  # for a caller that reports them with its own
        raise raised
