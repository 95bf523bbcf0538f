"""The one-shot method protocol: train one supernet, read the architecture off it.

A method (DARTS, GDAS, ENAS, SPOS) owns what it learns besides the shared weights: the
architecture parameters or the controller, and every optimiser. The runner
(:mod:`archsearch.oneshot.search`) owns the rest: data order, epochs, the device, the journal,
checkpoints and the evaluation of the derived architecture. The contract, in call order:

1. ``__init__(space, seed, **options)`` checks options only (bad config fails before any data);
2. ``supernet_options()`` are passed to ``space.supernet(task, **options)`` (PC-DARTS: partial
   channels);
3. ``setup(supernet, steps_per_epoch)`` after the supernet is on ``self.device``: create the
   architecture parameters and the optimisers;
4. per epoch: ``step(train, valid)`` once per batch pair, then ``end_epoch(epoch)``;
5. ``derive(score)`` at the end of every epoch (the journal records the current architecture);
   the last epoch's is the result;
6. ``state_dict()`` / ``load_state_dict()`` between any two epochs: a resumed search continues
   exactly as if it had never stopped.

Every random choice goes through ``self.generator`` (a CPU ``torch.Generator`` seeded from the
experiment seed) or ``self.rng`` (numpy), both saved in ``state_dict``. State dicts hold only
tensors and plain Python values: checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.devices import check_device
from archsearch.errors import ConfigError
from archsearch.spaces.supernet import Supernet
from archsearch.options import Configurable
from archsearch.registry import Registry
from archsearch.spaces.base import Architecture, SearchSpace

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels) on the method's device
Score = Callable[[Sequence[torch.Tensor]], float]  # supernet valid accuracy under the given weights

def check_number(key: str, value: Any, low: float, high: float = math.inf, integer: bool = False,
                 low_open: bool = False, none: bool = False) -> None:
    """One-line ``strategy.KEY`` errors for numeric options (``none``: null is allowed)."""
    if none and value is None:
        return
    kind = "an integer" if integer else "a number"
    ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not isinstance(value, bool)
    if ok:
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if high == math.inf else f" and <= {high:g}"
        raise ConfigError(f"strategy.{key} must be {kind} {lo}{hi}{' or null' if none else ''}, got {value!r}")


class OneShotMethod(Configurable, ABC):
    """Base class of the one-shot methods; the options here are shared by all of them.

    ``epochs`` search epochs; ``batch_size`` of both the train and the valid batches; the
    supernet weights train with SGD (momentum 0.9, nesterov off) at ``lr`` cosine-annealed to
    ``lr_min``, ``weight_decay``, gradient-norm clip ``grad_clip`` (DARTS's defaults);
    ``device`` auto|cpu|cuda[:N]; ``max_skips`` limits the skip connections of the derived
    architecture (the weakest are replaced by their edge's next-best op; null: no limit);
    ``stop_skips`` stops the search early once the derived architecture has that many
    (DARTS+'s rule against the collapse to skip connections; null: never).

    Subclasses take their own options explicitly and pass the rest on as ``**common``.
    """

    name: ClassVar[str] = ""
    # whether the method learns a weight vector per choice point that derive() reads (DARTS, GDAS):
    # the journal then records it as the ``alphas`` of every epoch
    has_alphas: ClassVar[bool] = False
    # the best sampled architectures with their scores, best first (methods that rank samples:
    # ENAS); the journal records it each epoch
    ranking: Sequence[tuple[str, float]] = ()

    def __init__(self, space: SearchSpace, seed: int = 0, epochs: int = 10, batch_size: int = 64,
                 lr: float = 0.025, lr_min: float = 0.001, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                 device: str = "auto", max_skips: Optional[int] = None, stop_skips: Optional[int] = None) -> None:
        if not space.has_supernet:
            from archsearch.spaces.base import SPACES

            with_one = [n for n in SPACES.names() if SPACES.get(n).has_supernet]
            raise ConfigError(f"strategy {self.name!r} is one-shot and needs a space with a supernet; "
                              f"{space.name!r} has none (valid: {', '.join(with_one)})")
        check_number("epochs", epochs, 1, integer=True)
        check_number("batch_size", batch_size, 2, integer=True)
        check_number("lr", lr, 0, low_open=True)
        check_number("lr_min", lr_min, 0)
        check_number("weight_decay", weight_decay, 0)
        check_number("grad_clip", grad_clip, 0)
        check_number("max_skips", max_skips, 0, integer=True, none=True)
        check_number("stop_skips", stop_skips, 1, integer=True, none=True)
        self.space, self.seed = space, seed
        self.epochs, self.batch_size = epochs, batch_size
        self.lr, self.lr_min, self.weight_decay, self.grad_clip = float(lr), float(lr_min), float(weight_decay), float(grad_clip)
        self.device = check_device(device, "strategy.device")
        self.max_skips, self.stop_skips = max_skips, stop_skips
        self.generator = torch.Generator().manual_seed(int(seed))
        self.rng = np.random.default_rng(seed)
        self.supernet: Optional[Supernet] = None
        self.w_optimizer: Optional[torch.optim.Optimizer] = None
        self.w_scheduler: Optional[Any] = None

    # -- the protocol ----------------------------------------------------------------
    def supernet_options(self) -> dict[str, Any]:
        """Keyword arguments for ``space.supernet(task, **options)``."""
        return {}

    def setup(self, supernet: Supernet, steps_per_epoch: int) -> None:
        """Attach the supernet (already on ``self.device``) and build the weight optimiser.
        Subclasses extend this to create their architecture parameters."""
        self.supernet = supernet
        self.w_optimizer = torch.optim.SGD(supernet.weight_parameters(), lr=self.lr, momentum=0.9,
                                           weight_decay=self.weight_decay)
        self.w_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, T_max=self.epochs,
                                                                      eta_min=self.lr_min)

    @abstractmethod
    def step(self, train: Batch, valid: Batch) -> dict[str, float]:
        """One search step; returns the values to average over the epoch (e.g. ``train_loss``)."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """After epoch ``epoch`` (1-based): schedules; returns extra values for the journal."""
        assert self.w_scheduler is not None
        self.w_scheduler.step()
        return {}

    @abstractmethod
    def eval_weights(self) -> list[torch.Tensor]:
        """Weights per choice point under which the supernet's valid accuracy is reported."""

    @abstractmethod
    def derive(self, score: Score) -> Architecture:
        """The architecture the search has found so far. ``score(weights)`` is the supernet's
        accuracy on a fixed part of the valid split (ENAS and SPOS rank candidates with it)."""

    def alphas(self) -> Optional[list[list[float]]]:
        """The architecture distribution per choice point (softmax), for the journal; None if none."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything this method learned except the supernet weights (the runner saves those)."""
        assert self.w_optimizer is not None and self.w_scheduler is not None
        return {"w_optimizer": self.w_optimizer.state_dict(), "w_scheduler": self.w_scheduler.state_dict(),
                "generator": self.generator.get_state(), "rng": _rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.w_optimizer is not None and self.w_scheduler is not None
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.w_scheduler.load_state_dict(state["w_scheduler"])
        self.generator.set_state(state["generator"].cpu())
        self.rng.bit_generator.state = _rng_from(state["rng"])

    # -- helpers for subclasses ------------------------------------------------------
    def weight_step(self, x: torch.Tensor, y: torch.Tensor, weights: Sequence[torch.Tensor]) -> float:
        """One SGD step of the supernet weights on (x, y) under ``weights``; returns the loss."""
        assert self.supernet is not None and self.w_optimizer is not None
        self.supernet.train()
        self.w_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.supernet(x, weights), y)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.supernet.weight_parameters(), self.grad_clip)
        self.w_optimizer.step()
        return float(loss.detach())

    def derive_from(self, weights: Sequence[torch.Tensor]) -> Architecture:
        """``supernet.derive(weights)`` under ``max_skips``: while the derived architecture has
        more skip connections than allowed, the skip candidate of the choice point whose chosen
        skip is weakest is ruled out and the architecture derived again."""
        assert self.supernet is not None
        rows = [w.detach().float().cpu().clone() for w in weights]
        arch = self.supernet.derive(rows)
        if self.max_skips is None:
            return arch
        cands = [cp.candidates for cp in self.supernet.choice_points]
        while True:
            path = self.supernet.path(arch)
            skips = [i for i, k in enumerate(path) if cands[i][k] in self.supernet.skip_candidates]
            if len(skips) <= self.max_skips:
                return arch
            weakest = min(skips, key=lambda i: (float(rows[i][path[i]]), -i))
            rows[weakest][path[weakest]] = -math.inf
            arch = self.supernet.derive(rows)


@contextlib.contextmanager
def batch_statistics(net: nn.Module) -> Iterator[None]:
    """Evaluate with each batch's own BN statistics, leaving the running ones untouched.

    A supernet's running statistics mix every path it trained; one path's activations are
    normalised correctly only by their own batch statistics (SPOS recalibrates for the same
    reason). Momentum 0 keeps the running buffers as they are.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    was_training = net.training
    net.train()
    for m in norms:
        m.momentum = 0.0
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was_training)
        for m, (training, momentum, tracked) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def accuracy(net: Supernet, weights: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch_size: int) -> float:
    """The supernet's accuracy on (x, y) under ``weights`` (batch statistics, no grad)."""
    correct = 0
    starts = list(range(0, len(y), batch_size))
    if len(starts) > 1 and len(y) - starts[-1] == 1:  # batch statistics need two examples: join the last one
        starts.pop()
    bounds = starts[1:] + [len(y)]
    with batch_statistics(net):
        for i, j in zip(starts, bounds):
            logits = net(x[i:j], weights)
            correct += int((logits.argmax(1) == y[i:j]).sum())
    return correct / max(len(y), 1)


def count_param_free(supernet: Supernet, arch: Architecture) -> dict[str, int]:
    """``param_free`` (ops without parameters) and ``skips`` (skip connections) in ``arch``'s path."""
    path = supernet.path(arch)
    names = [cp.candidates[k] for cp, k in zip(supernet.choice_points, path)]
    return {"param_free": sum(n in supernet.param_free for n in names),
            "skips": sum(n in supernet.skip_candidates for n in names)}


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    state = rng.bit_generator.state  # ints too large for a tensor: kept as decimal strings
    return {"bit_generator": state["bit_generator"], "state": str(state["state"]["state"]),
            "inc": str(state["state"]["inc"]), "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]}


def _rng_from(saved: dict[str, Any]) -> dict[str, Any]:
    return {"bit_generator": saved["bit_generator"],
            "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
            "has_uint32": saved["has_uint32"], "uinteger": saved["uinteger"]}


ONESHOT: Registry[OneShotMethod] = Registry("one-shot strategy", section="strategy", package="archsearch.oneshot",
                                          group="archsearch.oneshot", framework=("space", "seed"))
register_oneshot = ONESHOT.register


def create_oneshot(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> OneShotMethod:
    return ONESHOT.create(name, space, seed, **options)
