"""Discovery and loading of constraint plugins through the entry-point group ``visnet_hf.constraints``.

Listing reads package metadata only and imports nothing; a plugin's code runs only when a config
names it. Every failure names the constraint, its distribution and version, and the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from .base import Constraint

GROUP = "visnet_hf.constraints"


class ConstraintLoadError(ValueError):
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


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _info(entry_point: EntryPoint) -> PluginInfo:
    dist = entry_point.dist
    return PluginInfo(
        name=entry_point.name,
        target=entry_point.value,
        distribution=dist.metadata["Name"] if dist else "unknown distribution",
        version=dist.version if dist else "unknown version",
    )


def list_constraints() -> list[PluginInfo]:
    """Every installed constraint, without importing any of them."""
    return sorted((_info(ep) for ep in _entry_points().values()), key=lambda info: info.name)


def load_constraint_class(name: str) -> type[Constraint]:
    """Import the plugin ``name`` and check that it is a ``Constraint`` subclass.

    Raises:
        ConstraintLoadError: unknown name, import failure or an object of the wrong kind.
    """
    entry_point = _entry_points().get(name)
    if entry_point is None:
        raise ConstraintLoadError(unknown_constraint_message(name))
    info = _info(entry_point)
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
        info = _info(_entry_points()[name])
        raise ConstraintLoadError(f"Constraint {name!r} (from {info.origin}) has bad parameters: {error}") from error
    constraint.name = name
    return constraint


def unknown_constraint_message(name: str) -> str:
    import difflib

    installed = sorted(_entry_points())
    close = difflib.get_close_matches(name, installed, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown constraint {name!r}.{hint} Installed constraints: {', '.join(installed) or 'none'} "
        "(see `visnet plugins list`)."
    )


def check_loads(name: str) -> tuple[bool, str]:
    """Whether the plugin imports and is a Constraint, and why not (for ``visnet plugins list``)."""
    try:
        load_constraint_class(name)
    except ConstraintLoadError as error:
        return False, str(error)
    return True, ""
