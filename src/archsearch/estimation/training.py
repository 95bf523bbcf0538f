"""The training evaluator: train a built network at a fidelity, report validation accuracy
(or, for language-model tasks, validation perplexity: see estimation/language.py).

The loop is deliberately plain (tensors held in memory, index batches, one optimiser,
cosine schedule) so that its overhead over a hand-written PyTorch loop stays near zero
(benchmarks/trial_overhead.py measures it).

An architecture may carry its own training hyper-parameters (the ``hyperparams`` space, for
HPO and joint architecture + hyper-parameter search): :func:`training_overrides` reads them
and :meth:`TrainingEvaluator.settings` applies them over the evaluator's options.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import EvalResult, Fidelity, Task, Trial, TrialState
from archsearch.data.base import Split, Splits, load_splits
from archsearch.devices import check_device, resolve_device
from archsearch.errors import ConfigError
from archsearch.estimation.base import (
    Evaluator, FinalResult, SupportsEarlyStop, SupportsInheritance, TrainsOnSplits, TrialError, TrialTimeout,
    count_flops, count_params, register_evaluator,
)
from archsearch.estimation.language import (
    LM_GRAD_CLIP, LM_OBJECTIVE, flatten_tokens, is_language_model, lm_metrics,
)
from archsearch.estimation.objectives import (
    MNAS_SOFT, check_constraints, measure_latency, mnas_reward, penalised, violation,
)
from archsearch.spaces.base import Architecture, AuxiliaryClassifier, CarriesTrainingOverrides, SearchSpace
from archsearch.spaces.training_settings import check_training_option

REWARDS = ("valid_acc", "mnas")
EARLY_STOPS = ("none", "median")




def training_overrides(arch: Architecture) -> dict[str, Any]:
    """Training settings an architecture carries for itself (validated), else ``{}``.

    An architecture that :class:`CarriesTrainingOverrides` (the ``hyperparams`` space's) returns a
    mapping over ``spaces.training_settings.TRAINING_KEYS``; the evaluator applies it to that architecture's search
    trials and its final training, over its own options.
    """
    if not isinstance(arch, CarriesTrainingOverrides):
        return {}
    overrides = dict(arch.training_overrides())
    for key, value in overrides.items():
        check_training_option(key, value, "architecture hyper-parameter")
    return overrides


def prepare_split(split: Split, fidelity: Fidelity, generator: torch.Generator, subset: bool) -> Split:
    """``split`` at ``fidelity``: a seeded ``data_fraction`` subset (when ``subset``), resized to its
    ``resolution``. Shared by trials, final training and the one-shot runner."""
    x, y = split.x, split.y
    if subset and fidelity.data_fraction < 1.0:
        k = max(2, int(round(len(y) * fidelity.data_fraction)))
        idx = torch.randperm(len(y), generator=generator)[:k]
        x, y = x[idx], y[idx]
    if fidelity.resolution is not None and x.dim() == 4 and tuple(x.shape[2:]) != (fidelity.resolution,) * 2:
        x = F.interpolate(x, size=(fidelity.resolution,) * 2, mode="bilinear", align_corners=False)
    return Split(x, y)


@torch.no_grad()
def evaluate_model(model: nn.Module, split: Split, device: torch.device, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``split``; per token for a language model."""
    model.eval()
    correct, loss_sum, count = 0, 0.0, 0
    for i in range(0, len(split), batch_size):
        xb, yb = split.x[i : i + batch_size].to(device), split.y[i : i + batch_size].to(device)
        logits, yb = flatten_tokens(model(xb), yb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
        count += len(yb)
    return correct / count, loss_sum / count


AUX_WEIGHT = 0.4  # weight of an auxiliary head's loss, as in NASNet/DARTS


def train_model(
    model: nn.Module,
    train: Split,
    epochs: int,
    *,
    batch_size: int,
    lr: float,
    weight_decay: float,
    optimizer: str,
    label_smoothing: float,
    generator: torch.Generator,
    device: torch.device,
    valid: Optional[Split] = None,
    deadline: Optional[float] = None,
    grad_clip: Optional[float] = None,
    stop: Optional[Callable[[list[dict[str, float]]], bool]] = None,
    on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
) -> list[dict[str, float]]:
    """Train in place; returns the learning curve (one dict per epoch), each point also given to
    ``on_epoch`` as it is made.

    Language models ((B, T, V) logits against (B, T) targets) train on the mean per-token loss;
    ``grad_clip`` clips the gradient norm before each step. ``stop(curve)``, called after every
    epoch but the last, ends training early when it returns True (the curve then is shorter).
    """
    model.to(device)
    x_all, y_all = train.x.to(device), train.y.to(device)
    params = model.parameters()
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    n = len(train)
    curve: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=generator).to(device)
        loss_sum, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2:  # batch norm cannot train on a single sample
                continue
            logits, targets = flatten_tokens(model(x_all[idx]), y_all[idx])
            loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
            if isinstance(model, AuxiliaryClassifier) and model.aux_logits is not None:  # set in train mode
                loss = loss + AUX_WEIGHT * F.cross_entropy(model.aux_logits, y_all[idx],
                                                           label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            loss_val = loss.item()
            if not math.isfinite(loss_val):
                raise TrialError(f"loss is not finite (NaN/inf) at epoch {epoch}", curve)
            loss_sum += loss_val * len(idx)
            seen += len(idx)
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(f"timeout: trial exceeded its time limit at epoch {epoch}", curve)
        sched.step()
        point = {"epoch": float(epoch), "train_loss": loss_sum / max(seen, 1)}
        if valid is not None:
            point["valid_acc"], point["valid_loss"] = evaluate_model(model, valid, device)
            if valid.y.dim() == 2:  # token targets: a language model
                point.update(lm_metrics("valid", point["valid_loss"]))
        curve.append(point)
        if on_epoch is not None:
            on_epoch({**point, "epochs": float(epochs)})
        if stop is not None and epoch < epochs and stop(curve):
            break
    return curve


def inherit_weights(model: nn.Module, init: dict[str, torch.Tensor]) -> float:
    """Copy into ``model`` every tensor of ``init`` whose name and shape match its state dict
    (the rest keeps its fresh initialisation); return the fraction of the model's parameters
    (by element count) that were inherited. Buffers (batch-norm statistics) are copied too but
    do not count."""
    state = model.state_dict()
    copied: set[str] = set()
    with torch.no_grad():
        for name, tensor in state.items():
            source = init.get(name)
            if isinstance(source, torch.Tensor) and source.shape == tensor.shape and source.dtype == tensor.dtype:
                tensor.copy_(source)
                copied.add(name)
    total = sum(p.numel() for p in model.parameters())
    inherited = sum(p.numel() for name, p in model.named_parameters() if name in copied)
    return inherited / total if total else 0.0


class MedianStop:
    """The median stopping rule (Golovin et al. 2017, Google Vizier; Optuna's ``MedianPruner``).

    After epoch t > ``warmup`` a trial stops if its best ``key`` value so far is strictly worse
    (lower) than the median of ``reference[t - 1]``: the best values up to epoch t of completed
    trials at the same fidelity (:func:`median_reference`). With fewer than ``min_trials`` of
    those it never stops. ``stopped_at`` is the epoch it stopped after (0: it ran fully).
    """

    def __init__(self, reference: Sequence[Sequence[float]], key: str, warmup: int = 1, min_trials: int = 3) -> None:
        self.reference, self.key, self.warmup, self.min_trials = reference, key, warmup, min_trials
        self.stopped_at = 0

    def __call__(self, curve: list[dict[str, float]]) -> bool:
        t = len(curve)
        if t <= self.warmup or t > len(self.reference) or len(self.reference[t - 1]) < self.min_trials:
            return False
        values = [v for v in (point.get(self.key, math.nan) for point in curve) if math.isfinite(v)]
        if values and max(values) >= statistics.median(self.reference[t - 1]):
            return False
        self.stopped_at = t
        return True


def median_reference(trials: Sequence[Trial], fidelity: Fidelity, key: str) -> list[list[float]]:
    """What :class:`MedianStop` compares with: for each epoch t (index t - 1), the best ``key`` value
    up to epoch t of every complete trial at ``fidelity`` that trained in full from scratch (trials
    stopped early or started from inherited weights are left out, as Optuna leaves out pruned ones)."""
    reference: list[list[float]] = [[] for _ in range(fidelity.epochs)]
    for trial in trials:
        if (trial.state is not TrialState.COMPLETE or trial.fidelity != fidelity
                or trial.metrics.get("stopped_early") or trial.metrics.get("inherited")):
            continue
        best = -math.inf
        for t, point in enumerate(trial.curve[: fidelity.epochs]):
            value = point.get(key, math.nan)
            if math.isfinite(value):
                best = max(best, value)
            if best > -math.inf:
                reference[t].append(best)
    return reference


@register_evaluator("train")
class TrainingEvaluator(Evaluator, TrainsOnSplits, SupportsEarlyStop, SupportsInheritance):
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
    """

    def __init__(
        self,
        data: Union[dict[str, Any], Splits, None] = None,
        data_seed: int = 0,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        optimizer: str = "adamw",
        label_smoothing: float = 0.0,
        timeout: Optional[float] = None,
        device: str = "auto",
        grad_clip: Optional[float] = None,
        latency: bool = False,
        latency_batch: int = 64,
        latency_repeats: int = 10,
        reward: str = "valid_acc",
        target_latency: Optional[float] = None,
        alpha: float = MNAS_SOFT[0],
        beta: float = MNAS_SOFT[1],
        constraints: Optional[dict[str, Any]] = None,
        inherit: bool = False,
        inherit_epochs: Optional[int] = None,
        early_stop: str = "none",
        early_stop_warmup: int = 1,
        early_stop_min_trials: int = 3,
    ) -> None:
        if early_stop not in EARLY_STOPS:
            raise ConfigError(f"evaluator.early_stop must be one of: {', '.join(EARLY_STOPS)} (got {early_stop!r})")
        for key, value, low in (("early_stop_warmup", early_stop_warmup, 0),
                                ("early_stop_min_trials", early_stop_min_trials, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"evaluator.{key} must be an integer >= {low}, got {value!r}")
        self.early_stop, self.early_stop_warmup = early_stop, early_stop_warmup
        self.early_stop_min_trials = early_stop_min_trials
        if not isinstance(inherit, bool):
            raise ConfigError(f"evaluator.inherit must be true or false, got {inherit!r}")
        if inherit_epochs is not None and (not isinstance(inherit_epochs, int) or isinstance(inherit_epochs, bool)
                                           or inherit_epochs < 1):
            raise ConfigError(f"evaluator.inherit_epochs must be an integer >= 1 or null, got {inherit_epochs!r}")
        self.inherit, self.inherit_epochs = inherit, inherit_epochs
        for key, value in (("batch_size", batch_size), ("lr", lr), ("weight_decay", weight_decay),
                           ("optimizer", optimizer), ("label_smoothing", label_smoothing)):
            check_training_option(key, value)
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigError(f"evaluator.timeout must be a positive number of seconds or null, got {timeout!r}")
        check_device(device, "evaluator.device")
        if grad_clip is not None and (not isinstance(grad_clip, (int, float)) or isinstance(grad_clip, bool)
                                      or not 0 <= grad_clip < math.inf):
            raise ConfigError(f"evaluator.grad_clip must be a number >= 0 (0: no clipping) or null, got {grad_clip!r}")
        self.grad_clip = grad_clip
        self._check_objectives(latency, latency_batch, latency_repeats, reward, target_latency, alpha, beta)
        self.latency, self.latency_batch, self.latency_repeats = latency, latency_batch, latency_repeats
        self.reward, self.target_latency, self.alpha, self.beta = reward, target_latency, float(alpha), float(beta)
        self.constraints = check_constraints(constraints)
        self.data = data if data is not None else {"name": "digits"}
        self.data_seed = data_seed
        self.batch_size, self.lr, self.weight_decay = batch_size, float(lr), float(weight_decay)
        self.optimizer, self.label_smoothing = optimizer, float(label_smoothing)
        self.timeout, self.device = timeout, device

    @staticmethod
    def _check_objectives(latency: Any, latency_batch: Any, latency_repeats: Any, reward: Any,
                          target_latency: Any, alpha: Any, beta: Any) -> None:
        if not isinstance(latency, bool):
            raise ConfigError(f"evaluator.latency must be true or false, got {latency!r}")
        for key, value in (("latency_batch", latency_batch), ("latency_repeats", latency_repeats)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"evaluator.{key} must be an integer >= 1, got {value!r}")
        if reward not in REWARDS:
            raise ConfigError(f"evaluator.reward must be one of: {', '.join(REWARDS)} (got {reward!r})")
        if reward == "mnas" and (not isinstance(target_latency, (int, float)) or isinstance(target_latency, bool)
                                 or not 0 < target_latency < math.inf):
            raise ConfigError(f"evaluator.target_latency must be a positive number of seconds with reward mnas, "
                              f"got {target_latency!r}")
        for key, value in (("alpha", alpha), ("beta", beta)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"evaluator.{key} must be a number (MnasNet: -0.07 soft, 0 and -1 hard), got {value!r}")

    def measures_latency(self) -> bool:
        """Latency is measured when asked, or when the reward or a constraint needs it."""
        return self.latency or self.reward == "mnas" or "max_latency" in self.constraints

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
        if self.reward == "mnas":
            return "mnas_reward"
        return LM_OBJECTIVE if is_language_model(self.splits().task) else "valid_acc"

    def curve_key(self) -> str:
        """The learning-curve value early stopping compares (higher is better)."""
        return LM_OBJECTIVE if is_language_model(self.splits().task) else "valid_acc"

    @property
    def inherits(self) -> bool:
        return bool(self.inherit)

    @property
    def stops_early(self) -> bool:
        return self.early_stop != "none"

    def stop_reference(self, trials: Sequence[Trial], fidelity: Fidelity) -> Optional[list[list[float]]]:
        """The reference curves a trial at ``fidelity`` is judged against (None: no early stopping)."""
        if self.early_stop == "none":
            return None
        return median_reference(trials, fidelity, self.curve_key())

    def clip_norm(self) -> Optional[float]:
        """The gradient-norm limit for this task (None: no clipping)."""
        if self.grad_clip is None:
            return LM_GRAD_CLIP if is_language_model(self.splits().task) else None
        return float(self.grad_clip) or None

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        task = self.splits().task
        if is_language_model(task) and (self.constraints or self.reward == "mnas"):
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
        settings: dict[str, Any] = {
            "lr": self.lr, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
            "optimizer": self.optimizer, "label_smoothing": self.label_smoothing, "epochs": fidelity.epochs,
        }
        settings.update(training_overrides(arch))
        return settings

    def _train(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
               train: Split, valid: Optional[Split], init: Optional[dict[str, torch.Tensor]] = None,
               stop: Optional[MedianStop] = None,
               on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
               ) -> tuple[nn.Module, list[dict[str, float]], float, Optional[float]]:
        """Build (seeded, at the fidelity's width and depth), start from ``init``'s matching tensors
        if given, train (``stop`` may end it early). The fourth value is the inherited fraction
        (None when no ``init`` was given)."""
        hp = self.settings(arch, fidelity)
        device = resolve_device(self.device)
        generator = torch.Generator().manual_seed(seed)
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):  # weight init seeded per trial, global state untouched
            torch.manual_seed(seed)
            model = space.scaled(fidelity.width, fidelity.depth).build(arch, self.task(fidelity))
        inherited = inherit_weights(model, init) if init is not None else None
        epochs = hp["epochs"]
        if inherited and self.inherit_epochs is not None:  # a child that inherited needs fewer epochs
            epochs = self.inherit_epochs
        deadline = time.monotonic() + self.timeout if self.timeout else None
        start = time.perf_counter()
        curve = train_model(
            model, train, epochs, batch_size=hp["batch_size"], lr=float(hp["lr"]),
            weight_decay=float(hp["weight_decay"]), optimizer=hp["optimizer"],
            label_smoothing=float(hp["label_smoothing"]), generator=generator, device=device, valid=valid,
            deadline=deadline, grad_clip=self.clip_norm(), stop=stop, on_epoch=on_epoch,
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
        if self.early_stop == "median" and reference is not None:
            stop = MedianStop(reference, self.curve_key(), self.early_stop_warmup, self.early_stop_min_trials)
        model, curve, train_time, inherited = self._train(space, arch, fidelity, seed, train, valid, init, stop)
        last = curve[-1]
        metrics = {
            "valid_acc": last["valid_acc"], "valid_loss": last["valid_loss"], "train_loss": last["train_loss"],
            "params": float(count_params(model)), "flops": float(count_flops(model, tuple(train.x.shape[1:]))),
            "train_time": train_time, "epochs": float(len(curve)),
        }
        if is_language_model(splits.task):
            metrics.update(lm_metrics("valid", last["valid_loss"]))
        if self.early_stop != "none":
            metrics["stopped_early"] = float(stop.stopped_at if stop is not None else 0)
        if self.measures_latency() or self.constraints:
            metrics.update(self._objective_metrics(model, splits.task, tuple(train.x.shape[1:]), metrics))
        weights = None
        if self.inherit or init is not None:
            metrics["inherited"] = inherited or 0.0  # 0: trained from scratch (no parent, or its weights lost)
        if self.inherit:
            weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return EvalResult(TrialState.COMPLETE, metrics, time.perf_counter() - start, None, curve, weights)

    def _latency(self, model: nn.Module, task: Task, input_shape: tuple[int, ...]) -> dict[str, float]:
        """``latency_b1`` and ``latency_b{latency_batch}``: median forward seconds on the evaluator's device."""
        dtype = torch.long if is_language_model(task) else None  # token inputs
        lat = measure_latency(model, input_shape, (1, self.latency_batch), repeats=self.latency_repeats,
                              warmup=2, device=resolve_device(self.device), dtype=dtype)
        return {"latency_b1": lat[1], f"latency_b{self.latency_batch}": lat[self.latency_batch]}

    def _objective_metrics(self, model: nn.Module, task: Task, input_shape: tuple[int, ...],
                           metrics: dict[str, float]) -> dict[str, float]:
        """Latency, the MnasNet reward and the constraint metrics, as the options ask."""
        out: dict[str, float] = {}
        if self.measures_latency():
            out.update(self._latency(model, task, input_shape))
        if self.reward == "mnas":
            assert self.target_latency is not None
            out["mnas_reward"] = mnas_reward(metrics["valid_acc"], out["latency_b1"], float(self.target_latency),
                                             self.alpha, self.beta)
        if self.constraints:
            excess = violation({**metrics, **out}, self.constraints)
            out["feasible"], out["violation"] = float(excess == 0.0), excess
            base = {**metrics, **out}[self._base_objective()]
            out["constrained_reward"] = base if excess == 0.0 else penalised(excess)
        return out

    def final(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
              train_on_valid: bool = True, on_epoch: Optional[Callable[[dict[str, float]], None]] = None
              ) -> FinalResult:
        """Train on train (+ valid) at ``fidelity`` and report test accuracy (``on_epoch``: progress)."""
        start = time.perf_counter()
        splits = self.splits()
        generator = torch.Generator().manual_seed(seed + 7919)
        train = splits.train
        if train_on_valid:
            train = Split(torch.cat([splits.train.x, splits.valid.x]), torch.cat([splits.train.y, splits.valid.y]))
        train = prepare_split(train, fidelity, generator, subset=True)
        test = prepare_split(splits.test, fidelity, generator, subset=False)
        model, curve, train_time, _ = self._train(space, arch, fidelity, seed, train, None, on_epoch=on_epoch)
        device = resolve_device(self.device)
        test_acc, test_loss = evaluate_model(model, test, device)
        metrics = {"test_acc": test_acc, "test_loss": test_loss, "train_loss": curve[-1]["train_loss"],
                   "params": float(count_params(model)), "train_time": train_time,
                   "epochs": float(len(curve)), "train_samples": float(len(train))}
        if self.measures_latency():  # the deployed model's latency (the final space may be larger)
            metrics.update(self._latency(model, splits.task, tuple(test.x.shape[1:])))
        if not train_on_valid:
            metrics["valid_acc"], metrics["valid_loss"] = evaluate_model(model, prepare_split(splits.valid, fidelity, generator, False), device)
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
