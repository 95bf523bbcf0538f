"""The one-shot method protocol: train one supernet, read the architecture off it.

A method (DARTS, GDAS, ENAS, SPOS) owns what it learns besides the shared weights: the
architecture parameters or the controller, and every optimiser. The runner
(:mod:`archsearch.oneshot.search`) owns the rest: data order, epochs, the device, the journal,
checkpoints and the evaluation of the derived architecture. The contract, in call order:

1. ``__init__(space, seed, **options)`` parses the options (:class:`OneShotMethod.Options` and the
   method's own) and checks them against the space only: bad config fails before any data;
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
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.devices import check_device
from archsearch.errors import ConfigError
from archsearch.options import Configurable, finite, option
from archsearch.options import Options as BaseOptions
from archsearch.spaces.supernet import Supernet
from archsearch.registry import Registry
from archsearch.spaces.base import Architecture, SearchSpace

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels) on the method's device
Score = Callable[[Sequence[torch.Tensor]], float]  # supernet valid accuracy under the given weights

class OneShotMethod(Configurable, ABC):
    """Base class of the one-shot methods; :class:`OneShotMethod.Options` are shared by all of them
    (each method's ``Options`` extends it). The supernet weights train with SGD (momentum 0.9,
    nesterov off) at ``lr`` cosine-annealed to ``lr_min`` (DARTS's defaults).

    What the runner and the experiment read besides the methods below: ``name``, ``has_alphas``,
    ``ranking``, ``opts`` (``epochs``, ``batch_size``, ``stop_skips``), ``device`` and ``epochs``.
    """

    @dataclass(frozen=True)
    class Options(BaseOptions):
        epochs: int = option(10, "search epochs", low=1)
        batch_size: int = option(64, "examples per train batch and per valid batch", low=2)
        lr: float = option(0.025, "supernet weights' SGD learning rate (cosine-annealed)", above=0, check=finite)
        lr_min: float = option(0.001, "the learning rate the cosine schedule ends at", low=0, check=finite)
        weight_decay: float = option(3e-4, "supernet weights' weight decay", low=0, check=finite)
        grad_clip: float = option(5.0, "gradient-norm clip of the supernet weights (0: none)", low=0, check=finite)
        device: str = option("auto", "auto, cpu or cuda[:N]")
        max_skips: Optional[int] = option(None, "most skip connections in the derived architecture, the weakest "
                                                "replaced by their edge's next-best op (null: no limit)", low=0)
        stop_skips: Optional[int] = option(None, "stop once the derived architecture has this many skip "
                                                 "connections (DARTS+; null: never)", low=1)

    opts: Options
    # whether the method learns a weight vector per choice point that derive() reads (DARTS, GDAS):
    # the journal then records it as the ``alphas`` of every epoch
    has_alphas: ClassVar[bool] = False
    # the best sampled architectures with their scores, best first (methods that rank samples:
    # ENAS, SPOS); the journal records it each epoch
    ranking: Sequence[tuple[str, float]] = ()
    # what the memory check at set-up reads (oneshot/memory.py): whether each step trains one sampled
    # path (GDAS, ENAS, SPOS) rather than every candidate, and whether ``partial_channels`` is an option
    runs_one_path: ClassVar[bool] = False
    uses_partial_channels: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        if not space.has_supernet:
            from archsearch.spaces.base import SPACES

            with_one = [n for n in SPACES.names() if SPACES.get(n).has_supernet]
            raise ConfigError(f"strategy {self.name!r} is one-shot and needs a space with a supernet; "
                              f"{space.name!r} has none (valid: {', '.join(with_one)})")
        self.configure(options)
        self.space, self.seed = space, seed
        self.device: torch.device = check_device(self.opts.device, "strategy.device")
        self.generator = torch.Generator().manual_seed(int(seed))
        self.rng = np.random.default_rng(seed)
        self.supernet: Optional[Supernet] = None
        self.w_optimizer: Optional[torch.optim.Optimizer] = None
        self.w_scheduler: Optional[Any] = None

    @property
    def epochs(self) -> int:
        """The search epochs the runner runs (``opts.epochs``)."""
        return int(self.opts.epochs)

    def memory_param_copies(self) -> float:
        """Parameter-sized buffers a step keeps besides the weights, their gradients and momentum
        (DARTS's second order: the saved weights, the virtual step and ``v``). Default: none."""
        return 0.0

    # -- the protocol ----------------------------------------------------------------
    def supernet_options(self) -> dict[str, Any]:
        """Keyword arguments for ``space.supernet(task, **options)``; called once, before :meth:`setup`."""
        return {}

    def setup(self, supernet: Supernet, steps_per_epoch: int) -> None:
        """Attach the supernet (already on ``self.device``) and build the weight optimiser; called
        once, before any step or checkpoint load. Overrides call ``super().setup`` first, then
        create their architecture parameters (drawn from ``self.generator``)."""
        self.supernet = supernet
        o = self.opts
        self.w_optimizer = torch.optim.SGD(supernet.weight_parameters(), lr=o.lr, momentum=0.9,
                                           weight_decay=o.weight_decay)
        self.w_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, T_max=o.epochs,
                                                                      eta_min=o.lr_min)

    @abstractmethod
    def step(self, train: Batch, valid: Batch) -> dict[str, float]:
        """One search step on a train and a valid batch (both on ``self.device``).

        Returns the values the runner averages over the epoch for the journal (e.g. ``train_loss``,
        ``arch_loss``): finite floats (a non-finite one stops the search as diverged), the same
        keys every step."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """After epoch ``epoch`` (1-based, every step of it done): move the schedules on; returns
        extra values for the epoch's journal record. Overrides call ``super().end_epoch``."""
        assert self.w_scheduler is not None
        self.w_scheduler.step()
        return {}

    @abstractmethod
    def eval_weights(self) -> list[torch.Tensor]:
        """Weights per choice point under which the supernet's valid accuracy is reported; called
        after :meth:`derive` each epoch, so it may read what ``derive`` chose. No graph attached."""

    @abstractmethod
    def derive(self, score: Score) -> Architecture:
        """The architecture the search has found so far, one the space validates; the runner calls
        it once after every :meth:`end_epoch`, before the checkpoint (the last call's is the
        result; what it draws from ``self.generator`` is saved with it). ``score(weights)`` is the
        supernet's accuracy on a fixed part of the valid split (ENAS and SPOS rank candidates with
        it); with ``opts.max_skips`` the result has at most that many skip connections."""

    def alphas(self) -> Optional[list[list[float]]]:
        """The architecture distribution per choice point (softmax), for the journal: a list exactly
        when ``has_alphas``, else None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything this method learned except the supernet weights (the runner saves those):
        tensors and plain values only (checkpoints load with ``weights_only=True``). Overrides
        extend ``super().state_dict()``."""
        assert self.w_optimizer is not None and self.w_scheduler is not None
        return {"w_optimizer": self.w_optimizer.state_dict(), "w_scheduler": self.w_scheduler.state_dict(),
                "generator": self.generator.get_state(), "rng": _rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` after :meth:`setup`: the next step is the one the saved search
        would have taken. Overrides call ``super().load_state_dict``."""
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
        loss.backward()  # type: ignore[no-untyped-call]
        if self.opts.grad_clip:
            nn.utils.clip_grad_norm_(self.supernet.weight_parameters(), self.opts.grad_clip)
        self.w_optimizer.step()
        return float(loss.detach())

    def derive_from(self, weights: Sequence[torch.Tensor]) -> Architecture:
        """``supernet.derive(weights)`` under ``max_skips``: while the derived architecture has
        more skip connections than allowed, the skip candidate of the choice point whose chosen
        skip is weakest is ruled out and the architecture derived again."""
        assert self.supernet is not None
        rows = [w.detach().float().cpu().clone() for w in weights]
        arch = self.supernet.derive(rows)
        if self.opts.max_skips is None:
            return arch
        cands = [cp.candidates for cp in self.supernet.choice_points]
        while True:
            path = self.supernet.path(arch)
            skips = [i for i, k in enumerate(path) if cands[i][k] in self.supernet.skip_candidates]
            if len(skips) <= self.opts.max_skips:
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
            if tracked is not None and m.num_batches_tracked is not None:
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
                                          group="archsearch.oneshot")
register_oneshot = ONESHOT.register


def create_oneshot(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> OneShotMethod:
    return ONESHOT.create(name, space, seed, **options)
