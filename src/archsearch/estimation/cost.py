"""What a network costs to train on this machine, known before it trains.

FLOPs alone mispredict small convolutional networks on a CPU: at high resolution the memory-bound
parts (batch norm, activations, pooling) cost as much as the arithmetic. The model here is linear
in two measured features of the built network, both from one forward pass at batch 1:

    seconds per training sample = a + b * FLOPs + c * activation elements

with a, b, c >= 0 fitted (non-negative least squares, relative error) to a few networks timed for
a few training steps on the machine that will run the search. Evaluation (a forward pass without
gradients) gets its own fit. The search refits the model with every trial it measures
(:meth:`CostModel.observe`), so later predictions are those of the machine as it really runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class NetworkProfile:
    """The features the cost model reads from one built network (per sample, batch 1)."""

    flops: float
    activations: float  # elements written by every leaf module's forward
    params: float

    def to_dict(self) -> dict[str, float]:
        return {"flops": self.flops, "activations": self.activations, "params": self.params}


def profile_network(model: nn.Module, input_shape: tuple[int, ...]) -> NetworkProfile:
    """FLOPs, activation elements and parameters of ``model`` on one input of ``input_shape``."""
    from torch.utils.flop_counter import FlopCounterMode

    activations = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal activations
        if isinstance(output, torch.Tensor):
            activations += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
        flops = float(counter.get_total_flops())
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    params = float(sum(p.numel() for p in model.parameters()))
    return NetworkProfile(flops, float(activations), params)


def time_network(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int,
                 generator: torch.Generator, steps: int = 3, warmup: int = 1) -> tuple[float, float]:
    """Measured (train, eval) seconds per sample: ``steps`` AdamW steps on random inputs after
    ``warmup`` untimed ones, then as many forward passes without gradients."""
    x = torch.randn((batch_size, *input_shape), generator=generator)
    y = torch.randint(0, num_classes, (batch_size,), generator=generator)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train = (time.perf_counter() - start) / (steps * batch_size)
    model.eval()
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
    evaluate = (time.perf_counter() - start) / (steps * batch_size)
    model.train()
    return train, evaluate


def _fit(features: np.ndarray, seconds: np.ndarray) -> list[float]:
    """Non-negative least squares in relative error (each row scaled by 1 / its seconds), so the
    cheap networks count as much as the dear ones."""
    from scipy.optimize import nnls

    weights = 1.0 / np.maximum(seconds, 1e-12)
    coef, _ = nnls(features * weights[:, None], seconds * weights)
    return [float(c) for c in coef]


@dataclass
class CostModel:
    """Seconds per sample of training and of evaluation as linear functions of a :class:`NetworkProfile`.

    Fitted to the calibration timings, then refitted each time a trial is observed: a trial's measured
    seconds per training sample join the data (:meth:`observe`), so the model learns this machine's
    real throughput, load included, on the networks the search actually proposes."""

    train_coef: list[float]  # a, b (per FLOP), c (per activation element)
    eval_coef: list[float]
    samples: list[dict[str, float]] = field(default_factory=list)  # the calibration measurements
    observed: list[dict[str, float]] = field(default_factory=list)  # from trials

    @classmethod
    def fit(cls, profiles: Sequence[NetworkProfile], train: Sequence[float], evaluate: Sequence[float]) -> "CostModel":
        samples = [{**p.to_dict(), "train_s": t, "eval_s": e} for p, t, e in zip(profiles, train, evaluate)]
        model = cls([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], samples)
        model.refit()
        return model

    def refit(self) -> None:
        points = self.samples + self.observed
        x = np.array([[1.0, p["flops"], p["activations"]] for p in points])
        self.train_coef = _fit(x, np.array([p["train_s"] for p in points]))
        self.eval_coef = _fit(x, np.array([p["eval_s"] for p in points]))

    def _raw(self, coef: list[float], profile: NetworkProfile) -> float:
        return coef[0] + coef[1] * profile.flops + coef[2] * profile.activations

    def train_seconds(self, profile: NetworkProfile) -> float:
        """Seconds to train on one sample (forward, backward, step)."""
        return self._raw(self.train_coef, profile)

    def eval_seconds(self, profile: NetworkProfile) -> float:
        return self._raw(self.eval_coef, profile)

    def observe(self, profile: NetworkProfile, train_s: float, eval_s: float) -> None:
        """A trial measured ``train_s``/``eval_s`` seconds per sample for a network of ``profile``."""
        if train_s > 0 and eval_s > 0 and np.isfinite(train_s) and np.isfinite(eval_s):
            self.observed.append({**profile.to_dict(), "train_s": train_s, "eval_s": eval_s})
            del self.observed[:-MAX_OBSERVED]
            self.refit()

    def to_dict(self) -> dict[str, Any]:
        return {"train_coef": self.train_coef, "eval_coef": self.eval_coef, "samples": self.samples,
                "observed": self.observed, "model": "seconds/sample = a + b*flops + c*activations"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CostModel":
        return cls([float(v) for v in data["train_coef"]], [float(v) for v in data["eval_coef"]],
                   list(data.get("samples", [])), list(data.get("observed", [])))


MAX_OBSERVED = 200  # trials kept in the fit (the latest)
