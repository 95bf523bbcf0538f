"""The training evaluator: train a built network at a fidelity, report validation accuracy
(or, for language-model tasks, validation perplexity: see estimation/language.py).

Its parts live in modules of their own: the loop (estimation/loop.py), training settings and
per-architecture overrides (settings.py), weight inheritance (inheritance.py), early stopping
(early_stop.py) and the multi-objective metrics (objectives.py); each declares its group of
the evaluator's options, which :class:`TrainingEvaluator.Options` joins.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from archsearch.core import EvalResult, Fidelity, Task, Trial, TrialState
from archsearch.data.base import Split, Splits, load_splits
from archsearch.devices import resolve_device
from archsearch.errors import ConfigError
from archsearch.estimation.base import (
    Evaluator, FinalResult, LimitsMemory, OverMemoryLimit, SupportsEarlyStop, SupportsInheritance, TrialError,
    TrainsOnSplits, TrainsWithSettings, count_flops, count_params, describe_failure, register_evaluator,
)
from archsearch.estimation.augment import make_augment
from archsearch.estimation.early_stop import EARLY_STOPS, EarlyStopOptions, MedianStop, median_reference
from archsearch.estimation.inheritance import InheritanceOptions, inherit_weights
from archsearch.estimation.language import LM_GRAD_CLIP, LM_OBJECTIVE, is_language_model, lm_metrics
from archsearch.estimation.loop import AUX_WEIGHT, evaluate_model, prepare_split, subset_size, train_model
from archsearch.estimation.memory import (
    EVAL_BATCH, MemoryEstimate, estimate_training_memory, format_bytes, memory_limit, parse_memory,
)
from archsearch.estimation.objectives import (
    REWARDS, ObjectiveOptions, measure_latency, mnas_reward, penalised, violation,
)
from archsearch.estimation.settings import (
    TRAINING_KEYS, TrainingOptions, check_training_option, training_overrides, training_settings,
)
from archsearch.spaces.base import Architecture, SearchSpace
from archsearch.spaces.capabilities import OPTIMIZERS

# re-exported: the names this module held before it was split
__all__ = ["AUX_WEIGHT", "EARLY_STOPS", "OPTIMIZERS", "REWARDS", "TRAINING_KEYS", "MedianStop", "TrainingEvaluator",
           "check_training_option", "evaluate_model", "inherit_weights", "median_reference", "prepare_split",
           "train_model", "training_overrides"]


def _sample_bytes(split: Split, shape: Optional[tuple[int, ...]] = None) -> int:
    """Bytes of one example of ``split`` (its input at ``shape`` when given: the fidelity's resolution)."""
    numel = math.prod(shape) if shape is not None else split.x[0].numel()
    return numel * split.x.element_size() + split.y[0].numel() * split.y.element_size()


@register_evaluator("train")
class TrainingEvaluator(Evaluator, TrainsOnSplits, TrainsWithSettings, LimitsMemory, SupportsInheritance,
                        SupportsEarlyStop):
    """Trains each architecture from scratch on the experiment's dataset.

    ``data`` is a dataset spec (``{"name": "digits", ...}``) loaded in each worker, or an
    in-memory :class:`Splits` (shipped to workers with every trial; fine for small data).

    The objective follows the task: ``valid_acc`` for classification, ``neg_valid_ppl`` (the
    negated validation perplexity) for language models. ``grad_clip`` is the gradient-norm limit
    (0: none; null: 0.25 for language models, none for classification).

    Multiple objectives (estimation/objectives.py), all off by default:

    * ``latency: true`` measures, after training, the median forward time in seconds at batch 1
      and at ``latency_batch`` (metrics ``latency_b1`` and ``latency_b{latency_batch}``);
    * ``reward: mnas`` makes the objective MnasNet's ``valid_acc * (latency_b1 / target_latency) ** w``
      (metric ``mnas_reward``; w = ``alpha`` at or under the target, ``beta`` over it; -0.07/-0.07
      is the paper's soft constraint, 0/-1 its hard one);
    * ``constraints: {max_params, max_flops, max_latency}`` adds ``feasible`` (1/0) and
      ``violation`` (summed relative excess) metrics; the objective becomes ``constrained_reward``:
      the base reward when feasible, ``-1 - violation`` otherwise. A violating trial completes
      rather than fails, so that NSGA-II can rank it by constrained domination.

    Weight inheritance (off by default): with ``inherit: true`` every search trial returns its
    trained weights (the experiment keeps them in ``OUT/weights``), and a child given its
    parent's weights (``init``) starts from every tensor whose name and shape match
    (:func:`inherit_weights`; metric ``inherited``, the fraction of parameters copied) and trains
    ``inherit_epochs`` epochs (null: the fidelity's) when it inherited anything.

    The fidelity's ``width`` and ``depth`` build each search trial's network in
    ``space.scaled(width, depth)``; final training builds at full scale.

    Early stopping (off by default): with ``early_stop: median`` a trial stops after epoch t
    (t > ``early_stop_warmup``) when its best validation value so far is strictly below the median
    of completed trials' best values up to t at the same fidelity (:class:`MedianStop`; the
    experiment ships those curves with each trial, see :meth:`stop_reference`), once at least
    ``early_stop_min_trials`` such trials exist. A stopped trial completes with its last values
    (a low-fidelity estimate strategies still learn from) and metric ``stopped_early``, the epoch
    it stopped after (0: it ran fully).

    Augmentation (estimation/augment.py): image training batches (4-D inputs) are augmented as
    ``augment`` says (default ``crop``) in final training, and in search trials only with
    ``augment_search: true`` (short trials rank architectures; augmentation pays off in long runs).
    Validation and test data never are.

    Memory guard (estimation/memory.py): after building the network and before its first step, its
    peak training memory is estimated (metric ``memory_estimate_mb``); over ``max_memory`` (default:
    80% of the memory free when the trial starts, RAM or the GPU's) the trial fails with reason
    ``memory`` without training.
    """

    @dataclass(frozen=True)
    class Options(EarlyStopOptions, InheritanceOptions, ObjectiveOptions, TrainingOptions):
        """Training settings, then objectives, inheritance and early stopping (each group declared
        in its module)."""

        def __post_init__(self) -> None:
            TrainingOptions.__post_init__(self)
            ObjectiveOptions.__post_init__(self)

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"batch_size": 32, "device": "cpu"}

    def __init__(self, data: Union[dict[str, Any], Splits, None] = None, data_seed: int = 0,
                 **options: Any) -> None:
        super().__init__(data, data_seed, **options)
        self.constraints = self.opts.limits()

    def time_limit(self) -> Optional[float]:
        """``timeout``: executors that can kill a trial's worker enforce it hard (Evaluator.time_limit)."""
        return self.opts.timeout

    def measures_latency(self) -> bool:
        """Latency is measured when asked, or when the reward or a constraint needs it."""
        return self.opts.measures_latency()

    def inherits(self) -> bool:
        return self.opts.inherit

    def stops_early(self) -> bool:
        return self.opts.early_stop != "none"

    def prepare(self) -> None:
        self.splits()  # cached per process

    def splits(self) -> Splits:
        return self.data if isinstance(self.data, Splits) else load_splits(self.data, self.data_seed)

    def data_info(self) -> dict[str, Any]:
        splits = self.splits()
        return {"name": splits.name, "input_shape": list(splits.task.input_shape), "num_classes": splits.num_classes,
                "kind": splits.kind, "train": len(splits.train), "valid": len(splits.valid), "test": len(splits.test),
                "in_memory": isinstance(self.data, Splits)}

    @property
    def objective(self) -> str:  # type: ignore[override]
        """The metric strategies maximise: it depends on the task (loads the data if needed) and on
        the ``reward`` and ``constraints`` options."""
        if self.constraints:
            return "constrained_reward"
        return self._base_objective()

    def _base_objective(self) -> str:
        if self.opts.reward == "mnas":
            return "mnas_reward"
        return LM_OBJECTIVE if is_language_model(self.splits().task) else "valid_acc"

    def curve_key(self) -> str:
        """The learning-curve value early stopping compares (higher is better)."""
        return LM_OBJECTIVE if is_language_model(self.splits().task) else "valid_acc"

    def stop_reference(self, trials: Sequence[Trial], fidelity: Fidelity) -> Optional[list[list[float]]]:
        """The reference curves a trial at ``fidelity`` is judged against (None: no early stopping)."""
        if not self.stops_early():
            return None
        return median_reference(trials, fidelity, self.curve_key())

    def clip_norm(self) -> Optional[float]:
        """The gradient-norm limit for this task (None: no clipping)."""
        if self.opts.grad_clip is None:
            return LM_GRAD_CLIP if is_language_model(self.splits().task) else None
        return float(self.opts.grad_clip) or None

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        task = self.splits().task
        if is_language_model(task) and (self.constraints or self.opts.reward == "mnas"):
            # the penalty -1 - violation sits below rewards >= 0 only; a negated perplexity is < -1
            raise ConfigError("evaluator.constraints and evaluator.reward=mnas need a classification task "
                              "(rewards >= 0); this dataset is a language-model task")
        if fidelity is not None and fidelity.resolution is not None and len(task.input_shape) == 3:
            task = Task((task.input_shape[0], fidelity.resolution, fidelity.resolution), task.num_classes)
        return task

    def settings(self, arch: Architecture, fidelity: Fidelity) -> dict[str, Any]:
        """The training settings for ``arch``: this evaluator's options and the fidelity's epochs,
        overridden by the hyper-parameters the architecture carries (:func:`training_overrides`).
        An ``epochs`` hyper-parameter replaces the fidelity's epochs, in search and final training."""
        return training_settings(self.opts, arch, fidelity)

    def _train(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
               train: Split, valid: Optional[Split], init: Optional[dict[str, torch.Tensor]] = None,
               stop: Optional[MedianStop] = None,
               on_epoch: Optional[Callable[[dict[str, float]], None]] = None, augment: str = "none",
               until: Optional[float] = None, check: Optional[Callable[[nn.Module, dict[str, Any]], None]] = None,
               ) -> tuple[nn.Module, list[dict[str, float]], float, Optional[float]]:
        """Build (seeded, at the fidelity's width and depth), start from ``init``'s matching tensors
        if given, train (``stop`` may end it early; ``augment``: an ``augment`` option value, applied to
        image batches only). The fourth value is the inherited fraction (None when no ``init`` was given).
        ``check(model, settings)`` runs between building and the first step (the memory guard)."""
        hp = self.settings(arch, fidelity)
        device = resolve_device(self.opts.device)
        generator = torch.Generator().manual_seed(seed)
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):  # weight init seeded per trial, global state untouched
            torch.manual_seed(seed)
            model = space.scaled(fidelity.width, fidelity.depth).build(arch, self.task(fidelity))
        inherited = inherit_weights(model, init) if init is not None else None
        if check is not None:
            check(model, hp)
        epochs = hp["epochs"]
        if inherited and self.opts.inherit_epochs is not None:  # a child that inherited needs fewer epochs
            epochs = self.opts.inherit_epochs
        deadline = time.monotonic() + self.opts.timeout if self.opts.timeout else None
        start = time.perf_counter()
        curve = train_model(
            model, train, epochs, batch_size=hp["batch_size"], lr=float(hp["lr"]),
            weight_decay=float(hp["weight_decay"]), optimizer=hp["optimizer"],
            label_smoothing=float(hp["label_smoothing"]), generator=generator, device=device, valid=valid,
            deadline=deadline, grad_clip=self.clip_norm(), stop=stop, on_epoch=on_epoch,
            augment=make_augment(augment, seed), until=until,
        )
        return model, curve, time.perf_counter() - start, inherited

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
                 init: Optional[dict[str, torch.Tensor]] = None,
                 reference: Optional[Sequence[Sequence[float]]] = None) -> EvalResult:
        """Train and measure one trial. ``reference`` (from :meth:`stop_reference`) enables the
        median rule when ``early_stop`` asks for it."""
        start = time.perf_counter()
        splits = self.splits()
        generator = torch.Generator().manual_seed(seed + 7919)
        train = prepare_split(splits.train, fidelity, generator, subset=True)
        valid = prepare_split(splits.valid, fidelity, generator, subset=False)
        stop = None
        if self.opts.early_stop == "median" and reference is not None:
            stop = MedianStop(reference, self.curve_key(), self.opts.early_stop_warmup, self.opts.early_stop_min_trials)
        augment = self.opts.augment if self.opts.augment_search else "none"
        memory: dict[str, float] = {}  # memory_estimate_mb, kept by complete and failed trials alike
        try:
            model, curve, train_time, inherited = self._train(space, arch, fidelity, seed, train, valid, init, stop,
                                                              augment=augment,
                                                              check=self._memory_guard(train, valid, memory))
        except OverMemoryLimit as exc:
            return EvalResult.failed(str(exc), time.perf_counter() - start, reason="memory", metrics=memory)
        except TrialError as exc:  # NaN, timeout: failed, with the estimate kept
            return EvalResult.failed(describe_failure(exc), time.perf_counter() - start, exc.curve, metrics=memory)
        last = curve[-1]
        metrics = {**memory,
            "valid_acc": last["valid_acc"], "valid_loss": last["valid_loss"], "train_loss": last["train_loss"],
            "params": float(count_params(model)), "flops": float(count_flops(model, tuple(train.x.shape[1:]))),
            "train_time": train_time, "epochs": float(len(curve)),
        }
        if is_language_model(splits.task):
            metrics.update(lm_metrics("valid", last["valid_loss"]))
        if self.stops_early():
            metrics["stopped_early"] = float(stop.stopped_at if stop is not None else 0)
        if self.measures_latency() or self.constraints:
            metrics.update(self._objective_metrics(model, splits.task, tuple(train.x.shape[1:]), metrics))
        weights = None
        if self.opts.inherit or init is not None:
            metrics["inherited"] = inherited or 0.0  # 0: trained from scratch (no parent, or its weights lost)
        if self.opts.inherit:
            weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return EvalResult(TrialState.COMPLETE, metrics, time.perf_counter() - start, None, curve, weights)

    def _memory_guard(self, train: Split, valid: Optional[Split],
                      memory: dict[str, float]) -> Callable[[nn.Module, dict[str, Any]], None]:
        """The check :meth:`_train` runs between building and the first step: it records the estimate
        in ``memory`` and raises :class:`OverMemoryLimit` over the limit."""
        def check(model: nn.Module, hp: dict[str, Any]) -> None:
            estimate = self.estimate_memory(model, hp, train, valid)
            memory["memory_estimate_mb"] = estimate.mb
            limit = memory_limit(self.opts.max_memory, resolve_device(self.opts.device))
            if estimate.total > limit:
                raise OverMemoryLimit(f"estimated peak training memory {format_bytes(estimate.total)} (batch "
                                      f"{hp['batch_size']}, input {list(train.x.shape[1:])}) is over the limit "
                                      f"{format_bytes(limit)} (evaluator.max_memory); not trained")
        return check

    def estimate_memory(self, model: nn.Module, hp: Mapping[str, Any], train: Split,
                        valid: Optional[Split] = None) -> MemoryEstimate:
        """Peak memory of training ``model`` on ``train`` with settings ``hp`` (estimation/memory.py),
        validation passes on ``valid`` included; the split itself counts where it moves to a GPU."""
        return self._estimate(model, hp, tuple(train.x.shape[1:]), train.x.dtype, len(train),
                              len(valid) if valid is not None else 0, _sample_bytes(train))

    def _estimate(self, model: nn.Module, hp: Mapping[str, Any], shape: tuple[int, ...], dtype: torch.dtype,
                  n_train: int, n_valid: int, sample_bytes: int) -> MemoryEstimate:
        device = resolve_device(self.opts.device)
        on_gpu = device.type != "cpu"  # the trial moves its training split there
        return estimate_training_memory(model, shape, min(int(hp["batch_size"]), n_train), hp["optimizer"],
                                        dtype=None if dtype.is_floating_point else dtype,
                                        data_bytes=n_train * sample_bytes if on_gpu else 0,
                                        eval_batch=min(EVAL_BATCH, n_valid), device=device)

    def max_memory(self) -> Optional[Union[int, float, str]]:
        return self.opts.max_memory

    def check_memory_budget(self, space: SearchSpace, fidelity: Fidelity, samples: int = 16, seed: int = 0) -> None:
        """A given ``max_memory`` must hold at least one of ``samples`` seeded sample architectures at
        ``fidelity`` (checked at config time, before anything is written): ConfigError naming the
        smallest estimate otherwise. Stops at the first that fits, so a sensible limit costs one build."""
        if self.opts.max_memory is None:  # the default follows the machine when each trial starts
            return
        limit = parse_memory(self.opts.max_memory)
        splits, task = self.splits(), self.task(fidelity)
        n_train = subset_size(len(splits.train), fidelity)
        sample = _sample_bytes(splits.train, task.input_shape)
        rng = np.random.default_rng(seed)
        built = space.scaled(fidelity.width, fidelity.depth)
        smallest: Optional[tuple[int, int]] = None
        for _ in range(samples):
            arch = space.sample(rng)
            hp = self.settings(arch, fidelity)
            model = built.build(arch, task)
            total = self._estimate(model, hp, task.input_shape, splits.train.x.dtype, n_train, len(splits.valid),
                                   sample).total
            if total <= limit:
                return
            smallest = min(smallest or (total, hp["batch_size"]), (total, hp["batch_size"]))
        assert smallest is not None
        raise ConfigError(f"evaluator.max_memory={self.opts.max_memory} is below the smallest architecture of space "
                          f"{space.name!r} (about {format_bytes(smallest[0])} at batch {smallest[1]}, the least of "
                          f"{samples} samples): give at least {format_bytes(smallest[0], up=True)}")

    def _latency(self, model: nn.Module, task: Task, input_shape: tuple[int, ...]) -> dict[str, float]:
        """``latency_b1`` and ``latency_b{latency_batch}``: median forward seconds on the evaluator's device."""
        dtype = torch.long if is_language_model(task) else None  # token inputs
        batch = self.opts.latency_batch
        lat = measure_latency(model, input_shape, (1, batch), repeats=self.opts.latency_repeats,
                              warmup=2, device=resolve_device(self.opts.device), dtype=dtype)
        return {"latency_b1": lat[1], f"latency_b{batch}": lat[batch]}

    def _objective_metrics(self, model: nn.Module, task: Task, input_shape: tuple[int, ...],
                           metrics: dict[str, float]) -> dict[str, float]:
        """Latency, the MnasNet reward and the constraint metrics, as the options ask."""
        out: dict[str, float] = {}
        if self.measures_latency():
            out.update(self._latency(model, task, input_shape))
        if self.opts.reward == "mnas":
            assert self.opts.target_latency is not None
            out["mnas_reward"] = mnas_reward(metrics["valid_acc"], out["latency_b1"], self.opts.target_latency,
                                             self.opts.alpha, self.opts.beta)
        if self.constraints:
            excess = violation({**metrics, **out}, self.constraints)
            out["feasible"], out["violation"] = float(excess == 0.0), excess
            base = {**metrics, **out}[self._base_objective()]
            out["constrained_reward"] = base if excess == 0.0 else penalised(excess)
        return out

    def final(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
              train_on_valid: bool = True, on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
              until: Optional[float] = None) -> FinalResult:
        """Train on train (+ valid) at ``fidelity`` and report test accuracy (``on_epoch``: progress;
        ``until``: a ``time.monotonic()`` instant that ends training early, keeping the model)."""
        start = time.perf_counter()
        splits = self.splits()
        generator = torch.Generator().manual_seed(seed + 7919)
        train = splits.train
        if train_on_valid:
            train = Split(torch.cat([splits.train.x, splits.valid.x]), torch.cat([splits.train.y, splits.valid.y]))
        train = prepare_split(train, fidelity, generator, subset=True)
        test = prepare_split(splits.test, fidelity, generator, subset=False)
        memory: dict[str, float] = {}
        model, curve, train_time, _ = self._train(space, arch, fidelity, seed, train, None, on_epoch=on_epoch,
                                                  augment=self.opts.augment, until=until,
                                                  check=self._memory_guard(train, test, memory))
        device = resolve_device(self.opts.device)
        test_acc, test_loss = evaluate_model(model, test, device)
        metrics = {"test_acc": test_acc, "test_loss": test_loss, "train_loss": curve[-1]["train_loss"],
                   "params": float(count_params(model)), "train_time": train_time,
                   "epochs": float(len(curve)), "train_samples": float(len(train)), **memory}
        if "time_stop" in curve[-1]:  # the job's time ran out: fewer epochs than planned, said so
            metrics["time_stop"] = curve[-1]["time_stop"]
        if self.measures_latency():  # the deployed model's latency (the final space may be larger)
            metrics.update(self._latency(model, splits.task, tuple(test.x.shape[1:])))
        if not train_on_valid:
            valid = prepare_split(splits.valid, fidelity, generator, False)
            metrics["valid_acc"], metrics["valid_loss"] = evaluate_model(model, valid, device)
        if is_language_model(splits.task):
            metrics.update(lm_metrics("test", test_loss))
            if not train_on_valid:
                metrics.update(lm_metrics("valid", metrics["valid_loss"]))
        result = EvalResult(TrialState.COMPLETE, metrics, time.perf_counter() - start, None, curve)
        preprocess = dict(splits.preprocess) if splits.preprocess is not None else None
        if preprocess is not None and preprocess["kind"] == "image":
            preprocess["resolution"] = fidelity.resolution  # the network saw inputs resized to this
        data = {"name": splits.name, "train": len(splits.train), "valid": len(splits.valid), "test": len(splits.test),
                "train_on_valid": train_on_valid}
        return FinalResult(result, model.cpu(), preprocess, splits.class_names, data)
