"""Filter values: stay near the pretrained values (L2-SP) or stay decorrelated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from visnet_hf.constraints import Constraint

from ._common import unwrap


class FilterValues(Constraint):
    """Two modes over the weights (``ndim > 1``) whose names start with ``prefix``.

    * ``l2sp``: ``sum ||w - w0||^2`` with ``w0`` the values at ``setup`` (the pretrained ones);
      ``w0`` is part of the constraint's state, so it survives a resume.
    * ``decorrelation``: mean squared off-diagonal cosine between the filters of each layer.
    """

    @dataclass(frozen=True)
    class Params:
        mode: Literal["l2sp", "decorrelation"] = "l2sp"
        prefix: str = "backbone."

    def __init__(self, **params):
        super().__init__(**params)
        self.reference: dict[str, torch.Tensor] = {}

    def _weights(self, model):
        return {
            name: param
            for name, param in unwrap(model).named_parameters()
            if name.startswith(self.params.prefix) and param.ndim > 1
        }

    def setup(self, model) -> None:
        if self.params.mode == "l2sp":
            self.reference = {name: param.detach().clone() for name, param in self._weights(model).items()}
        if not self._weights(model):
            raise ValueError(f"filter_values: no weights under prefix {self.params.prefix!r}.")

    def __call__(self, model, batch, outputs) -> torch.Tensor:
        weights = self._weights(model)
        if self.params.mode == "l2sp":
            return sum(
                (param.float() - self.reference[name].to(param.device).float()).pow(2).sum() for name, param in weights.items()
            )
        penalties = []
        for param in weights.values():
            filters = torch.nn.functional.normalize(param.float().flatten(1), dim=1)
            if filters.shape[0] < 2:
                continue
            gram = filters @ filters.T
            off_diagonal = gram - torch.diag_embed(gram.diagonal())
            penalties.append(off_diagonal.pow(2).sum() / (gram.numel() - gram.shape[0]))
        return torch.stack(penalties).mean()

    def state_dict(self) -> dict:
        return {"reference": {name: tensor.cpu() for name, tensor in self.reference.items()}}

    def load_state_dict(self, state) -> None:
        self.reference = {name: tensor.clone() for name, tensor in state.get("reference", {}).items()}
