"""REINFORCE with an LSTM controller (Zoph & Le 2017, seeds 000 and 003; ENAS's tricks).

The controller emits the space's decision sequence one token per LSTM step, feeding each
sampled token's embedding back as the next input, so every space works: cells, chains, and
the hyper-parameter and RNN-cell spaces, which expose decision sequences too.

Anchor points (seed 000): ``DecisionKind.INPUTS`` decisions ("does layer j feed layer i", the
chain-with-skips space's; ``Decision.node`` is i, ``Decision.source`` j) get no softmax head.
Layer i's anchor step is one LSTM step whose output h_i is both the query for i's inputs and
the key later layers attend to; each earlier layer j is an input with probability
sigmoid(v^T tanh(W_prev h_j + W_curr h_i)) (Bahdanau attention), so one set of weights serves
every layer whatever its number of candidates. A layer with no anchor decisions of its own
(layer 0) gets a key step after its last decision (``Decision.node == j``). After an anchor
step the next input is the mean of the chosen layers' keys (ENAS): sum_j bit_j h_j / (1 + sum_j bit_j).

Learning: one Adam step per ``batch`` rewarded samples on
``-(reward - baseline) * log p(tokens) - entropy_weight * entropy``. The baseline is an
exponential moving average, started at the first reward and read before it absorbs the
sample's own. Log-probabilities are recomputed at update time from the stored tokens under the
current parameters (teacher forcing, batched over samples): nothing autograd-shaped waits
between ask and tell, and out-of-order tells still learn.

What makes it work with ~100 evaluations (tuned on NAS-Bench-201; numbers in the tests' notes):

* ENAS's logit squashing, ``tanh_constant * tanh(logits / temperature)`` (defaults 2.5 and 5):
  bounded logits keep every choice at least a few percent likely, so a high learning rate
  does not collapse the policy onto one architecture;
* ``normalize="rank"``: the reward is its mid-rank among the rewards seen so far, in [0, 1]
  (fitness shaping); a few catastrophic architectures (10% accuracy) no longer dominate the
  gradient and Adam's step statistics;
* ``resample``: an architecture already proposed is drawn again (up to ``resample`` times)
  instead of being evaluated twice; each redrawn one with a known reward is still an on-policy
  sample with an exact reward, so it joins the next update for free.

Replay: parameters are initialised from, and every sample drawn with, one ``torch.Generator``
seeded from the strategy's seed (the global torch RNG is never used), and every update is a
function of the ask/tell sequence, so replaying the journal rebuilds the same controller.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from archsearch.controller import Controller, MovingAverage
from archsearch.core import Proposal, Trial, TrialState
from archsearch.options import Options, finite, option
from archsearch.spaces.base import SearchSpace
from archsearch.strategies.base import Strategy, register_strategy

NORMALIZE = ("rank", "none")


@register_strategy("reinforce")
class Reinforce(Strategy):
    """RL search: an LSTM controller emits the decision sequence, trained by REINFORCE (module docstring)."""

    @dataclass(frozen=True)
    class Options(Options):
        hidden: int = option(64, "LSTM hidden size", low=1)
        lr: float = option(0.01, "controller learning rate (Adam)", above=0)
        baseline_decay: float = option(0.95, "moving-average baseline decay", low=0, below=1)
        entropy_weight: float = option(0.0001, "entropy bonus weight", low=0)
        batch: int = option(1, "rewarded samples per controller update", low=1)
        temperature: Optional[float] = option(5.0, "logit temperature (null: none)", above=0)
        tanh_constant: Optional[float] = option(2.5, "ENAS's logit squashing constant (null: none)", above=0)
        normalize: str = option("rank", "reward shaping: mid-rank in [0, 1], or the raw reward", choices=NORMALIZE)
        resample: int = option(20, "redraws of an already proposed architecture before repeating it", low=0)
        failure_reward: Optional[float] = option(None, "reward of a failed trial (null: failures teach nothing)",
                                                 check=finite)

    opts: Options
    small_options = {"hidden": 16}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        o = self.opts
        self.entropy_weight, self.batch, self.resample = o.entropy_weight, o.batch, o.resample
        self.normalize = o.normalize
        self.failure_reward = o.failure_reward
        self.generator = torch.Generator().manual_seed(int(seed))
        self.controller = Controller(space.decisions(), o.hidden, o.temperature, o.tanh_constant, self.generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=o.lr, foreach=True)
        self.baseline = MovingAverage(o.baseline_decay)
        self.rewards: list[float] = []  # every reward told, sorted: the rank normalisation's reference
        self.known: dict[str, float] = {}  # arch id -> reward, for redrawn architectures
        self.proposed: set[str] = set()  # ids proposed or told: not proposed again while resampling
        self.pending: dict[int, list[int]] = {}  # ask id -> the token sequence sampled for it
        self.queue: list[tuple[list[int], float]] = []  # (tokens, advantage) awaiting the next update

    def ask(self) -> Proposal:
        for attempt in range(self.resample + 1):
            with torch.no_grad():
                tokens, _, _ = self.controller.sample(self.generator)
            arch = self.space.decode(tokens)
            if arch.id not in self.proposed or attempt == self.resample:
                break  # new, or out of draws: proposed again
            if arch.id in self.known:  # an on-policy sample whose reward is already known
                self._learn(tokens, self.known[arch.id], update=False)
        if len(self.queue) >= self.batch:
            self._update()
        self.proposed.add(arch.id)
        proposal = self.propose(arch)
        assert proposal.ask_id is not None
        self.pending[proposal.ask_id] = tokens
        return proposal

    def tell(self, trial: Trial) -> None:
        # the sampled tokens; a trial this controller did not propose is scored by its encoding
        tokens = self.pending.pop(trial.ask_id, None) if trial.ask_id is not None else None
        if tokens is None:
            tokens = self.space.encode(trial.arch)
        self.proposed.add(trial.arch.id)
        reward = trial.reward if trial.state is TrialState.COMPLETE else None
        if reward is None or not math.isfinite(reward):
            if self.failure_reward is None:
                return  # a failed trial teaches nothing
            reward = self.failure_reward
        self.known[trial.arch.id] = float(reward)
        bisect.insort(self.rewards, float(reward))
        self._learn(tokens, float(reward))

    def shaped(self, reward: float) -> float:
        """The reward the controller learns from: its mid-rank in [0, 1] among the rewards
        told so far (``normalize="rank"``), or the reward itself."""
        if self.normalize == "none" or not self.rewards:
            return reward
        below, upto = bisect.bisect_left(self.rewards, reward), bisect.bisect_right(self.rewards, reward)
        return (below + upto) / 2 / len(self.rewards)

    def _learn(self, tokens: list[int], reward: float, update: bool = True) -> None:
        reward = self.shaped(reward)
        self.queue.append((tokens, reward - self.baseline.update(reward)))
        if update and len(self.queue) >= self.batch:
            self._update()

    def _update(self) -> None:
        """One Adam step on the queued samples; the redrawn samples of one ask share a step."""
        log_p, entropy = self.controller([t for t, _ in self.queue])
        advantage = torch.tensor([a for _, a in self.queue], dtype=log_p.dtype)
        loss = -(advantage * log_p + self.entropy_weight * entropy).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.queue = []
