"""Soft Tuning constraints: the interface, plugin discovery and the weighted terms in the loss."""

from .base import Constraint, NoParams, validate_params
from .plugins import (
    GROUP,
    ConstraintLoadError,
    PluginInfo,
    check_loads,
    create_constraint,
    discover,
    list_constraints,
    load_constraint_class,
    refresh,
)
from .soft_tuning import ConstraintError, ConstraintSpec, SoftTuning

__all__ = [
    "GROUP",
    "Constraint",
    "ConstraintError",
    "ConstraintLoadError",
    "ConstraintSpec",
    "NoParams",
    "PluginInfo",
    "SoftTuning",
    "check_loads",
    "create_constraint",
    "discover",
    "list_constraints",
    "load_constraint_class",
    "refresh",
    "validate_params",
]
