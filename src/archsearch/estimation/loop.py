"""The training loop: plain (tensors held in memory, index batches, one optimiser, cosine
schedule) so that its overhead over a hand-written PyTorch loop stays near zero
(benchmarks/trial_overhead.py measures it). Shared by trials, final training and the one-shot runner.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.core import Fidelity
from archsearch.data.base import Split
from archsearch.estimation.base import TrialError, TrialTimeout
from archsearch.estimation.language import flatten_tokens, lm_metrics
from archsearch.spaces.capabilities import AuxiliaryClassifier


def subset_size(n: int, fidelity: Fidelity) -> int:
    """How many of ``n`` examples a trial trains on at ``fidelity`` (its ``data_fraction``, at least 2)."""
    return n if fidelity.data_fraction >= 1.0 else max(2, int(round(n * fidelity.data_fraction)))


def prepare_split(split: Split, fidelity: Fidelity, generator: torch.Generator, subset: bool) -> Split:
    """``split`` at ``fidelity``: a seeded ``data_fraction`` subset (when ``subset``), resized to its
    ``resolution``. Shared by trials, final training and the one-shot runner."""
    x, y = split.x, split.y
    if subset and fidelity.data_fraction < 1.0:
        idx = torch.randperm(len(y), generator=generator)[:subset_size(len(y), fidelity)]
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
    augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    until: Optional[float] = None,
) -> list[dict[str, float]]:
    """Train in place; returns the learning curve (one dict per epoch), each point also given to
    ``on_epoch`` as it is made.

    Language models ((B, T, V) logits against (B, T) targets) train on the mean per-token loss;
    ``grad_clip`` clips the gradient norm before each step. ``stop(curve)``, called after every
    epoch but the last, ends training early when it returns True (the curve then is shorter).
    ``augment`` (estimation/augment.py) transforms each training batch; evaluation never is.
    ``until`` (a ``time.monotonic()`` instant) is a time budget: after the first epoch the epochs are
    cut to what fits (the cosine schedule then runs over those), and training ends gracefully after
    the batch that passes it (the last point then has ``time_stop``): the final training of a
    time-budgeted job keeps what it trained.
    """
    model.to(device)
    x_all, y_all = train.x.to(device), train.y.to(device)
    params = model.parameters()
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                                                     weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    n = len(train)
    curve: list[dict[str, float]] = []
    total = epochs  # with ``until``: shrunk after the first epoch to what the time left holds
    for epoch in range(1, epochs + 1):
        if epoch > total:
            break
        epoch_start = time.monotonic()
        model.train()
        perm = torch.randperm(n, generator=generator).to(device)
        loss_sum, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2:  # batch norm cannot train on a single sample
                continue
            xb = x_all[idx] if augment is None else augment(x_all[idx])
            logits, targets = flatten_tokens(model(xb), y_all[idx])
            loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
            aux = model.auxiliary_logits() if isinstance(model, AuxiliaryClassifier) else None
            if aux is not None:
                loss = loss + AUX_WEIGHT * F.cross_entropy(aux, y_all[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            loss_val = loss.item()
            if not math.isfinite(loss_val):
                raise TrialError(f"nan: loss is not finite (NaN/inf) at epoch {epoch}", curve)
            loss_sum += loss_val * len(idx)
            seen += len(idx)
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(f"timeout: trial exceeded its time limit at epoch {epoch}", curve)
            if until is not None and time.monotonic() > until:
                break
        if until is not None and epoch == 1 and total > 1:
            total = _epochs_that_fit(total, time.monotonic() - epoch_start, until)
        if total == epochs:
            sched.step()
        else:  # the cosine schedule over the epochs that fit, so the learning rate still anneals to 0
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * 0.5 * (1.0 + math.cos(math.pi * epoch / total))
        point = {"epoch": float(epoch), "train_loss": loss_sum / max(seen, 1)}
        if until is not None and time.monotonic() > until:
            point["time_stop"] = float(epoch)  # the time ran out in this epoch: training ends with it
        if valid is not None:
            point["valid_acc"], point["valid_loss"] = evaluate_model(model, valid, device)
            if valid.y.dim() == 2:  # token targets: a language model
                point.update(lm_metrics("valid", point["valid_loss"]))
        curve.append(point)
        if on_epoch is not None:
            on_epoch({**point, "epochs": float(total)})
        if stop is not None and epoch < total and stop(curve):
            break
        if "time_stop" in point:
            break
    return curve


def _epochs_that_fit(epochs: int, first_epoch: float, until: float) -> int:
    """Of ``epochs``, how many fit before ``until`` given the first one took ``first_epoch`` seconds
    (a 3% margin; at least the one done)."""
    left = until - time.monotonic()
    return max(1, min(epochs, 1 + int(0.97 * left // max(first_epoch, 1e-9))))

