"""The evaluator protocol: (space, architecture, fidelity, seed) -> EvalResult.

Evaluators are plain picklable objects: the experiment ships them to worker processes
or Ray tasks, where they load their data once per process. They never write the journal.
:func:`run_trial` is the one entry point executors call; it turns every exception into a
failed result with a reason, so a broken trial never stops the search.

:class:`Evaluator` states all the experiment calls on every evaluator. What only some
evaluators do is a small named capability the experiment checks with ``isinstance``:
:class:`TrainsOnSplits` (one-shot methods train a supernet on its data),
:class:`SupportsInheritance` (trials hand weights to their children) and
:class:`SupportsEarlyStop` (trials are judged against completed trials' curves).
"""

from __future__ import annotations

import gc
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import torch
import torch.nn as nn

from archsearch.core import EvalResult, Fidelity, Task, Trial, TrialState
from archsearch.data.base import Splits
from archsearch.estimation.resources import ResourceMeter
from archsearch.options import Configurable
from archsearch.registry import Registry
from archsearch.spaces.base import Architecture, SearchSpace


class TrialError(Exception):
    """A trial failed for a reason worth one line (NaN loss, timeout); ``curve`` is what it learned so far."""

    def __init__(self, message: str, curve: Optional[list[dict[str, float]]] = None) -> None:
        super().__init__(message)
        self.curve = curve or []


class TrialTimeout(TrialError):
    pass


class OverMemoryLimit(Exception):
    """A network estimated over ``max_memory`` before its first step: a trial fails with reason
    ``memory``, untrained; final training stops the job with this one line."""


@dataclass
class FinalResult:
    """The final model and its test metrics. ``preprocess`` records what turns a raw input into the
    model's input (the data source's scaling and normalisation, the resolution it was trained at;
    None when unknown), ``class_names`` the label names and ``data`` the split sizes: the checkpoint
    keeps them so the saved model takes inputs as the user's data came."""

    result: EvalResult
    model: nn.Module
    preprocess: Optional[dict[str, Any]] = None
    class_names: Optional[tuple[str, ...]] = None
    data: dict[str, Any] = field(default_factory=dict)


class Evaluator(Configurable, ABC):
    """Measures architectures. The constructor takes the experiment's dataset spec (or in-memory
    :class:`Splits`; None: digits) and its seed positionally, the user's options as keywords."""

    name: ClassVar[str] = ""
    objective: str = "valid_acc"  # the metric strategies maximise
    trains_models: ClassVar[bool] = True  # False: no final training (tables, proxies)

    def __init__(self, data: Union[dict[str, Any], Splits, None] = None, data_seed: int = 0,
                 **options: Any) -> None:
        self.configure(options)
        self.data: Union[dict[str, Any], Splits] = data if data is not None else {"name": "digits"}
        self.data_seed = data_seed

    @classmethod
    def for_testing(cls, data: dict[str, Any], space: SearchSpace, archs: Sequence[Architecture],
                    workdir: str) -> "Evaluator":
        """A small instance the conformance suite (archsearch.testing) measures ``archs`` of ``space``
        with: its ``small_options`` on ``data``. An evaluator that needs files (a table) writes them
        under ``workdir``."""
        return cls(dict(data), 0, **cls.small_options)

    @abstractmethod
    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        """The task networks are built for, at ``fidelity`` when given (its resolution resizes the
        input); loads and validates the data in the driver."""

    def prepare(self) -> None:
        """Per-process set-up (load data) run before a trial's clock starts. Default: nothing."""

    def time_limit(self) -> Optional[float]:
        """Seconds after which a trial is failed with reason ``timeout`` (None: no limit). Executors
        enforce it hard: one that can kill a trial's worker does so past this plus a grace, so a hung
        batch cannot hang the search. Default: no limit."""
        return None

    def data_info(self) -> Optional[dict[str, Any]]:
        """What the search trains on, for the journal and the report: ``name``, ``input_shape``,
        ``num_classes`` and the split sizes ``train``/``valid``/``test``. None: no data (tables)."""
        return None

    @abstractmethod
    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int) -> EvalResult:
        """Measure one architecture (an evaluator with a capability below takes its keywords too)."""

    def final(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
              train_on_valid: bool = True, on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
              until: Optional[float] = None) -> FinalResult:
        """Train the chosen architecture for good (on train, plus valid if asked) and measure test metrics.
        ``on_epoch`` gets each epoch's learning-curve point as it ends (progress for a long training);
        training ends early, keeping the model, once ``time.monotonic()`` passes ``until`` (a time budget).
        Called only when ``trains_models``."""
        raise NotImplementedError(f"evaluator {self.name!r} has no final training")


class TrainsOnSplits(ABC):
    """An evaluator that trains on a dataset: one-shot methods train their supernet on its splits."""

    @abstractmethod
    def splits(self) -> Splits:
        """The dataset's train/valid/test splits (cached per process)."""


class TrainsWithSettings(ABC):
    """An evaluator whose trials train with settings an architecture may override: the time planner
    reads a trial's batch size and epochs from it before the trial runs."""

    @abstractmethod
    def settings(self, arch: Architecture, fidelity: Fidelity) -> dict[str, Any]:
        """The training settings for ``arch`` at ``fidelity`` (``batch_size``, ``epochs``, ``lr``, ...)."""


class LimitsMemory(ABC):
    """An evaluator that estimates each trial's training memory and refuses, untrained, a trial over
    its ``max_memory`` (reason ``memory``): the experiment checks the limit before anything is written,
    and one-shot searches check their supernet against it."""

    @abstractmethod
    def max_memory(self) -> Optional[Union[int, float, str]]:
        """The given limit (bytes or a size such as ``4GB``); None: a share of the memory free."""

    @abstractmethod
    def check_memory_budget(self, space: SearchSpace, fidelity: Fidelity, samples: int = 16, seed: int = 0) -> None:
        """ConfigError when a given limit holds none of the space's sampled architectures."""


class SupportsInheritance(ABC):
    """An evaluator whose trials may start from their parent's trained weights. When
    :meth:`inherits`, a complete trial's result carries its ``weights`` (a state dict) and the
    experiment passes a child's parent's weights to ``evaluate(..., init=STATE_DICT)``; otherwise
    it never asks for weights."""

    @abstractmethod
    def inherits(self) -> bool:
        """Whether weight inheritance is on (an option of the evaluator)."""


class SupportsEarlyStop(ABC):
    """An evaluator that stops poor trials early by comparing with completed trials' learning curves.
    When :meth:`stops_early`, the experiment passes ``evaluate(..., reference=...)`` what
    :meth:`stop_reference` built from the journal at submit time."""

    @abstractmethod
    def stops_early(self) -> bool:
        """Whether early stopping is on (an option of the evaluator)."""

    @abstractmethod
    def stop_reference(self, trials: Sequence[Trial], fidelity: Fidelity) -> Optional[list[list[float]]]:
        """The reference a trial at ``fidelity`` is judged against (None: no early stopping)."""


EVALUATORS: Registry[Evaluator] = Registry("evaluator", package="archsearch.estimation", group="archsearch.evaluators")
register_evaluator = EVALUATORS.register


def list_evaluators() -> list[str]:
    return EVALUATORS.names()


OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory")  # CUDA, torch's CPU allocator, ENOMEM


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure, whatever raised it (Python, numpy, torch on CPU or CUDA)."""
    text = str(exc).lower()
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or any(t in text for t in OOM_TEXTS))


def describe_failure(exc: BaseException) -> str:
    """One line naming why a trial failed; memory errors are recognised whatever raised them."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if is_out_of_memory(exc):
        return f"oom: out of memory: {text or type(exc).__name__}"
    if isinstance(exc, TrialError):
        return text
    return f"{type(exc).__name__}: {text}"


def release_memory() -> None:
    """Free what a failed trial left behind (its network, activations, optimizer state): unreachable
    cycles through the exception's frames are collected, and CUDA's cached blocks handed back."""
    gc.collect()
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.empty_cache()


def _drop_frames(exc: BaseException) -> None:
    """Let go of the frames (and so the tensors) an exception and the ones it chains still hold."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
            current.__traceback__ = None
        current = current.__cause__ or current.__context__


def run_trial(evaluator: Evaluator, space: SearchSpace, arch: Architecture, fidelity: Fidelity,
              seed: int, threads: int | None = None,
              init: Optional[dict[str, torch.Tensor]] = None,
              reference: Optional[Sequence[Sequence[float]]] = None) -> EvalResult:
    """Evaluate one trial, never raising: what executors run in their workers.

    The evaluator's per-process set-up (data loading) runs before the clock starts, so a
    worker's first trial does not report a higher cost than the others. ``init`` (a parent's
    weights) and ``reference`` (completed trials' curves, for early stopping) are passed on only
    when given and only to an evaluator with the capability that takes them. A failed trial's
    memory is released before returning (an out-of-memory trial must not starve the next one in
    the same worker). Every result, failed or not, carries what the trial used
    (:class:`~archsearch.estimation.resources.ResourceMeter`: ``cpu_s``, ``peak_rss_mb``).
    """
    start = time.perf_counter()
    meter = ResourceMeter()
    failed = False
    try:
        if threads:
            torch.set_num_threads(threads)
        evaluator.prepare()
        start = time.perf_counter()
        meter = ResourceMeter()
        extra: dict[str, object] = {}
        if init is not None and isinstance(evaluator, SupportsInheritance):
            extra["init"] = init
        if reference is not None and isinstance(evaluator, SupportsEarlyStop):
            extra["reference"] = reference
        result = evaluator.evaluate(space, arch, fidelity, seed, **extra)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed trial
        failed = True
        error = describe_failure(exc)
        if not isinstance(exc, TrialError):  # unexpected: keep where it happened
            error = f"{error}\n{traceback.format_exc(limit=8)}"
        curve = exc.curve if isinstance(exc, TrialError) else None
        _drop_frames(exc)
        del exc
        result = EvalResult.failed(error, time.perf_counter() - start, curve)
    if failed:
        release_memory()
    if result.status is TrialState.COMPLETE and not result.cost:
        result.cost = time.perf_counter() - start
    result.metrics = {**meter.metrics(), **result.metrics}  # a new dict: the evaluator's may be shared
    return result


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass at batch 1 (torch's own flop counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
