"""The proxy evaluator: rank architectures by a zero-cost proxy instead of training them.

``--evaluator proxy --set evaluator.proxy=synflow`` makes any strategy search by a proxy of
:mod:`archsearch.estimation.proxies` (a trial takes milliseconds to a second, so thousands of
candidates are ranked in minutes). The trial's metrics are the proxy's score under its own
name (the objective strategies maximise), plus ``params`` and ``flops``. The rank vote
``vote`` (:mod:`archsearch.estimation.ensemble`) is refused here: a trial scores one network, and
a rank needs a population (``prefilter`` ranks its candidate pool by it).

The task comes from the experiment's dataset. Data-dependent proxies (``snip``, ``grad_norm``,
``jacob_cov``) score every trial on the same minibatch of ``batch_size`` training examples,
drawn once from ``data_seed``, so scores of different trials are comparable; each trial's
network is initialised from the trial's seed. The fidelity (epochs, data fraction) has no
meaning for a proxy and is ignored, except ``resolution``, which resizes the input, and
``width``/``depth``, which score the network built in ``space.scaled(width, depth)``.

Final training: a proxy score is not an accuracy, and what a search must hand back is a
trained network, so (unlike the table evaluator) the best architecture is still trained at the
end, by a :class:`~archsearch.estimation.training.TrainingEvaluator` on the same data with its
default settings (``final.enabled: false`` skips it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Optional, Union

import torch
import torch.nn.functional as F

from archsearch.core import EvalResult, Fidelity, Task, TrialState
from archsearch.data.base import Splits, load_splits
from archsearch.estimation.base import (
    Evaluator, FinalResult, TrainsOnSplits, count_flops, count_params, register_evaluator,
)
from archsearch.estimation.proxies import Batch, build_model, get_proxy, list_proxies, score_model
from archsearch.options import Options, option
from archsearch.spaces.base import Architecture, SearchSpace


def _known_proxy(name: str) -> Optional[str]:
    return None if name in list_proxies() else f"must be one of: {', '.join(list_proxies())}"


@register_evaluator("proxy")
class ProxyEvaluator(Evaluator, TrainsOnSplits):
    """Scores an untrained network with one zero-cost proxy (higher = better)."""

    @dataclass(frozen=True)
    class Options(Options):
        proxy: str = option("synflow", "the zero-cost proxy that scores each network", check=_known_proxy)
        batch_size: int = option(64, "examples of the one minibatch data-dependent proxies score on", low=2)

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"proxy": "params"}

    def __init__(self, data: Union[dict[str, Any], Splits, None] = None, data_seed: int = 0,
                 **options: Any) -> None:
        super().__init__(data, data_seed, **options)
        self.objective = self.opts.proxy

    def splits(self) -> Splits:
        return self.data if isinstance(self.data, Splits) else load_splits(self.data, self.data_seed)

    def prepare(self) -> None:
        self.splits()

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        task = self.splits().task
        if fidelity is not None and fidelity.resolution is not None and len(task.input_shape) == 3:
            task = Task((task.input_shape[0], fidelity.resolution, fidelity.resolution), task.num_classes, task.kind)
        return task

    def batch(self, task: Task) -> Optional[Batch]:
        """The minibatch every trial is scored on (None for data-independent proxies)."""
        if not get_proxy(self.opts.proxy).needs_data:
            return None
        train = self.splits().train
        g = torch.Generator().manual_seed(self.data_seed)
        idx = torch.randperm(len(train), generator=g)[: self.opts.batch_size]
        x, y = train.x[idx], train.y[idx]
        if x.dim() == 4 and tuple(x.shape[1:]) != tuple(task.input_shape):
            x = F.interpolate(x, size=tuple(task.input_shape[1:]), mode="bilinear", align_corners=False)
        return x, y

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int) -> EvalResult:
        task = self.task(fidelity)
        model = build_model(space.scaled(fidelity.width, fidelity.depth), arch, task, seed)
        metrics = {"params": float(count_params(model)), "flops": float(count_flops(model, tuple(task.input_shape)))}
        metrics.update(score_model(model, task, [self.opts.proxy], self.batch(task), seed, self.opts.batch_size,
                                   consume=True))
        return EvalResult(TrialState.COMPLETE, metrics, 0.0, None, [])

    def final(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
              train_on_valid: bool = True, on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
              until: Optional[float] = None) -> FinalResult:
        from archsearch.estimation.training import TrainingEvaluator

        trainer = TrainingEvaluator(self.data, self.data_seed)
        return trainer.final(space, arch, fidelity, seed, train_on_valid, on_epoch, until)
