"""What a network costs to train on this machine, known before it trains.

FLOPs alone mispredict small convolutional networks on a CPU: at high resolution the memory-bound
parts (batch norm, activations, pooling) cost as much as the arithmetic. The model here is linear
in two measured features of the built network, both from one forward pass at batch 1:

    seconds per training sample = a + b * FLOPs + c * activation elements

with a, b, c >= 0 fitted (non-negative least squares) to a few networks timed for a few
training steps on the machine that will run the search (:func:`calibrate`). Evaluation (a
forward pass without gradients) gets its own fit. The search then corrects the model with
the trials it measures (:meth:`CostModel.observe`): the median ratio of measured to predicted
seconds multiplies every later prediction.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
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

    ``correction`` is the median of measured / predicted over the trials observed (1 before any)."""

    train_coef: list[float]  # a, b (per FLOP), c (per activation element)
    eval_coef: list[float]
    samples: list[dict[str, float]] = field(default_factory=list)  # the calibration measurements
    ratios: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, profiles: Sequence[NetworkProfile], train: Sequence[float], evaluate: Sequence[float]) -> "CostModel":
        x = np.array([[1.0, p.flops, p.activations] for p in profiles])
        samples = [{**p.to_dict(), "train_s": t, "eval_s": e} for p, t, e in zip(profiles, train, evaluate)]
        return cls(_fit(x, np.array(train)), _fit(x, np.array(evaluate)), samples)

    @property
    def correction(self) -> float:
        return statistics.median(self.ratios) if self.ratios else 1.0

    def _raw(self, coef: list[float], profile: NetworkProfile) -> float:
        return coef[0] + coef[1] * profile.flops + coef[2] * profile.activations

    def train_seconds(self, profile: NetworkProfile) -> float:
        """Seconds to train on one sample (forward, backward, step), corrected by what trials measured."""
        return self._raw(self.train_coef, profile) * self.correction

    def eval_seconds(self, profile: NetworkProfile) -> float:
        return self._raw(self.eval_coef, profile) * self.correction

    def observe(self, predicted: float, measured: float) -> None:
        """A trial predicted (uncorrected) to take ``predicted`` seconds took ``measured``."""
        if predicted > 0 and measured > 0:
            self.ratios.append(measured / predicted)

    def to_dict(self) -> dict[str, Any]:
        return {"train_coef": self.train_coef, "eval_coef": self.eval_coef, "correction": self.correction,
                "observed": len(self.ratios), "samples": self.samples,
                "model": "seconds/sample = a + b*flops + c*activations"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CostModel":
        return cls([float(v) for v in data["train_coef"]], [float(v) for v in data["eval_coef"]],
                   list(data.get("samples", [])))

    def scaled(self, factor: float) -> "CostModel":
        """This model with every prediction multiplied by ``factor`` (tests inject machines)."""
        return replace(self, train_coef=[c * factor for c in self.train_coef],
                       eval_coef=[c * factor for c in self.eval_coef], ratios=list(self.ratios))
