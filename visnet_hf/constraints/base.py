"""The Soft Tuning constraint interface.

A constraint is a weighted term added to the training loss. Subclass ``Constraint``, declare its
parameters as a dataclass ``Params``, implement ``__call__``; publish it through the entry-point
group ``visnet_hf.constraints`` and any config can name it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn as nn

from .._validation import build


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For constraints without parameters."""


class Constraint:
    """Base class of every Soft Tuning constraint.

    Subclasses set ``Params`` to a frozen dataclass (its fields are the config's ``params``; raise
    ``ValueError`` in ``__post_init__`` for impossible values) and implement ``__call__``.

    Attributes:
        name: the entry-point name, set when the constraint is loaded.
        params: the validated ``Params`` instance.
    """

    Params: ClassVar[type] = NoParams
    name: str = ""
    # Whether the term runs the model on changed images (which pre-computed features do not allow).
    uses_images: ClassVar[bool] = False

    def __init__(self, **params: Any):
        self.params = validate_params(self.Params, params)

    def setup(self, model: nn.Module) -> None:
        """Called once, after the model is built and before training (e.g. to snapshot weights)."""

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor], outputs: Any) -> torch.Tensor:
        """Return one scalar tensor: the unweighted term for this batch."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State that must survive a resume (tensors and plain values)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


def validate_params(params_class: type, params: Mapping[str, Any]) -> Any:
    """Build ``params_class(**params)`` with the project's one config validation (:mod:`visnet_hf._validation`).

    Raises:
        ValueError: listing every problem (unknown names with close matches, wrong types, impossible values).
    """
    problems: list[str] = []
    built = build(params_class, dict(params), "params", problems)
    if problems:
        raise ValueError("; ".join(problems))
    return built
