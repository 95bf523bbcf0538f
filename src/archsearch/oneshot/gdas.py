"""GDAS (Dong & Yang, 2019): differentiable search that runs one sampled path per step.

DARTS computes every candidate of every edge and mixes them; GDAS samples one candidate per
choice point with the Gumbel-softmax trick and runs only that one, so a step costs about as much
as training a single network. The sample is *straight-through*: the forward value is a one-hot
vector (``hard - soft.detach() + soft``), so the supernet's ``mix`` skips every other candidate,
while the backward pass sees the soft probabilities, so every logit of the choice point gets a
gradient (the zero-weight entries join ``mix``'s sum as scalars for that reason).

The temperature anneals linearly from ``tau_max`` to ``tau_min`` over the epochs, one value per
epoch as in the paper: high early (samples spread over the candidates, every op gets trained),
low late (samples follow the argmax). The architecture is read off ``softmax(alpha)`` with the
space's own rule (:meth:`OneShotMethod.derive_from`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.oneshot.base import Batch, OneShotMethod, Score, register_oneshot
from archsearch.options import finite, invalid, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.spaces.supernet import Supernet

MAX_DRAWS = 100  # a non-finite Gumbel sample is astronomically rare: a retry loop this long never ends it


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No weight gradients inside: the architecture step needs only the activations' gradients,
    which saves the weight-gradient half of the backward pass."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@register_oneshot("gdas")
class GDAS(OneShotMethod):
    """GDAS: one Gumbel-softmax path per step, alphas by gradient descent (module docstring)."""

    @dataclass(frozen=True)
    class Options(OneShotMethod.Options):
        tau_max: float = option(10.0, "Gumbel-softmax temperature of the first epoch", above=0, check=finite)
        tau_min: float = option(0.1, "temperature of the last epoch (linear in between)", above=0, check=finite)
        arch_lr: float = option(3e-4, "Adam learning rate of the alphas", above=0, check=finite)
        arch_weight_decay: float = option(1e-3, "weight decay of the alphas", low=0, check=finite)

        def __post_init__(self) -> None:
            if self.tau_min > self.tau_max:
                raise invalid("tau_min", f"must be at most tau_max ({self.tau_max:g}), got {self.tau_min:g}")

    opts: Options
    runs_one_path = True  # one sampled path trains per step
    has_alphas = True

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.completed = 0  # epochs finished; the temperature follows from it
        self.arch_params: list[nn.Parameter] = []
        self.a_optimizer: torch.optim.Optimizer | None = None

    # -- the temperature ---------------------------------------------------------------
    def tau_at(self, epoch: int) -> float:
        """The temperature of 0-based epoch ``epoch``: tau_max first, tau_min last (GDAS's schedule)."""
        o = self.opts
        if o.epochs == 1:
            return o.tau_max
        frac = min(epoch, o.epochs - 1) / (o.epochs - 1)
        return (1 - frac) * o.tau_max + frac * o.tau_min  # exact at both ends

    @property
    def tau(self) -> float:
        return self.tau_at(self.completed)

    # -- the protocol --------------------------------------------------------------------
    def setup(self, supernet: Supernet, steps_per_epoch: int) -> None:
        super().setup(supernet, steps_per_epoch)
        # one logit row per choice point (rows may differ in length: skip_chain's on/off points);
        # drawn on the CPU generator so every device starts from the same alphas
        self.arch_params = [
            nn.Parameter((1e-3 * torch.randn(len(cp.candidates), generator=self.generator)).to(self.device))
            for cp in supernet.choice_points
        ]
        self.a_optimizer = torch.optim.Adam(self.arch_params, lr=self.opts.arch_lr, betas=(0.5, 0.999),
                                            weight_decay=self.opts.arch_weight_decay)

    def sample(self) -> list[torch.Tensor]:
        """A straight-through Gumbel-softmax sample per choice point: one-hot in value, soft in gradient.

        The noise comes from ``self.generator`` on the CPU (one draw for all choice points); a
        draw whose noise or probabilities are not finite is redrawn, as GDAS does.
        """
        sizes = [len(a) for a in self.arch_params]
        for _ in range(MAX_DRAWS):
            # Gumbel(0, 1) = -log(E), E ~ Exp(1); E == 0 gives inf, caught below
            noise = -torch.empty(sum(sizes)).exponential_(generator=self.generator).log()
            if not bool(torch.isfinite(noise).all()):
                continue
            gumbels = noise.to(self.device).split(sizes)
            softs = [F.softmax((a + g) / self.tau, dim=-1) for a, g in zip(self.arch_params, gumbels)]
            if not bool(torch.stack([torch.isfinite(s).all() for s in softs]).all()):  # one host sync
                continue
            out = []
            for s in softs:
                hard = torch.zeros_like(s).scatter_(-1, s.argmax(-1, keepdim=True), 1.0)
                out.append(hard - s.detach() + s)  # exactly 0 off the argmax: mix skips those ops
            return out
        raise FloatingPointError(f"gdas: no finite Gumbel-softmax sample in {MAX_DRAWS} draws "
                                 f"(alphas diverged? lower strategy.arch_lr)")

    def step(self, train: Batch, valid: Batch) -> dict[str, float]:
        assert self.supernet is not None and self.a_optimizer is not None
        with torch.no_grad():  # the weight step does not update the alphas: no graph into them
            weights = self.sample()
        train_loss = self.weight_step(*train, weights)
        # the architecture step, on the valid batch with a fresh sample
        self.supernet.train()
        self.a_optimizer.zero_grad(set_to_none=True)
        with frozen(self.supernet):
            arch_loss = F.cross_entropy(self.supernet(valid[0], self.sample()), valid[1])
            arch_loss.backward()
        self.a_optimizer.step()
        return {"train_loss": train_loss, "arch_loss": float(arch_loss.detach())}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Moves the temperature on; returns the one the finished epoch sampled with."""
        out = super().end_epoch(epoch)
        used = self.tau
        self.completed = epoch
        return {**out, "tau": used}

    def probabilities(self) -> list[torch.Tensor]:
        return [F.softmax(a.detach(), dim=-1) for a in self.arch_params]

    def derive(self, score: Score) -> Architecture:
        return self.derive_from(self.probabilities())

    def eval_weights(self) -> list[torch.Tensor]:
        assert self.supernet is not None
        return self.supernet.path_weights(self.derive_from(self.probabilities()))

    def alphas(self) -> list[list[float]]:
        return [p.cpu().tolist() for p in self.probabilities()]

    def state_dict(self) -> dict[str, Any]:
        assert self.a_optimizer is not None
        return {**super().state_dict(), "alphas": [a.detach().clone() for a in self.arch_params],
                "a_optimizer": self.a_optimizer.state_dict(), "completed": self.completed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.a_optimizer is not None
        super().load_state_dict(state)
        with torch.no_grad():
            for a, saved in zip(self.arch_params, state["alphas"], strict=True):
                a.copy_(saved)
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.completed = int(state["completed"])
