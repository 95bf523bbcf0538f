"""REINFORCE with an LSTM controller (Zoph & Le 2017, seeds 000 and 003; ENAS's tricks).

The controller emits the space's decision sequence one token per LSTM step, feeding each
sampled token's embedding back as the next input, so every space works: cells, chains, and
the hyper-parameter and RNN-cell spaces, which expose decision sequences too.

Anchor points (seed 000): ``DecisionKind.INPUTS`` decisions ("does layer j feed layer i", the
chain-with-skips space's; ``Decision.node`` is i, ``Decision.source`` j) get no softmax head. Layer i's anchor step is one LSTM step whose
output h_i is both the query for i's inputs and the key later layers attend to; each earlier
layer j is an input with probability sigmoid(v^T tanh(W_prev h_j + W_curr h_i)) (Bahdanau
attention), so one set of weights serves every layer whatever its number of candidates. A
layer with no anchor decisions of its own (layer 0) gets a key step after its last decision
(``Decision.node == j``). After an anchor step the next input is the mean of the chosen
layers' keys (ENAS): sum_j bit_j h_j / (1 + sum_j bit_j).

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
from collections import deque
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Proposal, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces.base import Decision, DecisionKind, SearchSpace
from archsearch.strategies.base import Strategy, register_strategy

NORMALIZE = ("rank", "none")


# -- the controller's program ------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One LSTM step. ``kind``: "softmax" (decision ``pos``), "anchor" (layer ``layer`` picks
    among ``pairs`` = ((pos, j), ...)) or "key" (only records layer ``layer``'s key)."""

    kind: str
    pos: int = -1
    layer: int = -1
    pairs: tuple[tuple[int, int], ...] = ()


def plan(decisions: Sequence[Decision]) -> list[Step]:
    """The step sequence for a decision sequence: consecutive INPUTS decisions of one node (the
    anchor points) share a step, and a key step is inserted for every attended node that has no
    anchor step before its first use (after its last decision, or else just before the use)."""
    steps: list[Step] = []
    pos = 0
    while pos < len(decisions):
        d = decisions[pos]
        if d.kind is not DecisionKind.INPUTS:
            steps.append(Step("softmax", pos=pos))
            pos += 1
            continue
        i, pairs = d.node, []
        while pos < len(decisions) and decisions[pos].kind is DecisionKind.INPUTS and decisions[pos].node == i:
            pairs.append((pos, decisions[pos].source))
            pos += 1
        steps.append(Step("anchor", layer=i, pairs=tuple(pairs)))
    # where each attended layer's key must exist by
    first_use: dict[int, int] = {}
    for s, step in enumerate(steps):
        for _, j in step.pairs:
            first_use.setdefault(j, s)
    has_key = {}
    for s, step in enumerate(steps):
        if step.kind == "anchor":
            has_key.setdefault(step.layer, s)
    inserts: dict[int, list[int]] = {}  # step index -> layers whose key step goes before it
    for j, use in sorted(first_use.items()):
        if j in has_key and has_key[j] < use:
            continue
        last = [s for s in range(use) if steps[s].kind == "softmax" and decisions[steps[s].pos].node == j]
        inserts.setdefault(last[-1] + 1 if last else use, []).append(j)
    out: list[Step] = []
    for s in range(len(steps) + 1):
        out += [Step("key", layer=j) for j in inserts.get(s, [])]
        if s < len(steps):
            out.append(steps[s])
    return out


class Controller(nn.Module):
    """The LSTM policy over a decision sequence.

    ``sample(generator)`` draws one token sequence step by step and returns (tokens, log p,
    entropy). ``forward(tokens)`` scores a batch of given sequences (B, n) by teacher forcing:
    the recurrence runs once for the batch, then every head and every anchor is evaluated in
    one pass; it returns log p (B,) and entropy (B,). The softmax heads share one weight
    matrix, decision ``pos`` owning rows ``offset[pos] : offset[pos] + choices``; the token
    embeddings are one table laid out alike.
    """

    def __init__(self, decisions: Sequence[Decision], hidden: int = 64, temperature: Optional[float] = None,
                 tanh_constant: Optional[float] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.steps = plan(decisions)
        self.n = len(decisions)
        self.hidden, self.temperature, self.tanh_constant = hidden, temperature, tanh_constant
        soft = [s.pos for s in self.steps if s.kind == "softmax"]
        self.offset: dict[int, tuple[int, int]] = {}  # pos -> (first row, choices)
        rows = 0
        for pos in soft:
            self.offset[pos] = (rows, len(decisions[pos].choices))
            rows += len(decisions[pos].choices)
        meta = {"device": "meta"}  # built without touching the global RNG; initialised below from `generator`
        self.start = nn.Parameter(torch.empty(1, hidden, **meta))  # the first input
        self.lstm = nn.LSTMCell(hidden, hidden, **meta)
        self.head = nn.Linear(hidden, max(rows, 1), **meta)
        self.embedding = nn.Embedding(max(rows, 1), hidden, **meta)
        n_keys = sum(s.kind == "key" for s in self.steps)
        self.key_inputs = nn.Parameter(torch.empty(max(n_keys, 1), hidden, **meta))  # the input after a key step
        self.w_prev = nn.Linear(hidden, hidden, bias=False, **meta)
        self.w_curr = nn.Linear(hidden, hidden, bias=False, **meta)
        self.v = nn.Linear(hidden, 1, bias=False, **meta)
        self.to_empty(device="cpu")
        with torch.no_grad():
            for p in self.parameters():  # ENAS's init: a near-uniform first policy
                p.uniform_(-0.1, 0.1, generator=generator)
        # the batched scoring layout: each softmax step's block of head rows (the rest masked out)
        self._soft_steps = [s for s, st in enumerate(self.steps) if st.kind == "softmax"]  # soft: their positions
        mask = torch.full((len(soft), max(rows, 1)), -1e9)
        for r, pos in enumerate(soft):
            first, k = self.offset[pos]
            mask[r, first : first + k] = 0.0
        self._anchor_steps = [s for s, st in enumerate(self.steps) if st.kind == "anchor"]
        self._pairs = [(q, pos, j) for q, s in enumerate(self._anchor_steps) for pos, j in self.steps[s].pairs]
        for name, value in (("_mask", mask), ("_soft_pos", torch.tensor(soft, dtype=torch.long)),
                            ("_soft_first", torch.tensor([self.offset[p][0] for p in soft], dtype=torch.long)),
                            ("_pair_pos", torch.tensor([pos for _, pos, _ in self._pairs], dtype=torch.long))):
            self.register_buffer(name, value, persistent=False)

    def _scale(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def attention(self, keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Anchor logits: ``keys`` (..., H) hold earlier layers' h_j, ``queries`` (..., H) the
        attending layers' h_i (broadcast); returns (...) logits, p(j is an input) = sigmoid(logit)."""
        return self._scale(self.v(torch.tanh(self.w_prev(keys) + self.w_curr(queries))).squeeze(-1))

    def sample(self, generator: Optional[torch.Generator] = None) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        out = [0] * self.n
        x, state = self.start, None
        keys: dict[int, torch.Tensor] = {}
        log_p, entropy = x.new_zeros(()), x.new_zeros(())
        key_step = 0
        for step in self.steps:
            state = self.lstm(x, state)
            h = state[0]  # (1, H)
            if step.kind == "key":
                keys[step.layer] = h
                x = self.key_inputs[key_step : key_step + 1]
                key_step += 1
            elif step.kind == "softmax":
                first, k = self.offset[step.pos]
                logits = F.linear(h[0], self.head.weight[first : first + k], self.head.bias[first : first + k])
                logp = F.log_softmax(self._scale(logits), dim=-1)  # (k,)
                u = torch.rand((), generator=generator)  # inverse CDF: one uniform per token
                tok = min(int(torch.searchsorted(logp.exp().cumsum(0), u, right=True)), k - 1)
                out[step.pos] = tok
                log_p = log_p + logp[tok]
                entropy = entropy - (logp.exp() * logp).sum()
                x = self.embedding.weight[first + tok : first + tok + 1]
            else:
                keys.setdefault(step.layer, h)
                earlier = torch.cat([keys[j] for _, j in step.pairs])  # (n, H)
                logits = self.attention(earlier, h)  # (n,)
                bits = (torch.rand(len(step.pairs), generator=generator) < torch.sigmoid(logits)).float()
                for (pos, _), bit in zip(step.pairs, bits.tolist()):
                    out[pos] = int(bit)
                log_p = log_p + _bernoulli_log_p(logits, bits).sum()
                entropy = entropy + _bernoulli_entropy(logits).sum()
                x = (bits[:, None] * earlier).sum(0, keepdim=True) / (1 + bits.sum())
        return out, log_p, entropy

    def forward(self, tokens: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = torch.tensor([list(t) for t in tokens], dtype=torch.long).reshape(len(tokens), self.n)  # (B, n)
        batch = tok.shape[0]
        rows = self._soft_first + tok[:, self._soft_pos]  # (B, S): the picked head row of each softmax step
        emb = self.embedding(rows)  # (B, S, H)
        x, state = self.start.expand(batch, -1), None
        keys: dict[int, torch.Tensor] = {}
        hs: list[torch.Tensor] = []
        soft_i = key_step = 0
        for step in self.steps:  # the recurrence, the only sequential part
            state = self.lstm(x, state)
            h = state[0]  # (B, H)
            hs.append(h)
            if step.kind == "key":
                keys[step.layer] = h
                x = self.key_inputs[key_step : key_step + 1].expand(batch, -1)
                key_step += 1
            elif step.kind == "softmax":
                x = emb[:, soft_i]
                soft_i += 1
            else:
                keys.setdefault(step.layer, h)
                bits = tok[:, [pos for pos, _ in step.pairs]].to(h.dtype)  # (B, n)
                earlier = torch.stack([keys[j] for _, j in step.pairs], dim=1)  # (B, n, H)
                x = (bits[:, :, None] * earlier).sum(1) / (1 + bits.sum(1, keepdim=True))
        log_p, entropy = self.start.new_zeros(batch), self.start.new_zeros(batch)
        if self._soft_steps:
            h = torch.stack([hs[s] for s in self._soft_steps], dim=1)  # (B, S, H)
            logp = F.log_softmax(self._scale(self.head(h)) + self._mask, dim=-1)  # (B, S, rows); other blocks ~ -1e9
            log_p = log_p + logp.gather(2, rows[:, :, None]).sum((1, 2))
            entropy = entropy - (logp.exp() * logp).sum((1, 2))
        if self._pairs:
            queries = torch.stack([hs[self._anchor_steps[q]] for q, _, _ in self._pairs], dim=1)  # (B, P, H)
            earlier = torch.stack([keys[j] for _, _, j in self._pairs], dim=1)  # (B, P, H)
            logits = self.attention(earlier, queries)  # (B, P)
            bits = tok[:, self._pair_pos].to(logits.dtype)
            log_p = log_p + _bernoulli_log_p(logits, bits).sum(1)
            entropy = entropy + _bernoulli_entropy(logits).sum(1)
        return log_p, entropy


def _bernoulli_log_p(logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    return bits * F.logsigmoid(logits) + (1 - bits) * F.logsigmoid(-logits)


def _bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits))


# -- the strategy ----------------------------------------------------------------------
class MovingAverage:
    """The REINFORCE baseline: b <- decay * b + (1 - decay) * r, starting at the first reward."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.value: Optional[float] = None

    def update(self, reward: float) -> float:
        """Absorb ``reward``; returns the baseline as it was before (the first reward: itself)."""
        before = reward if self.value is None else self.value
        self.value = self.decay * before + (1.0 - self.decay) * reward
        return before


def _number(key: str, value: object, low: float, high: float = math.inf, integer: bool = False,
            low_open: bool = True, high_open: bool = True) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if ok and not isinstance(value, bool) and math.isfinite(float(value)):  # type: ignore[arg-type]
        v = float(value)  # type: ignore[arg-type]
        if (v > low if low_open else v >= low) and (v < high if high_open else v <= high):
            return
    kind = "an integer" if integer else "a number"
    lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
    raise ConfigError(f"strategy.{key} must be {kind} in {lo}, {hi}, got {value!r}")


@register_strategy("reinforce")
class Reinforce(Strategy):
    """RL search: an LSTM controller emits the decision sequence, trained by REINFORCE; options in the module docstring."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        hidden: int = 64,
        lr: float = 0.01,
        baseline_decay: float = 0.95,
        entropy_weight: float = 0.0001,
        batch: int = 1,
        temperature: Optional[float] = 5.0,
        tanh_constant: Optional[float] = 2.5,
        normalize: str = "rank",
        resample: int = 20,
        failure_reward: Optional[float] = None,
    ) -> None:
        super().__init__(space, seed)
        _number("hidden", hidden, 0, integer=True)
        _number("lr", lr, 0)
        _number("baseline_decay", baseline_decay, 0, 1, low_open=False)
        _number("entropy_weight", entropy_weight, 0, low_open=False)
        _number("batch", batch, 0, integer=True)
        _number("resample", resample, 0, integer=True, low_open=False)
        for key, value in (("temperature", temperature), ("tanh_constant", tanh_constant)):
            if value is not None:
                _number(key, value, 0)
        if normalize not in NORMALIZE:
            raise ConfigError(f"strategy.normalize must be one of: {', '.join(NORMALIZE)} (got {normalize!r})")
        if failure_reward is not None:
            _number("failure_reward", failure_reward, -math.inf)
        self.entropy_weight, self.batch, self.resample = float(entropy_weight), batch, resample
        self.normalize = normalize
        self.failure_reward = None if failure_reward is None else float(failure_reward)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.controller = Controller(space.decisions(), hidden, temperature, tanh_constant, self.generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=float(lr), foreach=True)
        self.baseline = MovingAverage(float(baseline_decay))
        self.rewards: list[float] = []  # every reward told, sorted: the rank normalisation's reference
        self.known: dict[str, float] = {}  # arch id -> reward, for redrawn architectures
        self.proposed: set[str] = set()  # ids proposed or told: not proposed again while resampling
        self.pending: dict[str, deque[list[int]]] = {}  # arch id -> sampled token sequences, oldest first
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
        self.pending.setdefault(arch.id, deque()).append(tokens)
        return Proposal(arch)

    def tell(self, trial: Trial) -> None:
        waiting = self.pending.get(trial.arch.id)
        # the sampled tokens; a trial this controller did not propose is scored by its encoding
        tokens = waiting.popleft() if waiting else self.space.encode(trial.arch)
        if waiting is not None and not waiting:
            del self.pending[trial.arch.id]
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
