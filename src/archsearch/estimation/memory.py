"""Peak training memory, estimated before a network trains, and the limit trials are held to.

A trial that would not fit fails with reason ``memory`` before its first step, instead of taking
the machine down (evaluator ``max_memory``). The estimate sums what a training step keeps alive at
its peak (the start of the backward pass):

* parameters, their gradients and the optimiser's state (SGD with momentum: one copy of the
  parameters; Adam/AdamW: two; plain SGD: none);
* activations: the tensors autograd saves for backward. One forward (and the loss) at batch 2 and
  one at batch 4 under :func:`torch.autograd.graph.saved_tensors_hooks` count the bytes of the
  unique storages saved, parameters excluded; the difference is the per-sample cost, the rest a
  fixed cost (BatchNorm statistics, scalars), so any batch size follows without running it;
* the input batch (the trial indexes a copy of it) and, where the training data moves to a GPU,
  the data itself;
* a transient term for the backward pass (:data:`TRANSIENT_FACTOR` times the largest saved
  activation: the gradient being computed, the one it comes from, and convolution scratch);
* on the CPU, the allocator's retention (:data:`RETENTION`): glibc raises its mmap threshold once a
  large block is freed, so from the second step on activations come from its heap, which keeps
  freed blocks resident and fragments; the resident peak settles 1.0-2.3x above the live one;
* a no-grad validation pass between epochs (batch 1024: its input and two layers' activations)
  replaces the step's activation terms when it is larger.

Calibration (benchmarks/memory_estimate.py: 3-4 seeded samples of every space, 3 x 32 x 32 images
or 35-token windows, three steps in a fresh process after a warm-up step, peak resident set above
the one before the model was built). Saved-activation bytes plus the batch and a small transient
came to 0.48-1.29x of the resident peak. The gap is mostly the allocator's: an NB201 cell measured
at 0.48x came to 0.98x with freed memory handed back at once (``MALLOC_MMAP_THRESHOLD_=65536``),
though that setting is no exact measure of live memory either (another cell then measured below
its saved bytes) and it doubles a step's CPU time, so trials keep glibc's default and the estimate
models it. A grid search over the factors on those measurements gave RETENTION 1.4,
TRANSIENT_FACTOR 3 and no constant overhead (a worker's first trial also faults in ~100 MB of
shared library code, not counted: file-backed, shared and reclaimable); rerun with them, 19 of 24
samples are within ±25%, range 0.69-1.48 (misses: three NB201/rnn_cell under at 0.69-0.74, two over). CUDA
was not measured here (no GPU): its caching allocator reuses blocks, so no retention term is
added there, and the training split counts (the trial copies it to the GPU).

The two small forwards cost a few milliseconds to a tenth of a second per network; they run on a
fork of the global random state with BatchNorm momentum 0, so the trial trains exactly as it would
without them.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.estimation.language import flatten_tokens

OPTIMIZER_COPIES = {"sgd": 1, "adamw": 2, "adam": 2}  # optimiser state per parameter byte (plain SGD: 0)
TRANSIENT_FACTOR = 3.0  # backward's activation gradients and scratch, in units of the largest saved activation
RETENTION = 1.4  # resident bytes per byte of saved activations: freed activations the allocator keeps (CPU)
EVAL_LIVE = 2.0  # a no-grad pass holds one layer's input and output: two of the largest activations
OVERHEAD = 0  # bytes the step allocates besides the above, in a worker that has trained before
EVAL_BATCH = 1024  # the batch of evaluate_model's no-grad validation passes (estimation/loop.py)
SAFE_SHARE = 0.8  # the default max_memory: this share of what is available when the trial starts

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_memory(value: Any) -> int:
    """Bytes from an int (bytes) or a size string: ``4GB``, ``512MB``, ``1.5GiB`` (decimal units
    kB/MB/GB/TB, binary KiB/MiB/GiB/TiB). Raises ValueError (one line) for anything else, zero or
    negative sizes."""
    if isinstance(value, bool):
        raise ValueError(f"a memory size must be bytes or a size such as 4GB, got {value!r}")
    if isinstance(value, (int, float)):
        size = float(value)
    elif isinstance(value, str):
        match = _SIZE.match(value)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(f"a memory size must be bytes or a size such as 4GB, 512MB or 1.5GiB, got {value!r}")
        size = float(match.group(1)) * _UNITS[unit]
    else:
        raise ValueError(f"a memory size must be bytes or a size such as 4GB, got {value!r}")
    if not size >= 1 or size != size or size == float("inf"):
        raise ValueError(f"a memory size must be positive (at least 1 byte), got {value!r}")
    return int(size)


def memory_problem(value: Any) -> Optional[str]:
    """What is wrong with a ``max_memory`` value (an option ``check``), or None."""
    try:
        parse_memory(value)
    except ValueError:
        return "must be a positive number of bytes or a size such as 4GB, 512MB or 1.5GiB"
    return None


def format_bytes(n: float, up: bool = False) -> str:
    """``3.2 MB``, ``1.5 GB``: decimal units, as ``max_memory`` takes them; ``up`` rounds up (a size
    to suggest: at least ``n``)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3), ("B", 1)):
        if n >= scale or unit == "B":
            digits = 1 if n / scale < 100 and unit != "B" else 0
            value = n / scale
            if up:
                value = math.ceil(value * 10**digits) / 10**digits
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def available_memory(device: torch.device) -> int:
    """Bytes free now: the GPU's free memory on CUDA, else MemAvailable (Linux), else what psutil
    reports, else total physical memory / 2."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - neither /proc nor psutil
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)


def memory_limit(max_memory: Any, device: torch.device) -> int:
    """The limit in bytes: ``max_memory`` when given, else :data:`SAFE_SHARE` of what is available."""
    if max_memory is not None:
        return parse_memory(max_memory)
    return int(SAFE_SHARE * available_memory(device))


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of a training step's peak memory, in bytes."""

    params: int
    grads: int
    optimizer: int
    activations: int
    inputs: int
    transient: int
    overhead: int
    retained: int = 0  # freed activation memory the allocator keeps resident (CPU, glibc; 0 on CUDA)
    evaluation: int = 0  # a no-grad validation pass (large batches, nothing saved): its live activations

    @property
    def total(self) -> int:
        step = self.activations + self.retained + self.inputs + self.transient
        return self.params + self.grads + self.optimizer + self.overhead + max(step, self.evaluation)

    @property
    def mb(self) -> float:
        """The total in MB (10^6 bytes, the unit ``max_memory`` takes): the trial metric ``memory_estimate_mb``."""
        return self.total / 1e6


@dataclass(frozen=True)
class SavedActivations:
    """What one small forward saved for backward: bytes per sample and fixed, the largest per sample."""

    per_sample: float
    fixed: float
    largest_per_sample: float


@contextlib.contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Run a forward without changing what training would do: BatchNorm running statistics kept
    (momentum 0, counters restored), the global random state forked (dropout draws from it)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    was_training = model.training
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        model.train()
        for m in norms:
            m.momentum = 0.0
        try:
            yield
        finally:
            model.train(was_training)
            for m, (momentum, tracked) in zip(norms, saved):
                m.momentum = momentum
                if tracked is not None and m.num_batches_tracked is not None:
                    m.num_batches_tracked.copy_(tracked)


def _storage_key(t: torch.Tensor) -> Optional[tuple[int, int]]:
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # tensors without a plain storage (mkldnn, sparse)
        return None


def _saved_bytes(model: nn.Module, x: torch.Tensor, forward: Callable[[nn.Module, torch.Tensor], Any],
                 skip: set[int]) -> tuple[int, int]:
    """(total, largest) bytes of the unique non-parameter storages saved for backward by a forward
    and the loss on ``x``."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key is not None and key[0] not in skip:
            seen[key[0]] = max(seen.get(key[0], 0), key[1])
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(model, x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        targets = torch.zeros(logits.shape[:-1], dtype=torch.long, device=logits.device)
        logits, targets = flatten_tokens(logits, targets)
        F.cross_entropy(logits.float(), targets)
    return sum(seen.values()), max(seen.values(), default=0)


def saved_activations(model: nn.Module, sample_shape: Sequence[int], dtype: Optional[torch.dtype] = None,
                      forward: Optional[Callable[[nn.Module, torch.Tensor], Any]] = None) -> SavedActivations:
    """Bytes autograd saves for backward, per sample and fixed (two forwards, at batch 2 and 4)."""
    device = next(model.parameters(), torch.empty(0)).device
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
    skip |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    run = forward or (lambda net, x: net(x))
    totals, largest = [], []
    with _untouched(model), torch.enable_grad():
        for batch in (2, 4):
            x = torch.zeros((batch, *sample_shape), dtype=dtype or torch.float32, device=device)
            total, big = _saved_bytes(model, x, run, skip)
            totals.append(total)
            largest.append(big)
    per_sample = max(0.0, (totals[1] - totals[0]) / 2)
    fixed = max(0.0, totals[0] - 2 * per_sample)
    return SavedActivations(per_sample, fixed, largest[1] / 4)


def estimate_training_memory(model: nn.Module, sample_shape: Sequence[int], batch_size: int, optimizer: str = "adamw",
                             dtype: Optional[torch.dtype] = None, data_bytes: int = 0,
                             forward: Optional[Callable[[nn.Module, torch.Tensor], Any]] = None,
                             extra_param_copies: float = 0.0, eval_batch: int = 0,
                             device: Optional[torch.device] = None) -> MemoryEstimate:
    """Peak memory of training ``model`` at ``batch_size`` on inputs of ``sample_shape`` (module
    docstring). ``optimizer``: a key of :data:`OPTIMIZER_COPIES`; ``dtype``: the inputs' (token ids:
    ``torch.long``); ``data_bytes``: training data that lives on the training device besides the
    batch (a GPU trial copies its split there); ``forward(model, x)``: how to run the model (a
    supernet takes its weights too); ``extra_param_copies``: more parameter-sized buffers the method
    keeps (DARTS's second order); ``eval_batch``: the batch of the no-grad validation passes between
    epochs (their inputs and the two largest activations alive at once); ``device``: where it trains
    (default: where the model is), which decides whether the CPU allocator's retention counts."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    saved = saved_activations(model, sample_shape, dtype, forward)
    element = torch.empty((), dtype=dtype or torch.float32).element_size()
    sample = element * int(torch.Size(sample_shape).numel())
    copies = OPTIMIZER_COPIES.get(optimizer, 2) + extra_param_copies
    activations = int(saved.per_sample * batch_size + saved.fixed)
    where = device if device is not None else next(model.parameters(), torch.empty(0)).device
    cpu = where.type == "cpu"
    transient = int(TRANSIENT_FACTOR * saved.largest_per_sample * batch_size)
    return MemoryEstimate(
        params=params + buffers, grads=trainable, optimizer=int(copies * trainable), activations=activations,
        inputs=sample * batch_size + int(data_bytes), transient=transient, overhead=OVERHEAD,
        retained=int((RETENTION - 1) * activations) if cpu else 0,
        evaluation=int((sample + EVAL_LIVE * saved.largest_per_sample) * eval_batch))
