"""Time and peak memory of one search step of each one-shot method on the DARTS cell space.

Setting (issue 5): the DARTS search network, 8 cells, C=16, 4 nodes, 8 candidate ops; a step
is one ``method.step(train_batch, valid_batch)`` with batches of 32 random 3x32x32 images
(both the weight and the architecture update, as the method does them). Every method runs in
its own fresh subprocess, so its peak memory is its own: on CPU the process's peak resident
set (``ru_maxrss``) after the steps minus the resident set before the first step (the
supernet and data are already in memory); on CUDA ``torch.cuda.max_memory_allocated``. The
per-step time is the median over ``--steps`` steps after ``--warmup`` untimed ones.

Targets: GDAS at least 3x faster per step than DARTS first order; DARTS second order at most
2.5x first order (DARTS's central difference, and ``difference: forward``, one pass fewer).
PC-DARTS (K=4) is reported for its memory.

    .venv/bin/python benchmarks/oneshot_step.py [--steps 5] [--warmup 1] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

METHODS = {
    "darts (1st order)": ("darts", {"order": 1}),
    "darts (2nd order)": ("darts", {"order": 2}),
    "darts (2nd, forward)": ("darts", {"order": 2, "difference": "forward"}),
    "gdas": ("gdas", {}),
    "pc-darts (K=4)": ("darts", {"order": 1, "partial_channels": 4}),
}


def rss_mib() -> float:
    """The resident set now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(name: str, options: dict, steps: int, warmup: int, threads: int, device: str, batch: int) -> dict:
    """Runs in the child process: build, step, measure."""
    import torch

    import archsearch.oneshot.darts  # noqa: F401 - registers the methods
    import archsearch.oneshot.gdas  # noqa: F401
    from archsearch.core import Task
    from archsearch.oneshot.base import create_oneshot
    from archsearch.spaces import create_space

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    space = create_space("darts", channels=16, cells=8, nodes=4)
    method = create_oneshot(name, space, 0, device=device, batch_size=batch, **options)
    net = space.supernet(Task((3, 32, 32), 10), **method.supernet_options()).to(method.device)
    method.setup(net, steps + warmup)
    g = torch.Generator().manual_seed(1)
    batches = [tuple(t.to(method.device) for t in (torch.randn(batch, 3, 32, 32, generator=g),
                                                   torch.randint(0, 10, (batch,), generator=g)))
               for _ in range(2)]
    cuda = method.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = rss_mib()
    times = []
    for s in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        method.step(batches[0], batches[1])
        if cuda:
            torch.cuda.synchronize()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)
    params = sum(p.numel() for p in net.parameters())
    return {"step_s": statistics.median(times), "peak_mib": peak, "params": params, "device": str(method.device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        name, options = METHODS[args.child]
        print(json.dumps(one(name, options, args.steps, args.warmup, args.threads, args.device, args.batch)))
        return
    print(f"load average at start: {os.getloadavg()}; {args.threads} torch threads, device {args.device}, "
          f"batch {args.batch} of 3x32x32, DARTS space 8 cells C=16")
    results = {}
    for label in METHODS:
        cmd = [sys.executable, __file__, "--child", label, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads), "--device", args.device, "--batch", str(args.batch)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{label}: failed\n{done.stderr[-2000:]}")
            continue
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results.get("darts (1st order)")
    print(f"{'method':<20} {'s/step':>8} {'x 1st order':>12} {'peak MiB':>9} {'params':>9}")
    for label, r in results.items():
        ratio = r["step_s"] / base["step_s"] if base else float("nan")
        print(f"{label:<20} {r['step_s']:>8.3f} {ratio:>12.2f} {r['peak_mib']:>9.0f} {r['params']:>9,}")
    print(f"load average at end: {os.getloadavg()}")
    if base and "gdas" in results:
        speedup = base["step_s"] / results["gdas"]["step_s"]
        print(f"RESULT gdas_speedup: {speedup:.2f} (target >= 3.0) {'PASS' if speedup >= 3.0 else 'FAIL'}")
    if base and "darts (2nd order)" in results:
        ratio = results["darts (2nd order)"]["step_s"] / base["step_s"]
        print(f"RESULT second_order_ratio: {ratio:.2f} (target <= 2.5) {'PASS' if ratio <= 2.5 else 'FAIL'}")
    if base and "darts (2nd, forward)" in results:
        ratio = results["darts (2nd, forward)"]["step_s"] / base["step_s"]
        print(f"RESULT second_order_forward_ratio: {ratio:.2f} (target <= 2.5) {'PASS' if ratio <= 2.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
