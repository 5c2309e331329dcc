"""Discovery and loading of constraint plugins through the entry-point group ``visnet_hf.constraints``.

Plugins are found once per process (:func:`discover`), from package metadata only: nothing is
imported until a config names a constraint. Two distributions that register the same name are a
conflict, reported naming both, never one silently shadowing the other. Every failure names the
constraint, its distribution and version, and the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from .._validation import did_you_mean
from ..errors import VisnetError
from .base import Constraint

GROUP = "visnet_hf.constraints"


class ConstraintLoadError(VisnetError, ValueError):
    """A constraint plugin could not be loaded or configured; the message says which and why."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    target: str
    distribution: str
    version: str

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass(frozen=True)
class Discovered:
    """The installed constraints by name; ``conflicts`` holds every name registered by two or more distributions."""

    plugins: dict[str, tuple[PluginInfo, EntryPoint]]
    conflicts: dict[str, tuple[PluginInfo, ...]]


def _info(entry_point: EntryPoint) -> PluginInfo:
    dist = entry_point.dist
    return PluginInfo(
        name=entry_point.name,
        target=entry_point.value,
        distribution=dist.metadata["Name"] if dist else "unknown distribution",
        version=dist.version if dist else "unknown version",
    )


@lru_cache(maxsize=1)
def discover() -> Discovered:
    """Every installed constraint, from metadata alone; found once per process (:func:`refresh` finds them again)."""
    found: dict[str, list[tuple[PluginInfo, EntryPoint]]] = {}
    for entry_point in entry_points(group=GROUP):
        info = _info(entry_point)
        same = found.setdefault(entry_point.name, [])
        if all((other.distribution, other.target) != (info.distribution, info.target) for other, _ in same):
            same.append((info, entry_point))  # one distribution seen twice on sys.path is not a conflict
    return Discovered(
        plugins={name: entries[0] for name, entries in found.items()},
        conflicts={name: tuple(info for info, _ in entries) for name, entries in found.items() if len(entries) > 1},
    )


def refresh() -> Discovered:
    """Forget the plugins found so far and look again (after installing a package into a running process)."""
    discover.cache_clear()
    return discover()


def list_constraints() -> list[PluginInfo]:
    """Every installed constraint, without importing any of them."""
    return sorted((info for info, _ in discover().plugins.values()), key=lambda info: info.name)


def conflict_message(name: str) -> str | None:
    """Why ``name`` cannot be used when several distributions register it; ``None`` when it is unique."""
    rivals = discover().conflicts.get(name)
    if not rivals:
        return None
    listed = " and ".join(f"{info.origin} ({info.target})" for info in rivals)
    return (
        f"Constraint {name!r} is registered by {len(rivals)} distributions: {listed}. "
        f"Uninstall all but one (pip uninstall {rivals[-1].distribution}), so the config means one thing."
    )


def load_constraint_class(name: str) -> type[Constraint]:
    """Import the plugin ``name`` and check that it is a ``Constraint`` subclass.

    Raises:
        ConstraintLoadError: unknown or conflicting name, import failure or an object of the wrong kind.
    """
    found = discover().plugins.get(name)
    if found is None:
        raise ConstraintLoadError(unknown_constraint_message(name))
    conflict = conflict_message(name)
    if conflict:
        raise ConstraintLoadError(conflict)
    info, entry_point = found
    try:
        loaded = entry_point.load()
    except Exception as error:  # a plugin may fail in any way; report it, never hide it
        raise ConstraintLoadError(
            f"Constraint {name!r} (from {info.origin}, {info.target}) failed to import: "
            f"{type(error).__name__}: {error}. Fix or reinstall {info.distribution}, or remove it from the config."
        ) from error
    if not (isinstance(loaded, type) and issubclass(loaded, Constraint)):
        raise ConstraintLoadError(
            f"Constraint {name!r} (from {info.origin}) points at {info.target}, which is a "
            f"{type(loaded).__name__}, not a visnet_hf.constraints.Constraint subclass."
        )
    return loaded


def create_constraint(name: str, params: dict | None = None) -> Constraint:
    """Load ``name`` and instantiate it with validated ``params``."""
    constraint_class = load_constraint_class(name)
    try:
        constraint = constraint_class(**(params or {}))
    except (TypeError, ValueError) as error:
        info, _ = discover().plugins[name]
        raise ConstraintLoadError(f"Constraint {name!r} (from {info.origin}) has bad parameters: {error}") from error
    constraint.name = name
    return constraint


def unknown_constraint_message(name: str) -> str:
    installed = sorted(discover().plugins)
    return (
        f"Unknown constraint {name!r}.{did_you_mean(name, installed)} Installed constraints: "
        f"{', '.join(installed) or 'none'} (see `visnet plugins list`)."
    )


def check_loads(name: str) -> tuple[bool, str]:
    """Whether the plugin imports and is a Constraint, and why not (for ``visnet plugins list``)."""
    try:
        load_constraint_class(name)
    except ConstraintLoadError as error:
        return False, str(error)
    return True, ""
