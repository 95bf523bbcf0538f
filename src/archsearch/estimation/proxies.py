"""Zero-cost proxies: score an untrained network in one forward/backward pass.

A proxy is a function ``(model, context) -> float`` registered by name. Every proxy is
oriented so that **higher is better** (a proxy where smaller means better would be negated
here): ``params`` and ``flops`` included, since on cell benchmarks the larger networks are
the more accurate ones (use constraints, not these proxies, to look for small networks).

* ``synflow`` (Tanaka et al. 2020, as a NAS proxy in Abdelfattah et al. 2021, "Zero-Cost
  Proxies for Lightweight NAS"), data-independent: the network in double precision with every
  parameter and buffer replaced by its absolute value, an all-ones input of batch 1,
  R = sum of the outputs, score = sum over the weights of convolution and linear layers of
  ``|w * dR/dw|`` (biases and other parameters do not count). Batch-norm: the reference
  implementation (SamsungLabs/zero-cost-nas, ``synflow`` is measured with ``bn=False``)
  rebuilds the network *without* its batch-norm layers before scoring; here every batch-norm
  module of a copy of the built network is replaced by an identity, which is the same network
  (our spaces cannot be rebuilt without BN, so we remove it after building). The score is
  therefore independent of batch-norm statistics and affine parameters. The network is
  scored in eval mode, so dropout and drop-path (random, and absent from the reference
  networks) play no part.
* ``snip`` (Lee et al. 2019): sum over conv/linear weights of ``|w * dL/dw|``, L the
  cross-entropy of one minibatch (network in train mode, as in the reference).
* ``grad_norm``: the norm of the loss gradient on one minibatch, computed as in the reference
  implementation: the sum over conv/linear layers of the L2 norm of each weight's gradient.
* ``jacob_cov`` (Mellor et al. 2021, "Neural Architecture Search without Training", its first
  version, the one the zero-cost proxies paper evaluates): the Jacobian of the summed outputs
  with respect to the inputs of one minibatch, its per-example correlation matrix Σ (B x B), and
  score = -sum_i (log(λ_i + k) + 1 / (λ_i + k)) over the eigenvalues λ of Σ, k = 1e-5. Needs a
  minibatch of at least 2 continuous inputs (not token ids). (The later NASWOT score, the log
  determinant of ReLU activation-pattern overlaps, is not implemented.)
* ``zen`` (Lin et al. 2021, Zen-NAS), data-free: :mod:`archsearch.estimation.zen` (Gaussian
  weights and inputs, the change of the pre-pooling features under a small input perturbation
  plus the batch-norm variances, seeded by the scoring seed).
* ``params``, ``flops``: :func:`~archsearch.estimation.base.count_params` and
  :func:`~archsearch.estimation.base.count_flops` (batch 1) of the built network.

Proxies that need data (``snip``, ``grad_norm``, ``jacob_cov``) take a minibatch ``(x, y)``;
without one, :func:`random_batch` draws a seeded random batch of the task's shape (standard
normal images, uniform labels; token ids for language-model tasks). Networks are built with
their weights initialised from ``seed`` and the global torch RNG state is restored afterwards
(``torch.random.fork_rng``), so scoring never perturbs anything else. A network that returns a
tuple is scored on its first element (the main output; DARTS-style auxiliary logits are an
attribute of the model, not the output, and are ignored).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.estimation.base import count_flops, count_params
from archsearch.estimation.zen import zen_score
from archsearch.spaces.base import Architecture, SearchSpace

Batch = tuple[torch.Tensor, torch.Tensor]
DEFAULT_BATCH_SIZE = 64
JACOB_K = 1e-5


@dataclass(frozen=True)
class ProxyContext:
    """What a proxy may use besides the network: the task and (for data-dependent proxies) a minibatch."""

    task: Task
    batch: Optional[Batch] = None
    seed: int = 0  # seeds the proxies that draw their own inputs (zen)


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[[nn.Module, ProxyContext], float]
    needs_data: bool
    mutates: bool  # changes the model (weights, grads, dtype): gets its own copy


_PROXIES: dict[str, Proxy] = {}


ProxyFn = Callable[[nn.Module, "ProxyContext"], float]


def register_proxy(name: str, needs_data: bool = False, mutates: bool = True) -> Callable[[ProxyFn], ProxyFn]:
    """Register ``fn(model, context) -> float`` (higher = better) under ``name``."""

    def decorator(fn: Callable[[nn.Module, ProxyContext], float]) -> Callable[[nn.Module, ProxyContext], float]:
        if name in _PROXIES and _PROXIES[name].fn is not fn:
            raise ValueError(f"proxy {name!r} is already registered")
        _PROXIES[name] = Proxy(name, fn, needs_data, mutates)
        return fn

    return decorator


def list_proxies() -> list[str]:
    return sorted(_PROXIES)


def get_proxy(name: str) -> Proxy:
    if name not in _PROXIES:
        raise ConfigError(f"unknown proxy {name!r} (valid: {', '.join(list_proxies())})")
    return _PROXIES[name]


def check_proxies(names: Sequence[str], also: Sequence[str] = ()) -> list[str]:
    """Validate a list of proxy names (non-empty, known, no repeats; ``also``: further names the caller
    accepts, e.g. the population votes); returns it as a list. Errors list every valid name."""
    names = list(names)
    valid = ", ".join(sorted([*list_proxies(), *also]))
    if not names:
        raise ConfigError(f"no proxy given (valid: {valid})")
    for name in names:
        if name not in also and name not in _PROXIES:
            raise ConfigError(f"unknown proxy {name!r} (valid: {valid})")
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ConfigError(f"proxy {sorted(seen)[0]!r} is given twice")
    return names


# -- helpers -------------------------------------------------------------------------------
def _main_output(out: object) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    assert isinstance(out, torch.Tensor), f"the network returned {type(out).__name__}, not a tensor"
    return out


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """The weights of conv and linear layers: what synflow, snip and grad_norm sum over."""
    return [m.weight for m in model.modules()
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and isinstance(m.weight, torch.Tensor)]


@torch.no_grad()
def _saliency(model: nn.Module) -> float:
    """sum over conv/linear weights of |w * grad|."""
    return float(sum(float((w * w.grad).abs().sum()) for w in _weights(model) if w.grad is not None))


def _drop_batchnorm(model: nn.Module) -> None:
    """Replace every batch-norm module by an identity, in place (the reference's ``bn=False``)."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            _drop_batchnorm(child)


def _is_tokens(task: Task) -> bool:
    return task.kind == "language_model"


def random_batch(task: Task, size: int = DEFAULT_BATCH_SIZE, seed: int = 0) -> Batch:
    """A seeded random minibatch of the task's shape (its own generator: global RNG untouched)."""
    g = torch.Generator().manual_seed(seed)
    if _is_tokens(task):
        x = torch.randint(0, task.num_classes, (size, *task.input_shape), generator=g)
        y = torch.randint(0, task.num_classes, (size, *task.input_shape), generator=g)
    else:
        x = torch.randn((size, *task.input_shape), generator=g)
        y = torch.randint(0, task.num_classes, (size,), generator=g)
    return x, y


def _loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    out = _main_output(model(x))
    if out.dim() > 2:  # sequence outputs (N, T, V): one prediction per position
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.cross_entropy(out, y)


def _need_batch(ctx: ProxyContext, name: str) -> Batch:
    if ctx.batch is None:
        raise ConfigError(f"proxy {name!r} needs a minibatch")
    return ctx.batch


# -- the proxies -----------------------------------------------------------------------------
@register_proxy("synflow")
def synflow(model: nn.Module, ctx: ProxyContext) -> float:
    _drop_batchnorm(model)
    model.double().eval()
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.abs_()
    model.zero_grad(set_to_none=True)
    if _is_tokens(ctx.task):
        x = torch.ones((1, *ctx.task.input_shape), dtype=torch.long)
    else:
        x = torch.ones((1, *ctx.task.input_shape), dtype=torch.float64)
    _main_output(model(x)).sum().backward()
    return _saliency(model)


@register_proxy("snip", needs_data=True)
def snip(model: nn.Module, ctx: ProxyContext) -> float:
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model, _need_batch(ctx, "snip")).backward()
    return _saliency(model)


@register_proxy("grad_norm", needs_data=True)
def grad_norm(model: nn.Module, ctx: ProxyContext) -> float:
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model, _need_batch(ctx, "grad_norm")).backward()
    with torch.no_grad():
        return float(sum(float(w.grad.norm()) for w in _weights(model) if w.grad is not None))


@register_proxy("jacob_cov", needs_data=True)
def jacob_cov(model: nn.Module, ctx: ProxyContext) -> float:
    x, _ = _need_batch(ctx, "jacob_cov")
    if not x.is_floating_point():
        raise ConfigError("proxy 'jacob_cov' needs continuous inputs (the Jacobian with respect to token ids "
                          "is not defined)")
    if x.shape[0] < 2:
        raise ConfigError(f"proxy 'jacob_cov' needs a minibatch of at least 2 examples, got {x.shape[0]}")
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = _main_output(model(x))
    out.backward(torch.ones_like(out))
    grad = x.grad if x.grad is not None else torch.zeros_like(x)  # outputs that ignore the input
    jacobian = grad.reshape(x.shape[0], -1).double()
    corr = torch.corrcoef(jacobian)
    corr = torch.nan_to_num(corr, nan=0.0)  # a constant row (dead network) correlates with nothing
    eig = torch.linalg.eigvalsh(corr).clamp_min(0.0)
    return float(-torch.sum(torch.log(eig + JACOB_K) + 1.0 / (eig + JACOB_K)))


@register_proxy("params", mutates=False)
def params(model: nn.Module, ctx: ProxyContext) -> float:
    return float(count_params(model))


@register_proxy("flops", mutates=False)
def flops(model: nn.Module, ctx: ProxyContext) -> float:
    return float(count_flops(model, tuple(ctx.task.input_shape)))


@register_proxy("zen")
def zen(model: nn.Module, ctx: ProxyContext) -> float:
    if _is_tokens(ctx.task):
        raise ConfigError("proxy 'zen' needs continuous image inputs (token ids have no Gaussian perturbation)")
    return zen_score(model, tuple(ctx.task.input_shape), seed=ctx.seed)


# -- scoring ---------------------------------------------------------------------------------
def build_model(space: SearchSpace, arch: Architecture, task: Task, seed: int = 0) -> nn.Module:
    """``space.build`` with weights initialised from ``seed``; the global RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build(arch, task)


def score_model(model: nn.Module, task: Task, proxies: Sequence[str], batch: Optional[Batch] = None,
                seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE, consume: bool = False) -> dict[str, float]:
    """Score a built (untrained) network with each proxy.

    ``model`` is left unchanged (proxies that modify it get a copy) unless ``consume`` is True:
    then the last proxy that modifies a network gets ``model`` itself (saves one copy).
    """
    chosen = [get_proxy(n) for n in check_proxies(proxies)]
    if batch is None and any(p.needs_data for p in chosen):
        batch = random_batch(task, batch_size, seed)
    ctx = ProxyContext(task, batch, seed)
    scores: dict[str, float] = {}
    # proxies that only read the network run first, so ``consume`` never shows them a modified one
    order = sorted(range(len(chosen)), key=lambda i: chosen[i].mutates)
    last = order[-1] if chosen[order[-1]].mutates else -1
    with torch.random.fork_rng(devices=[]):  # dropout in train-mode proxies draws from the global RNG
        torch.manual_seed(seed)
        for i in order:
            proxy = chosen[i]
            target = copy.deepcopy(model) if proxy.mutates and not (consume and i == last) else model
            scores[proxy.name] = proxy.fn(target, ctx)
    return {p.name: scores[p.name] for p in chosen}


def score_architecture(space: SearchSpace, arch: Architecture, task: Task, proxies: Sequence[str],
                       batch: Optional[Batch] = None, seed: int = 0,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, float]:
    """Build ``arch`` for ``task`` (weights from ``seed``) and score it: ``{proxy: score}``, higher = better.

    ``batch`` is the minibatch ``(x, y)`` of the data-dependent proxies; None draws
    :func:`random_batch` of ``batch_size`` from ``seed``.
    """
    check_proxies(proxies)
    return score_model(build_model(space, arch, task, seed), task, proxies, batch, seed, batch_size, consume=True)


__all__ = ["Proxy", "ProxyContext", "build_model", "check_proxies", "get_proxy", "list_proxies", "random_batch",
           "register_proxy", "score_architecture", "score_model"]
