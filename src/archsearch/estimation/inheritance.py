"""Weight inheritance: a child trial starts from its parent's trained weights where names and
shapes match (the experiment keeps each trial's weights in ``OUT/weights``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from archsearch.options import Options, option


@dataclass(frozen=True)
class InheritanceOptions(Options):
    """The training evaluator's weight-inheritance options (off by default)."""

    inherit: bool = option(False, "trials return their trained weights; a child starts from its parent's")
    inherit_epochs: Optional[int] = option(None, "epochs a child that inherited trains (null: the fidelity's)",
                                           low=1)


def inherit_weights(model: nn.Module, init: dict[str, torch.Tensor]) -> float:
    """Copy into ``model`` every tensor of ``init`` whose name and shape match its state dict
    (the rest keeps its fresh initialisation); return the fraction of the model's parameters
    (by element count) that were inherited. Buffers (batch-norm statistics) are copied too but
    do not count."""
    state = model.state_dict()
    copied: set[str] = set()
    with torch.no_grad():
        for name, tensor in state.items():
            source = init.get(name)
            if isinstance(source, torch.Tensor) and source.shape == tensor.shape and source.dtype == tensor.dtype:
                tensor.copy_(source)
                copied.add(name)
    total = sum(p.numel() for p in model.parameters())
    inherited = sum(p.numel() for name, p in model.named_parameters() if name in copied)
    return inherited / total if total else 0.0
