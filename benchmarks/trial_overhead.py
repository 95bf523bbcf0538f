"""Trial overhead: one architecture trained through archsearch vs a hand-written PyTorch loop.

Measures the wall time of one trial run the way executors run it
(``TrialCall(evaluator, space, arch, fidelity, seed)(threads)``, with a
``TrainingEvaluator`` on the built-in digits data) against a plain hand-written loop that
does the same work: same splits (``load_splits({"name": "digits"}, seed=0)``), the same
network (``space.build(arch, task)`` under the same init seed), AdamW (lr 3e-3, weight
decay 5e-4) with a cosine schedule, batch size 64, ``torch.randperm`` batching and a
validation-accuracy pass after every epoch. Both build their model inside the timed
region and run with the same number of torch threads.

Baseline (A) and candidate (B) are timed in the same process, interleaved (the order
alternates A B, B A, ... so drift hits both alike), after one untimed warm-up of each;
medians are reported.

Target: median(archsearch) / median(hand-written) <= 1.05.

    .venv/bin/python benchmarks/trial_overhead.py [--epochs 10] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from archsearch.core import Fidelity
from archsearch.data import load_splits
from archsearch.estimation.training import TrainingEvaluator
from archsearch.execution import TrialCall
from archsearch.spaces.base import create_space

DEFAULT_ARCH = "conv:3:64:relu|conv:3:64:relu|sep_conv:3:64:relu|conv:3:96:relu|identity:3:32:relu|conv:3:96:relu"
TARGET = 1.05


def hand_written(space, arch, splits, epochs: int, seed: int, batch_size: int = 64, lr: float = 3e-3,
                 weight_decay: float = 5e-4) -> tuple[float, float]:
    """A plain PyTorch training loop; returns (wall seconds, last validation accuracy)."""
    start = time.perf_counter()
    torch.manual_seed(seed)  # same weight init as the library (it seeds with the trial seed)
    model = space.build(arch, splits.task)
    x, y = splits.train.x, splits.train.y
    xv, yv = splits.valid.x, splits.valid.y
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    acc = 0.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2:  # batch norm cannot train on one sample (the library skips it too)
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            correct = 0
            for i in range(0, len(yv), 1024):
                logits = model(xv[i : i + 1024])
                F.cross_entropy(logits, yv[i : i + 1024], reduction="sum")  # the library reports valid_loss too
                correct += (logits.argmax(1) == yv[i : i + 1024]).sum().item()
            acc = correct / len(yv)
    return time.perf_counter() - start, acc


def through_archsearch(space, arch, epochs: int, seed: int, threads: int) -> tuple[float, float, float]:
    """One trial the way executors run it; returns (wall seconds, valid_acc, train_time metric)."""
    evaluator = TrainingEvaluator(data={"name": "digits"}, data_seed=0, device="cpu")
    start = time.perf_counter()
    result = TrialCall(evaluator, space, arch, Fidelity(epochs=epochs), seed)(threads)
    wall = time.perf_counter() - start
    if result.error:
        raise RuntimeError(f"archsearch trial failed: {result.error}")
    return wall, result.metrics["valid_acc"], result.metrics["train_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per run (default 10)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each (default 7)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads for both (default: all cores)")
    parser.add_argument("--arch", default=DEFAULT_ARCH, help="chain architecture string")
    parser.add_argument("--seed", type=int, default=1234, help="init/batching seed shared by both")
    args = parser.parse_args()

    load0 = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    space = create_space("chain")
    arch = space.parse(args.arch)
    splits = load_splits({"name": "digits"}, seed=0)  # the evaluator gets the same cached splits
    model = space.build(arch, splits.task)
    print(f"arch: {arch}")
    print(f"params: {sum(p.numel() for p in model.parameters()):,}  train/valid: {len(splits.train)}/"
          f"{len(splits.valid)}  epochs: {args.epochs}  batch: 64  torch threads: {args.threads}  "
          f"repeats: {args.repeats}")

    # warm-up (untimed): first-call costs of the allocator, kernels and the data cache
    hand_written(space, arch, splits, 1, args.seed)
    through_archsearch(space, arch, 1, args.seed, args.threads)

    base, cand, train_times, accs = [], [], [], set()
    for r in range(args.repeats):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for which in order:
            if which == "A":
                t, acc = hand_written(space, arch, splits, args.epochs, args.seed)
                base.append(t)
                accs.add(("hand-written", round(acc, 6)))
            else:
                t, acc, tt = through_archsearch(space, arch, args.epochs, args.seed, args.threads)
                cand.append(t)
                train_times.append(tt)
                accs.add(("archsearch", round(acc, 6)))
            torch.set_num_threads(args.threads)

    mb, mc, mt = statistics.median(base), statistics.median(cand), statistics.median(train_times)
    ratio = mc / mb
    pair = statistics.median(c / b for b, c in zip(base, cand))
    print()
    print(f"{'run':<30} {'median s':>9} {'min s':>8} {'max s':>8}   all (s)")
    print(f"{'A hand-written loop':<30} {mb:9.3f} {min(base):8.3f} {max(base):8.3f}   "
          + " ".join(f"{t:.2f}" for t in base))
    print(f"{'B archsearch TrialCall':<30} {mc:9.3f} {min(cand):8.3f} {max(cand):8.3f}   "
          + " ".join(f"{t:.2f}" for t in cand))
    print(f"{'  its train_time metric':<30} {mt:9.3f} {min(train_times):8.3f} {max(train_times):8.3f}   "
          + " ".join(f"{t:.2f}" for t in train_times))
    print()
    print("valid accuracy: " + ", ".join(f"{name} {acc:.4f}" for name, acc in sorted(accs)))
    print(f"ratio of medians B/A: {ratio:.3f}   median of paired ratios: {pair:.3f}   "
          f"ratio of minima: {min(cand) / min(base):.3f}   train_time/A: {mt / mb:.3f}")
    print(f"loadavg (1 min) at start/end: {load0:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"RESULT trial_overhead: {ratio:.3f}x (target <= {TARGET}) {verdict}")


if __name__ == "__main__":
    main()
