"""DARTS (Liu et al., 2019) and PC-DARTS (Xu et al., 2020): a softmax over every choice point.

Every candidate of every choice point runs, weighted by ``softmax(alpha)``; the alphas learn by
gradient descent on the valid loss, alternating with SGD steps of the supernet weights on the
train loss (the bilevel problem min_a L_val(w*(a), a), w*(a) = argmin_w L_train(w, a)).

``order`` 1 takes grad_a L_val(w, a) as if w did not depend on a. ``order`` 2 is DARTS's
unrolled gradient: one virtual SGD step w' = w - xi * (momentum * buf + grad_w L_train(w, a) +
weight_decay * w) (what the real optimiser would do, xi its current lr; no gradient clipping, as
DARTS's ``_compute_unrolled_model``), then

    grad_a L_val(w', a) - xi * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps),
    w+- = w +- eps * v,  v = grad_w' L_val(w', a),  eps = 0.01 / ||v||,

the second term a finite-difference Hessian-vector product. ``difference: forward`` replaces
the central difference by (grad_a L_train(w+, a) - grad_a L_train(w, a)) / eps, taking
grad_a L_train(w, a) from the virtual step's own backward pass: one pass fewer (about 2.3x the
first-order step instead of 2.9x on CPU) for an O(eps) instead of O(eps^2) error. The virtual steps are taken on the
supernet's own weights in place (DARTS builds a second model); one copy of the weights restores
them exactly afterwards. The extra forward passes update BatchNorm running statistics as
DARTS's Hessian-vector product does; they are read only in eval mode.

PC-DARTS (``partial_channels`` K, DARTS space only): the supernet runs 1/K of each edge's
channels through the candidates (:func:`archsearch.spaces.darts_supernet.partial_mix`), and edge
normalisation (``edge_norm``, on by default with K) learns a beta per edge, softmax-normalised
over each node's incoming edges; edge e's weights become ``beta_e * softmax(alpha_e)``. ``mix``
then scales the whole edge by beta_e, and the space's top-2 derivation on these products is
PC-DARTS's genotype rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.errors import ConfigError
from archsearch.oneshot.base import Batch, OneShotMethod, Score, register_oneshot
from archsearch.options import finite, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.spaces.supernet import Supernet

FD_RADIUS = 0.01  # DARTS's r: the finite-difference step is r / ||v||
DIFFERENCES = ("central", "forward")  # the Hessian-vector product's finite difference (central: DARTS)


def _node_grouped() -> list[str]:
    from archsearch.spaces.base import SPACES

    return [n for n in SPACES.names() if SPACES.get(n).supernet_node_groups]


@register_oneshot("darts")
class Darts(OneShotMethod):
    """DARTS and PC-DARTS (module docstring).

    ``step`` returns ``train_loss`` (the weight step's) and ``arch_loss``: the valid loss the
    architecture step differentiated (order 2: at the virtual weights w')."""

    @dataclass(frozen=True)
    class Options(OneShotMethod.Options):
        order: int = option(1, "architecture gradient: 1 first-order, 2 DARTS's unrolled second-order", low=1, high=2)
        arch_lr: float = option(3e-4, "Adam learning rate of the architecture parameters", above=0, check=finite)
        arch_weight_decay: float = option(1e-3, "weight decay of the architecture parameters", low=0, check=finite)
        partial_channels: Optional[int] = option(None, "PC-DARTS: 1/K of each edge's channels run the candidates "
                                                       "(K = 4 in the paper; null: all)", low=1)
        edge_norm: Optional[bool] = option(None, "PC-DARTS's edge normalisation (null: on exactly when "
                                                 "partial_channels is set)")
        difference: str = option("central", "order 2's Hessian-vector product: central (DARTS) or forward "
                                            "(one pass fewer)", choices=DIFFERENCES)

    opts: Options
    has_alphas = True
    uses_partial_channels = True

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        o = self.opts
        if o.partial_channels is not None:
            space.check_partial_channels(o.partial_channels)
        self.edge_norm = o.partial_channels is not None if o.edge_norm is None else o.edge_norm
        if self.edge_norm and not space.supernet_node_groups:
            raise ConfigError(f"strategy.edge_norm needs edges grouped by node; the {space.name!r} supernet has "
                              f"none (valid spaces: {', '.join(_node_grouped())})")
        self.alpha: Optional[nn.Parameter] = None  # (choice points, most candidates)
        self.beta: Optional[nn.Parameter] = None  # (choice points,) with edge_norm
        self.sizes: list[int] = []  # candidates per choice point (skip_chain's rows differ)
        self.mask = torch.ones(0, 0, dtype=torch.bool)  # (choice points, most candidates): real entries
        self.groups: list[tuple[int, int]] = []  # edge_norm: choice-point ranges entering one node
        self.a_optimizer: Optional[torch.optim.Optimizer] = None

    # -- the protocol --------------------------------------------------------------------
    def memory_param_copies(self) -> float:
        return 3.0 if self.opts.order == 2 else 0.0  # saved w, the virtual step's d_w, v

    def supernet_options(self) -> dict[str, Any]:
        k = self.opts.partial_channels
        return {} if k is None else {"partial_channels": k}

    def setup(self, supernet: Supernet, steps_per_epoch: int) -> None:
        super().setup(supernet, steps_per_epoch)
        self.sizes = [len(cp.candidates) for cp in supernet.choice_points]
        width = max(self.sizes)
        # drawn on the CPU generator so every device starts from the same alphas; rows shorter
        # than the widest are padded with entries that the softmax masks out (they stay 0)
        self.mask = (torch.arange(width)[None, :] < torch.tensor(self.sizes)[:, None]).to(self.device)
        init = 1e-3 * torch.randn(len(self.sizes), width, generator=self.generator)
        self.alpha = nn.Parameter(init.to(self.device) * self.mask)
        params = [self.alpha]
        if self.edge_norm:
            groups = supernet.node_groups
            if groups is None:
                raise ConfigError(f"strategy.edge_norm: this supernet has no node_groups "
                                  f"(valid spaces: {', '.join(_node_grouped())})")
            if [i for s, e in groups for i in range(s, e)] != list(range(len(self.sizes))):
                raise ValueError("node_groups must cover the choice points in order, each once")
            self.groups = [(int(s), int(e)) for s, e in groups]
            self.beta = nn.Parameter((1e-3 * torch.randn(len(self.sizes), generator=self.generator)).to(self.device))
            params.append(self.beta)
        self.a_optimizer = torch.optim.Adam(params, lr=self.opts.arch_lr, betas=(0.5, 0.999),
                                            weight_decay=self.opts.arch_weight_decay)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.alpha, self.beta) if p is not None]

    def weights(self) -> list[torch.Tensor]:
        """One weight vector per choice point, differentiable in the architecture parameters:
        softmax(alpha), times the node-normalised beta with edge_norm."""
        assert self.alpha is not None
        probs = F.softmax(self.alpha.masked_fill(~self.mask, float("-inf")), dim=-1)
        if self.beta is not None:
            scale = torch.cat([F.softmax(self.beta[s:e], dim=0) for s, e in self.groups])
            probs = probs * scale[:, None]
        rows = probs.unbind(0)
        if all(n == probs.shape[1] for n in self.sizes):
            return list(rows)
        return [r[:n] for r, n in zip(rows, self.sizes)]

    def step(self, train: Batch, valid: Batch) -> dict[str, float]:
        assert self.a_optimizer is not None
        grads, arch_loss = self.arch_gradient(train, valid)
        for p, g in zip(self.arch_parameters(), grads):
            p.grad = g
        self.a_optimizer.step()
        with torch.no_grad():  # the weight step does not update the architecture: no graph into it
            weights = self.weights()
        train_loss = self.weight_step(*train, weights)
        return {"train_loss": train_loss, "arch_loss": arch_loss}

    # -- the architecture gradient -----------------------------------------------------
    def arch_gradient(self, train: Batch, valid: Batch) -> tuple[list[torch.Tensor], float]:
        """The gradient of the valid loss w.r.t. :meth:`arch_parameters` (first or second order)
        and that loss; the supernet weights are left exactly as they were."""
        assert self.supernet is not None
        self.supernet.train()
        if self.opts.order == 1:
            loss = F.cross_entropy(self.supernet(valid[0], self.weights()), valid[1])
            # only the architecture parameters: autograd skips the weight-gradient kernels
            grads = torch.autograd.grad(loss, self.arch_parameters())
            return list(grads), float(loss.detach())
        return self._unrolled_gradient(train, valid)

    def _unrolled_gradient(self, train: Batch, valid: Batch) -> tuple[list[torch.Tensor], float]:
        assert self.supernet is not None and self.w_optimizer is not None
        params = [p for p in self.supernet.weight_parameters() if p.requires_grad]
        arch = self.arch_parameters()
        group = self.w_optimizer.param_groups[0]
        xi, momentum = float(group["lr"]), float(group["momentum"])
        saved = [p.detach().clone() for p in params]  # the one copy that restores w exactly

        # w' = w - xi * (momentum * buf + grad_w L_train(w, a) + weight_decay * w)
        forward = self.opts.difference == "forward"
        with torch.set_grad_enabled(forward):  # forward differences also need grad_a L_train(w, a)
            weights = self.weights()
        loss = F.cross_entropy(self.supernet(train[0], weights), train[1])
        if forward:
            both = _grads(loss, params + arch)
            d_w, g_train = both[: len(params)], both[len(params):]
        else:
            d_w = _grads(loss, params)
        bufs = [self.w_optimizer.state.get(p, {}).get("momentum_buffer") for p in params]
        with torch.no_grad():
            torch._foreach_add_(d_w, saved, alpha=self.opts.weight_decay)
            for d, buf in zip(d_w, bufs):
                if buf is not None:
                    d.add_(buf, alpha=momentum)
            torch._foreach_add_(params, d_w, alpha=-xi)
        del d_w

        # grad_a L_val(w', a) and v = grad_w' L_val(w', a)
        loss = F.cross_entropy(self.supernet(valid[0], self.weights()), valid[1])
        arch_loss = float(loss.detach())
        both = _grads(loss, arch + params)
        d_arch, v = both[: len(arch)], both[len(arch):]
        eps = FD_RADIUS / torch.linalg.vector_norm(torch.stack(torch._foreach_norm(v))).clamp_min(1e-12)

        # (grad_a L_train(w + eps v, a) - grad_a L_train(w - eps v, a)) / (2 eps), or forward:
        # (grad_a L_train(w + eps v, a) - grad_a L_train(w, a)) / eps
        hvp = []
        for sign in (1.0,) if forward else (1.0, -1.0):
            with torch.no_grad():
                torch._foreach_copy_(params, saved)
                torch._foreach_add_(params, torch._foreach_mul(v, eps * sign))
            loss = F.cross_entropy(self.supernet(train[0], self.weights()), train[1])
            hvp.append(_grads(loss, arch))
        with torch.no_grad():
            torch._foreach_copy_(params, saved)
        if forward:
            return [g - xi * (gp - g0) / eps for g, gp, g0 in zip(d_arch, hvp[0], g_train)], arch_loss
        return [g - xi * (gp - gn) / (2 * eps) for g, gp, gn in zip(d_arch, *hvp)], arch_loss

    # -- reading the architecture ------------------------------------------------------
    def eval_weights(self) -> list[torch.Tensor]:
        with torch.no_grad():
            return [w.detach() for w in self.weights()]

    def alphas(self) -> list[list[float]]:
        return [w.cpu().tolist() for w in self.eval_weights()]

    def derive(self, score: Score) -> Architecture:
        return self.derive_from(self.eval_weights())

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        assert self.alpha is not None and self.a_optimizer is not None
        state = {**super().state_dict(), "alpha": self.alpha.detach().clone(),
                 "a_optimizer": self.a_optimizer.state_dict()}
        if self.beta is not None:
            state["beta"] = self.beta.detach().clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.alpha is not None and self.a_optimizer is not None
        super().load_state_dict(state)
        if (self.beta is not None) != ("beta" in state):
            raise ValueError("darts checkpoint: edge_norm differs from the checkpoint's (betas "
                             f"{'missing' if self.beta is not None else 'unexpected'})")
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
            if self.beta is not None:
                self.beta.copy_(state["beta"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])


def _grads(loss: torch.Tensor, inputs: list[nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d inputs, zeros for inputs the loss does not reach (an op no weight ran)."""
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(inputs, grads)]
