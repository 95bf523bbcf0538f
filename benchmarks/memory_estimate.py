"""Memory estimate vs measured peak: is the guard's estimate (estimation/memory.py) within ±25%?

For ``--samples`` seeded sample architectures of every registered space (image spaces on synthetic
3 x R x R images, 10 classes; ``rnn_cell`` on synthetic token windows, a language model), each in a
fresh subprocess so one network's allocator state cannot hide another's:

1. the data is made and the resident set read (the baseline: data loaded, no model yet);
2. the network is built as a trial builds it and its peak training memory estimated
   (``TrainingEvaluator.estimate_memory``: parameters, gradients, optimiser state, activations
   saved for backward, the batch, the backward's transient, the fixed overhead);
3. the peak is reset (``echo 5 > /proc/self/clear_refs``) and ``--steps`` training steps run at the
   evaluator's batch size (an architecture's own batch size and optimiser where it carries them:
   ``hyperparams``) with the trial's training loop;
4. measured = the peak resident set (VmHWM) minus the baseline. On CUDA (``--device cuda``):
   ``torch.cuda.max_memory_allocated`` minus what was allocated before the model was built.

Prints one table per space (estimate, measured, ratio estimate/measured) and a RESULT line: the
share of architectures within ±25% and the worst ratio. Target: every one within ±25%.

    .venv/bin/python benchmarks/memory_estimate.py [--samples 3] [--resolution 32] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

TARGET = 0.25
LM_WINDOW, LM_VOCAB = 35, 1000


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _release() -> None:
    """Free what is garbage and hand the allocator's free memory back to the system (glibc keeps it
    otherwise, and a peak measured from there would count only what is new)."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def child(space_name: str, index: int, args: argparse.Namespace) -> dict[str, object]:
    """Estimate and measure one architecture (runs in its own process)."""
    import numpy as np
    import torch

    from archsearch.core import Fidelity
    from archsearch.data.base import Split, Splits
    from archsearch.estimation.language import LM_KIND
    from archsearch.estimation.loop import train_model
    from archsearch.estimation.training import TrainingEvaluator
    from archsearch.spaces.base import create_space

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = create_space(space_name)
    rng = np.random.default_rng(args.seed)
    arch = [space.sample(rng) for _ in range(index + 1)][-1]
    lm = space_name == "rnn_cell"
    evaluator = TrainingEvaluator({"name": "digits"}, 0, device=args.device)
    fidelity = Fidelity(epochs=1)
    hp = evaluator.settings(arch, fidelity)
    n = args.steps * hp["batch_size"]
    gen = torch.Generator().manual_seed(index)
    if lm:
        x = torch.randint(0, LM_VOCAB, (n, LM_WINDOW), generator=gen)
        splits = Splits(Split(x, x), Split(x[:2], x[:2]), Split(x[:2], x[:2]), LM_VOCAB, "synthetic", LM_KIND)
    else:
        x = torch.randn(n, 3, args.resolution, args.resolution, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        splits = Splits(Split(x, y), Split(x[:2], y[:2]), Split(x[:2], y[:2]), 10, "synthetic")
    evaluator = TrainingEvaluator(splits, 0, device=args.device)
    task = evaluator.task(fidelity)
    cuda = device.type == "cuda"

    def train(model: torch.nn.Module, split: Split, batch: int) -> None:
        train_model(model, split, 1, batch_size=batch, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]),
                    optimizer=hp["optimizer"], label_smoothing=0.0, generator=gen, device=device)

    # a warm worker: one step of the same network at batch 2 first, so the libraries' code pages and
    # kernels a first step loads (shared, file-backed, once per process) are not counted as the trial's
    train(space.build(arch, task), Split(splits.train.x[:2], splits.train.y[:2]), 2)
    _release()
    base = torch.cuda.memory_allocated(device) if cuda else _status("VmRSS")
    torch.manual_seed(0)
    model = space.build(arch, task)
    started = time.perf_counter()
    estimate = evaluator.estimate_memory(model, hp, splits.train)  # training steps only: no validation pass
    estimate_s = time.perf_counter() - started
    _release()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    train(model, splits.train, hp["batch_size"])
    peak = torch.cuda.max_memory_allocated(device) if cuda else _status("VmHWM")
    return {"space": space_name, "arch": str(arch)[:60], "estimate": estimate.total, "measured": peak - base,
            "batch": hp["batch_size"], "estimate_s": estimate_s,
            "parts": {k: getattr(estimate, k) for k in ("params", "grads", "optimizer", "activations", "inputs",
                                                          "retained", "transient", "overhead")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--spaces", default="", help="comma-separated (default: every registered space)")
    parser.add_argument("--verbose", action="store_true", help="print each estimate's parts")
    parser.add_argument("--child", nargs=2, metavar=("SPACE", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args)))
        return
    from archsearch.spaces.base import SPACES

    names = args.spaces.split(",") if args.spaces else SPACES.names()
    where = "CUDA max_memory_allocated" if args.device.startswith("cuda") else "CPU resident set (VmHWM)"
    print(f"memory estimate vs measured peak ({where}), {args.samples} samples per space, images "
          f"3x{args.resolution}x{args.resolution}, {args.steps} training steps, {args.threads} threads")
    ratios: list[float] = []
    start = time.perf_counter()
    for name in names:
        print(f"\n{name}\n  {'#':>2} {'batch':>5} {'estimate MB':>12} {'measured MB':>12} {'ratio':>6}  arch")
        for i in range(args.samples):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, str(i)] + [
                f"--{k}={getattr(args, k)}" for k in ("resolution", "steps", "seed", "threads", "device")]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                print(f"  {i:>2} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            ratio = row["estimate"] / max(row["measured"], 1)
            ratios.append(ratio)
            print(f"  {i:>2} {row['batch']:>5} {row['estimate'] / 1e6:>12.1f} {row['measured'] / 1e6:>12.1f} "
                  f"{ratio:>6.2f}  {row['arch']}")
            if args.verbose:
                print("     " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in row["parts"].items())
                      + f"; estimated in {row['estimate_s'] * 1e3:.0f} ms")
    within = sum(abs(r - 1) <= TARGET for r in ratios)
    worst = max(ratios, key=lambda r: abs(r - 1), default=float("nan"))
    print(f"\nRESULT: {within}/{len(ratios)} within ±{TARGET:.0%} ({within / max(len(ratios), 1):.0%}), worst ratio "
          f"{worst:.2f}, range {min(ratios, default=0):.2f}-{max(ratios, default=0):.2f} "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
