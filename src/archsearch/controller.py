"""The LSTM controller over a decision sequence (Zoph & Le 2017; ENAS's attention for anchor
points), shared by the ``reinforce`` strategy and the ``enas`` one-shot method.

:func:`plan` turns a space's decisions into LSTM steps: a softmax step per ordinary decision,
one attention step per node's INPUTS decisions (``DecisionKind.INPUTS``: the anchor points of
chains with skips), and key steps for nodes attended to before they had a step of their own.
:class:`Controller` samples token sequences and recomputes their log-probabilities and
entropies under the current parameters; :class:`MovingAverage` is the REINFORCE baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.spaces.base import Decision, DecisionKind


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


# -- the REINFORCE baseline ------------------------------------------------------------
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
