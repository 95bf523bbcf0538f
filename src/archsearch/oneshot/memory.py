"""The supernet's training memory, checked when a one-shot search is set up, before anything is written.

A supernet holds every candidate of every choice point: the DARTS supernet at batch 32 takes several
GB. The estimate is the trials' (:func:`archsearch.estimation.memory.estimate_training_memory`) on the
supernet at the method's batch size, with SGD's momentum for the weights: for methods that run every
candidate each step (DARTS) under uniform weights; for methods that train one sampled path per step
(GDAS, ENAS, SPOS: ``runs_one_path``) the largest of :data:`PATH_SAMPLES` sampled paths. Over the
limit, the one-line error says which ``strategy.batch_size`` and, where the space has partial-channel
edges (PC-DARTS), which ``strategy.partial_channels`` would fit.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.estimation.memory import MemoryEstimate, estimate_training_memory, format_bytes
from archsearch.oneshot.base import OneShotMethod
from archsearch.spaces.base import SearchSpace
from archsearch.spaces.supernet import Supernet

PATH_SAMPLES = 8  # sampled paths whose largest estimate stands for a one-path method's step
PARTIAL_CHANNELS = (2, 4, 8)  # PC-DARTS's K values a suggestion tries, smallest first


def build_supernet(method: OneShotMethod, space: SearchSpace, task: Task, **options: Any) -> Supernet:
    """The supernet on the CPU, built without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(method.seed)
        return space.supernet(task, **{**method.supernet_options(), **options})


def supernet_memory(method: OneShotMethod, supernet: Supernet, sample_shape: Sequence[int],
                    batch: int) -> MemoryEstimate:
    """Peak memory of one search step of ``method`` on ``supernet`` at ``batch`` (module docstring)."""
    if method.runs_one_path:
        rng = np.random.default_rng(method.seed)  # its own: the method's generators stay untouched
        weights = [supernet.path_weights(method.space.sample(rng)) for _ in range(PATH_SAMPLES)]
    else:
        weights = [[torch.full((len(cp.candidates),), 1.0 / len(cp.candidates)) for cp in supernet.choice_points]]
    estimates = [estimate_training_memory(supernet, sample_shape, batch, "sgd", forward=lambda net, x, w=w: net(x, w),
                                          extra_param_copies=method.memory_param_copies(), eval_batch=batch)
                 for w in weights]
    return max(estimates, key=lambda e: e.total)


def check_supernet_memory(method: OneShotMethod, space: SearchSpace, task: Task, n_train: int, limit: int,
                          limit_text: str) -> MemoryEstimate:
    """The supernet's estimate; a ConfigError (one line: the estimate, the limit, what would fit)
    when it is over ``limit`` (``limit_text`` says where the limit comes from)."""
    batch = min(int(method.opts.batch_size), n_train)
    shape = task.input_shape
    estimate = supernet_memory(method, build_supernet(method, space, task), shape, batch)
    if estimate.total <= limit:
        return estimate
    fits = [text for text in (_batch_that_fits(method, space, task, estimate, batch, limit),
                              _partial_that_fits(method, space, task, batch, limit)) if text]
    advice = " or ".join(fits) if fits else ("no batch size fits: lower fidelity.resolution or fidelity.width, "
                                             "or raise evaluator.max_memory")
    raise ConfigError(f"strategy {method.name!r}: its supernet needs about {format_bytes(estimate.total)} to train at "
                      f"batch {batch} (estimated), over {limit_text}; {advice}")


def _batch_that_fits(method: OneShotMethod, space: SearchSpace, task: Task, estimate: MemoryEstimate, batch: int,
                     limit: int) -> Optional[str]:
    """``strategy.batch_size=B`` with the largest B that fits (the estimate is linear in the batch)."""
    if batch <= 2:
        return None
    small = supernet_memory(method, build_supernet(method, space, task), task.input_shape, 2).total
    slope = max((estimate.total - small) / (batch - 2), 1.0)
    fit = int((limit - small) // slope) + 2
    if fit < 2:
        return None
    fit = min(fit, batch - 1)
    size = small + slope * (fit - 2)
    return f"strategy.batch_size={fit} would fit (about {format_bytes(size)})"


def _partial_that_fits(method: OneShotMethod, space: SearchSpace, task: Task, batch: int,
                       limit: int) -> Optional[str]:
    """``strategy.partial_channels=K`` with the smallest K that fits at ``batch`` (PC-DARTS spaces only)."""
    if not (method.uses_partial_channels and space.supernet_partial_channels):
        return None
    current = method.supernet_options().get("partial_channels") or 1
    for k in PARTIAL_CHANNELS:
        if k <= current:
            continue
        try:
            space.check_partial_channels(k)
        except ConfigError:
            continue
        size = supernet_memory(method, build_supernet(method, space, task, partial_channels=k),
                               task.input_shape, batch).total
        if size <= limit:
            return f"strategy.partial_channels={k} would fit at batch {batch} (about {format_bytes(size)})"
    return None
