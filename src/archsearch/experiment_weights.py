"""Weight inheritance (``evaluator.inherit``): each completed trial's trained state dict is saved as
``weights/<arch_id>.pt`` (files, so a resume finds them again), and a child starts from its
parent's. A part of :class:`~archsearch.experiment.Experiment`."""

from __future__ import annotations

import os
from typing import Optional

import torch

from archsearch.core import Trial
from archsearch.estimation.base import Evaluator, SupportsInheritance
from archsearch.experiment_final import atomic_write


class WeightInheritance:
    """Provided by :class:`~archsearch.experiment.Experiment`: the attributes below."""

    evaluator: Evaluator
    out_dir: str

    def _inherits(self) -> bool:
        return isinstance(self.evaluator, SupportsInheritance) and self.evaluator.inherits()

    def weights_path(self, arch_id: str) -> str:
        return os.path.join(self.out_dir, "weights", f"{arch_id}.pt")

    def _parent_weights(self, trial: Trial) -> Optional[dict[str, torch.Tensor]]:
        """The parent's saved state dict, or None (no parent, or its file is missing or unreadable:
        the child then trains from scratch and its ``inherited`` metric says 0)."""
        if trial.parent is None:
            return None
        path = self.weights_path(trial.parent)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - missing or damaged: train from scratch
            return None
        return state if isinstance(state, dict) else None

    def _save_weights(self, trial: Trial, weights: dict[str, torch.Tensor]) -> None:
        os.makedirs(os.path.join(self.out_dir, "weights"), exist_ok=True)
        atomic_write(self.weights_path(trial.arch.id), lambda path: torch.save(weights, path))
