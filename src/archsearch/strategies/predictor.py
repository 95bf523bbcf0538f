"""Neural performance predictors shared by the model-based strategies (BANANAS, predictor-guided
local search): a small ensemble of MLPs and the reward transform they are trained on.

Plain numpy: a few hundred points of a few dozen features train in milliseconds, faster
than torch's per-call overhead, and the caller's generator makes every fit reproducible.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from archsearch.errors import ConfigError
from archsearch.spaces.base import SearchSpace


TARGETS = ("standard", "log_gap")


def widths(hidden: Sequence[int]) -> Optional[str]:
    """``option(check=...)`` for ``hidden``, the predictor's hidden layer widths."""
    if not hidden or any(h < 1 for h in hidden):
        return "must be a non-empty list of positive integers"
    return None


def resolve_encoding(space: SearchSpace, encoding: str) -> str:
    """The feature encoding a predictor uses on ``space``: ``auto`` takes ``path`` where the space has it,
    else ``onehot``; a named one must be among the space's (a ConfigError naming them otherwise)."""
    kinds = space.feature_kinds()
    if encoding != "auto" and encoding not in kinds:
        raise ConfigError(f"strategy.encoding must be one of: auto, {', '.join(kinds)} "
                          f"(space {space.name!r}; got {encoding!r})")
    return encoding if encoding != "auto" else ("path" if "path" in kinds else "onehot")


def transform_rewards(rewards: np.ndarray, target: str = "standard", eps: float = 0.05) -> np.ndarray:
    """Rewards as the predictor's regression target, standardised.

    ``standard`` is the z-score. ``log_gap`` is ``-log(gap + eps)`` with ``gap`` the distance to
    the best reward in units of the rewards' std: it stretches the top of the distribution, where
    a search has to tell good from best, and squashes the long tail of broken architectures
    that otherwise dominates the squared error (on NAS-Bench-201 a few "none"-heavy cells sit
    60 points below the rest). Scale-free, so it works for accuracies in [0, 1] or in percent.
    """
    y = np.asarray(rewards, dtype=np.float64)
    sd = float(y.std()) or 1.0
    if target == "log_gap":
        y = -np.log((y.max() - y) / sd + eps)
        sd = float(y.std()) or 1.0
    return (y - y.mean()) / sd


class MLPEnsemble:
    """``members`` ReLU MLPs trained jointly with full-batch Adam on the mean squared error.

    Parameters are stacked along a leading member axis, so one matmul steps every member;
    members differ by initialisation and by a bootstrap weighting of the points, which
    keeps their disagreement a usable uncertainty estimate.
    """

    def __init__(self, members: int, hidden: Sequence[int], epochs: int, lr: float = 0.01,
                 weight_decay: float = 1e-4, loss: str = "mse", bootstrap: bool = True) -> None:
        self.members, self.hidden, self.epochs = members, tuple(hidden), epochs
        self.lr, self.weight_decay, self.loss, self.bootstrap = lr, weight_decay, loss, bootstrap
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> "MLPEnsemble":
        n, e = len(x), self.members
        sizes = (x.shape[1], *self.hidden, 1)
        self.weights = [rng.standard_normal((e, a, b)) * math.sqrt(2.0 / a) for a, b in zip(sizes, sizes[1:])]
        self.biases = [np.zeros((e, 1, b)) for b in sizes[1:]]
        params = self.weights + self.biases
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        boot = (rng.multinomial(n, np.full(n, 1.0 / n), size=e).astype(np.float64) if e > 1 and self.bootstrap
                else np.ones((e, n)))
        boot = (boot / boot.sum(axis=1, keepdims=True))[:, :, None]  # (E, N, 1), rows sum to 1
        target = y.reshape(1, n, 1)
        b1, b2 = 0.9, 0.999
        for step in range(1, self.epochs + 1):
            acts, pre = self._forward(x)
            grad = (2.0 * (acts[-1] - target) if self.loss == "mse" else np.sign(acts[-1] - target)) * boot
            grads_w: list[np.ndarray] = [np.empty(0)] * len(self.weights)
            grads_b: list[np.ndarray] = [np.empty(0)] * len(self.biases)
            for layer in range(len(self.weights) - 1, -1, -1):
                inp = acts[layer]
                grads_w[layer] = (inp.T @ grad if inp.ndim == 2 else np.swapaxes(inp, 1, 2) @ grad)
                grads_w[layer] += self.weight_decay * self.weights[layer]
                grads_b[layer] = grad.sum(axis=1, keepdims=True)
                if layer:
                    grad = (grad @ np.swapaxes(self.weights[layer], 1, 2)) * (pre[layer - 1] > 0)
            c1, c2 = 1.0 - b1 ** step, 1.0 - b2 ** step
            for p, g, mp, vp in zip(params, grads_w + grads_b, m, v):
                mp *= b1
                mp += (1.0 - b1) * g
                vp *= b2
                vp += (1.0 - b2) * g * g
                p -= self.lr * (mp / c1) / (np.sqrt(vp / c2) + 1e-8)
        return self

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        acts: list[np.ndarray] = [x]
        pre: list[np.ndarray] = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = acts[-1] @ w + b
            if layer < len(self.weights) - 1:
                pre.append(z)
                z = np.maximum(z, 0.0)
            acts.append(z)
        return acts, pre

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions of every member, shape (members, len(x))."""
        return self._forward(x)[0][-1][:, :, 0]
