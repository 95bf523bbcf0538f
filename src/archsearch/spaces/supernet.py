"""The supernet protocol: every architecture of a space as a path through one shared network.

A space that supports one-shot search (``SearchSpace.supernet(task)``) returns a
:class:`Supernet`. Its choice points are the places where candidates compete (an edge's
operation, a skip connection on/off); one-shot methods own the architecture parameters and
pass one weight vector per choice point to ``forward``:

* DARTS: a softmax per choice point, every candidate computed and mixed;
* GDAS: a straight-through one-hot vector, so only the sampled candidate runs;
* ENAS / SPOS: ``one_hot(space.encode ... )`` via :meth:`Supernet.path_weights` of a sampled path.

Candidates whose weight is exactly zero are not computed, which is what makes sampled paths
cheap. ``derive`` turns learned weights into the space's own genotype with the space's rule
(DARTS: top-2 incoming edges per node; NAS-Bench-201: argmax per edge), and ``path`` maps a
genotype back to choice indices, so a sampled child can be evaluated with inherited weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from archsearch.spaces.base import Architecture


@dataclass(frozen=True)
class ChoicePoint:
    """One place in the supernet where candidates compete."""

    name: str
    candidates: tuple[str, ...]


def mix(ops: Sequence[nn.Module], x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_i w_i * op_i(x) over the candidates with non-zero weight (zero-weight ones are skipped).

    A weight of exactly 0 still joins the sum as a scalar so its gradient path exists
    (GDAS: the non-sampled logits get gradient through the softmax normaliser).
    """
    out: torch.Tensor | None = None
    dead = None
    live = w.ne(0).tolist()  # one host sync per choice point, not one per candidate
    for i, op in enumerate(ops):
        wi = w[i]
        if not live[i]:
            dead = wi if dead is None else dead + wi
            continue
        y = wi * op(x)
        out = y if out is None else out + y
    if out is None:  # every weight zero: no candidate ran; a zero map of the first op's shape
        out = ops[0](x) * 0.0
    return out if dead is None else out + dead


class Supernet(nn.Module, ABC):
    """A network holding every candidate of every choice point, sharing their weights.

    Capabilities one-shot methods read (declared here, never guessed from names):

    * ``param_free``: candidates without parameters (pooling, identity, skip), counted in the
      journal because DARTS-style searches collapse towards them;
    * ``skip_candidates``: candidates that are skip connections (``max_skips``/``stop_skips``);
    * ``node_groups``: per node, the range of choice points (edges) entering it, for PC-DARTS's
      edge normalisation; None when the supernet has no such grouping.
    """

    choice_points: list[ChoicePoint]
    param_free: frozenset[str] = frozenset()
    skip_candidates: frozenset[str] = frozenset()
    node_groups: Optional[list[tuple[int, int]]] = None

    @abstractmethod
    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (B, classes); ``weights[i]`` has one entry per candidate of choice point i."""

    @abstractmethod
    def derive(self, weights: Sequence[torch.Tensor]) -> Architecture:
        """The discrete genotype the learned weights select (the space's derivation rule)."""

    @abstractmethod
    def path(self, arch: Architecture) -> list[int]:
        """The candidate index per choice point that realises ``arch``."""

    def as_run(self, arch: Architecture) -> Architecture:
        """The architecture ``arch``'s path actually runs (default: ``arch`` itself). Where ``path``
        is lossy (two DARTS genes on one edge; skip_chain's unsearched filters and stride), methods
        that score paths (ENAS, SPOS) return this, so the result is the network they scored."""
        return arch

    def path_weights(self, arch: Architecture) -> list[torch.Tensor]:
        """One-hot weights running exactly ``arch``'s path."""
        device = next(self.parameters()).device
        out = []
        for cp, idx in zip(self.choice_points, self.path(arch)):
            w = torch.zeros(len(cp.candidates), device=device)
            w[idx] = 1.0
            out.append(w)
        return out

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network weights (architecture parameters live in the one-shot method, not here)."""
        return list(self.parameters())
