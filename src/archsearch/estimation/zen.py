"""Zen-score (Lin et al. 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition").

Data-free: no dataset and no labels. As the paper describes it, the network's weights are drawn
from N(0, 1) (conv and linear weights; biases 0, batch-norm scale 1 and shift 0, so the score
depends on the architecture only), a standard-normal batch x and its perturbation
x' = x + alpha * eps (alpha = 0.01, eps standard normal) go through the network with batch-norm
in train mode (every other module in eval mode: no dropout or drop-path noise), and

    zen = log(mean_i ||f(x_i) - f(x'_i)||_F / alpha) + sum over BN layers of log(sqrt(mean_c var_c))

where f is the feature map *before* global average pooling and var_c the batch variance of
channel c at that BN layer's input in the forward pass of x. The score is averaged over
``ZEN_REPEATS`` draws of a generator seeded by the caller (the global RNG is not used).

Finding f generically: our networks pool with a spatial mean (``x.mean(dim=(2, 3))``) or
``adaptive_avg_pool2d(x, 1)`` in their forward, not with a module, so a torch function mode
records the input of the last global average pool of the forward pass. A network without one
(no 4-D map pooled to 1x1) falls back to the input of its last linear layer (the pooled
features: the paper's f after pooling, which loses the spatial positions); a network with
neither is refused with one line. Token inputs (language models) are refused: the score needs
continuous inputs. The network is computed in double precision: N(0, 1) weights make the
activations of a network without batch-norm grow by about sqrt(fan-in) per layer.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from archsearch.errors import ConfigError

ZEN_ALPHA = 0.01
ZEN_BATCH = 8
ZEN_REPEATS = 2

_MEANS = {torch.mean, torch.Tensor.mean}


def _is_global_pool(func: Any, args: tuple, kwargs: dict) -> bool:
    """A spatial mean of a 4-D map over both spatial dims, or an adaptive average pool to 1x1."""
    if not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 4:
        return False
    if func in _MEANS:
        dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dims is None:
            return False
        dims = {d % 4 for d in ((dims,) if isinstance(dims, int) else dims)}
        return dims == {2, 3}
    if func is F.adaptive_avg_pool2d:
        size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
        return size in (1, (1, 1), [1, 1])
    return False


class _PoolProbe(TorchFunctionMode):
    """Records the input of the last global average pool of a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.features: Optional[torch.Tensor] = None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        kwargs = kwargs or {}
        if _is_global_pool(func, args, kwargs):
            self.features = args[0]
        return func(*args, **kwargs)


def _gaussian_init(model: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=m.weight.dtype))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _features(model: nn.Module, x: torch.Tensor, bn_vars: Optional[list[torch.Tensor]]) -> torch.Tensor:
    """f(x): the last global pool's input (else the last linear layer's input); BN input variances to ``bn_vars``."""
    linear_inputs: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, inp: linear_inputs.append(inp[0]))
               for m in model.modules() if isinstance(m, nn.Linear)]
    if bn_vars is not None:
        def record(_m: nn.Module, inp: tuple) -> None:
            t = inp[0]
            dims = [d for d in range(t.dim()) if d != 1]
            bn_vars.append(t.detach().var(dim=dims, unbiased=False).mean())
        handles += [m.register_forward_pre_hook(record) for m in model.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    probe = _PoolProbe()
    try:
        with probe:
            model(x)
    finally:
        for h in handles:
            h.remove()
    if probe.features is not None:
        return probe.features
    if linear_inputs:
        return linear_inputs[-1]
    raise ConfigError("proxy 'zen' found no global average pooling and no linear layer in the network "
                      "(it scores the features before the classifier)")


@torch.no_grad()
def zen_score(model: nn.Module, input_shape: tuple[int, ...], seed: int = 0, batch: int = ZEN_BATCH,
              repeats: int = ZEN_REPEATS, alpha: float = ZEN_ALPHA) -> float:
    """The Zen-score of ``model`` (modified in place: re-initialised, double precision)."""
    g = torch.Generator().manual_seed(seed)
    model.double().eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    scores = []
    for _ in range(repeats):
        _gaussian_init(model, g)
        x = torch.randn((batch, *input_shape), generator=g, dtype=torch.float64)
        eps = torch.randn(x.shape, generator=g, dtype=torch.float64)
        bn_vars: list[torch.Tensor] = []
        fx = _features(model, x, bn_vars)
        fx2 = _features(model, x + alpha * eps, None)
        delta = (fx - fx2).reshape(batch, -1).norm(dim=1).mean() / alpha
        bn_term = sum(0.5 * math.log(float(v)) for v in bn_vars if float(v) > 0)
        scores.append(math.log(float(delta)) + bn_term if float(delta) > 0 else -math.inf)
    return float(sum(scores) / len(scores))


__all__ = ["ZEN_ALPHA", "ZEN_BATCH", "ZEN_REPEATS", "zen_score"]
