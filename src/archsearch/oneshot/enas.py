"""ENAS (Pham et al. 2018): an LSTM controller samples children that share the supernet's weights.

Each ``step`` alternates ENAS's two phases, interleaved at the batch level:

1. shared weights: one child is sampled (no grad) and the supernet weights take one SGD step on
   the train batch along that child's one-hot path only;
2. controller (every ``controller_every`` steps): ``controller_samples`` children are sampled,
   each rewarded with the supernet's accuracy on the valid batch along its path (batch
   statistics, no grad), and the controller takes one Adam step on REINFORCE's
   ``-(reward - baseline) * log p - entropy_weight * entropy``, averaged over the children.
   The baseline is a moving average (``baseline_decay``), started at the first reward and read
   before it absorbs each child's own reward.

The controller is the RL strategy's (:class:`archsearch.controller.Controller`): it
emits the space's whole decision sequence, so it works on every space with a supernet, the
chain-with-skips one included (its anchor decisions get ENAS's attention heads). It is tiny and
samples with the CPU generator, so it stays on the CPU whatever ``device`` the supernet uses;
only the rewards (floats) cross over.

``derive(score)`` samples ``candidates`` children and returns the one the runner's ``score``
ranks best (ties: the first sampled), ENAS's final selection; ``ranking`` keeps the top 10.
A child is returned as the supernet ran it: on skip_chain, whose path ignores filters and
stride and runs a kh x kw kernel as its square candidate, the sampled decisions the supernet
does not search are replaced by ``supernet.derive`` of the path (``supernet_filters``, the
smallest stride, square kernels); elsewhere the sample is returned as is. With ``max_skips``
the best child within the limit wins; if no candidate is within it, the best one is repaired by
the base rule (:meth:`OneShotMethod.derive_from`).

Option defaults are ENAS's (controller: hidden 64, Adam 3.5e-4, entropy 1e-4, baseline decay
0.99, temperature 5, tanh constant 2.5). ``controller_samples`` defaults to 1: with a controller
step after every weight step, one child per step already gives the controller about as many
rewarded samples per epoch as ENAS's 30 updates x 10 aggregated samples (~390 steps per DARTS
epoch at batch 64), each rewarded on a fresh valid batch, and every extra child costs another
valid forward pass per step; raise it to trade time for lower-variance updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from archsearch.controller import Controller, MovingAverage
from archsearch.oneshot.base import Batch, OneShotMethod, Score, accuracy, count_param_free, register_oneshot
from archsearch.options import finite, option
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.spaces.supernet import Supernet

TOP = 10  # the ranking kept for the journal


@register_oneshot("enas")
class Enas(OneShotMethod):
    """ENAS: an LSTM controller samples children that share one supernet's weights, trained by REINFORCE."""

    @dataclass(frozen=True)
    class Options(OneShotMethod.Options):
        controller_hidden: int = option(64, "the controller's LSTM hidden size", low=1)
        controller_lr: float = option(3.5e-4, "the controller's Adam learning rate", above=0, check=finite)
        entropy_weight: float = option(1e-4, "entropy bonus weight", low=0, check=finite)
        baseline_decay: float = option(0.99, "moving-average baseline decay", low=0, high=1)
        temperature: Optional[float] = option(5.0, "logit temperature (null: none)", above=0, check=finite)
        tanh_constant: Optional[float] = option(2.5, "logit squashing constant (null: none)", above=0, check=finite)
        controller_every: int = option(1, "weight steps per controller step", low=1)
        controller_samples: int = option(1, "children rewarded per controller step", low=1)
        candidates: int = option(20, "children derive samples and scores", low=1)

    opts: Options
    runs_one_path = True  # one sampled path trains per step
    small_options = {"candidates": 4}
    has_alphas = False

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.controller: Optional[Controller] = None
        self.c_optimizer: Optional[torch.optim.Optimizer] = None
        self.baseline = MovingAverage(self.opts.baseline_decay)
        self.steps = 0  # weight steps so far, over all epochs: the controller's schedule
        self.path: list[int] = []  # eval_weights' path: the last derived child (first: a fixed sample)
        self.last: dict[str, float] = {}  # the latest controller step's reward and baseline
        self.ranking: list[tuple[str, float]] = []

    def setup(self, supernet: Supernet, steps_per_epoch: int) -> None:
        super().setup(supernet, steps_per_epoch)
        o = self.opts
        self.controller = Controller(self.space.decisions(), o.controller_hidden, o.temperature, o.tanh_constant,
                                     self.generator)
        self.c_optimizer = torch.optim.Adam(self.controller.parameters(), lr=o.controller_lr)
        self.path = self._path(self._sample())

    # -- the search step -----------------------------------------------------------
    def step(self, train: Batch, valid: Batch) -> dict[str, float]:
        """One weight step on a sampled child, then (on schedule) one controller step.

        ``reward``/``baseline`` are the latest controller step's values, repeated on the steps
        in between, so the runner's per-epoch mean over all steps is a mean over updates."""
        loss = self.weight_step(*train, self._one_hot(self._path(self._sample())))
        if self.steps % self.opts.controller_every == 0:
            self.last = self._controller_step(valid)
        self.steps += 1
        return {"train_loss": loss, **self.last}

    def _controller_step(self, valid: Batch) -> dict[str, float]:
        assert self.controller is not None and self.c_optimizer is not None
        x, y = valid
        children = [self._sample() for _ in range(self.opts.controller_samples)]
        rewards = [accuracy(self.supernet, self._one_hot(self._path(t)), x, y, len(y)) for t in children]
        advantage = torch.tensor([r - self.baseline.update(r) for r in rewards])
        log_p, entropy = self.controller(children)  # recomputed with grad by teacher forcing, batched
        loss = -(advantage * log_p + self.opts.entropy_weight * entropy).mean()
        self.c_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.c_optimizer.step()
        assert self.baseline.value is not None
        return {"reward": sum(rewards) / len(rewards), "baseline": self.baseline.value}

    # -- the architecture ----------------------------------------------------------
    def derive(self, score: Score) -> Architecture:
        assert self.supernet is not None
        scored: dict[tuple[int, ...], tuple[Architecture, float]] = {}  # path -> (child, score), in sampling order
        for _ in range(self.opts.candidates):
            arch = self.supernet.as_run(self.space.decode(self._sample()))  # the network scored
            path = tuple(self.supernet.path(arch))
            if path not in scored:  # a child sampled twice is scored once (score is deterministic)
                scored[path] = (arch, float(score(self._one_hot(list(path)))))
        ranked = sorted(scored.items(), key=lambda kv: -kv[1][1])  # stable: ties stay in sampling order
        limit = self.opts.max_skips
        allowed = [kv for kv in ranked if limit is None or count_param_free(self.supernet, kv[1][0])["skips"] <= limit]
        if allowed:
            best = allowed[0][1][0]
        else:
            best = self.derive_from(self._one_hot(list(ranked[0][0])))
        self.path = self.supernet.path(best)
        self.ranking = [(str(arch), s) for _, (arch, s) in ranked[:TOP]]
        return best

    def eval_weights(self) -> list[torch.Tensor]:
        return self._one_hot(self.path)

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        assert self.controller is not None and self.c_optimizer is not None
        return {**super().state_dict(), "controller": self.controller.state_dict(),
                "c_optimizer": self.c_optimizer.state_dict(), "baseline": self.baseline.value,
                "steps": self.steps, "path": list(self.path), "last": dict(self.last),
                "ranking": [[a, s] for a, s in self.ranking]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.controller is not None and self.c_optimizer is not None
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.c_optimizer.load_state_dict(state["c_optimizer"])
        self.baseline.value = state["baseline"]
        self.steps, self.path, self.last = int(state["steps"]), list(state["path"]), dict(state["last"])
        self.ranking = [(str(a), float(s)) for a, s in state["ranking"]]

    # -- helpers -----------------------------------------------------------------------
    def _sample(self) -> list[int]:
        """One child's decision tokens from the controller (no grad)."""
        assert self.controller is not None
        with torch.no_grad():
            tokens, _, _ = self.controller.sample(self.generator)
        return tokens

    def _path(self, tokens: list[int]) -> list[int]:
        assert self.supernet is not None
        return self.supernet.path(self.space.decode(tokens))

    def _one_hot(self, path: list[int]) -> list[torch.Tensor]:
        """The one-hot weights of ``path`` on the supernet's device (as ``Supernet.path_weights``)."""
        assert self.supernet is not None
        out = []
        for cp, k in zip(self.supernet.choice_points, path):
            w = torch.zeros(len(cp.candidates), device=self.device)
            w[k] = 1.0
            out.append(w)
        return out
