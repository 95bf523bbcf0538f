"""Parallel speedup: trials per minute with two workers vs one, process pool and Ray.

Runs the same small search (random strategy on the chain space, digits, a few epochs per
trial, no final training) with ``run_search`` under several executor settings and
compares completed trials per minute:

* process, 1 worker, 2 threads  (the default split: threads = cores // workers)
* process, 1 worker, 1 thread   (same threads per trial as the 2-worker run)
* process, 2 workers, 1 thread each (the default for 2 workers on 2 cores)
* ray, 1 worker, cpus_per_trial=1 (1 thread)
* ray, 2 workers, cpus_per_trial=1 (1 thread each)

Every run uses the same seed, so the random strategy proposes the same architectures in
the same order (checked from the journals) and each trial gets the same seed.
Throughput excludes start-up: its window runs from the first trial's compute start
(finished_at - cost, cost being the time measured inside the worker, so process spawn,
imports and Ray start are outside it) to the last trial's finished_at, both read from the
journal. Each worker's first trial still carries that worker's one-off costs (loading the
data, about 1 s here, and torch's first-call warm-up, about 1 s) inside the window; the
per-trial table shows them. "busy" is the share of the window the workers spent inside
trials. End-to-end wall time of ``run_search`` (pool/Ray start and shutdown included) is
reported too, and so is the machine's own ceiling: two plain single-thread torch processes
at once vs one. Configurations are run interleaved (the order rotates every repeat) and
medians over repeats are reported.

Target: two workers vs one on 2 cores, at least 1.8x trials per minute; the RESULT line
takes the worst of the three speedups (process (a) default threads, process (b) 1 thread
per worker, Ray).

    .venv/bin/python benchmarks/parallel_speedup.py [--trials 10] [--epochs 3] [--repeats 3] [--no-ray | --ray-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from archsearch.config import Config
from archsearch.experiment import run_search
from archsearch.storage.journal import Journal

TARGET = 1.8


def configs(use_process: bool, use_ray: bool) -> list[tuple[str, dict[str, Any], int]]:
    """(label, executor section, torch threads per trial)."""
    cores = os.cpu_count() or 1
    out = []
    if use_process:
        out += [
            ("process w=1 t=%d" % max(1, cores), {"name": "process", "workers": 1}, max(1, cores)),
            ("process w=1 t=1", {"name": "process", "workers": 1, "threads": 1}, 1),
            ("process w=2 t=%d" % max(1, cores // 2), {"name": "process", "workers": 2}, max(1, cores // 2)),
        ]
    if use_ray:
        out += [("ray w=1 cpt=1", {"name": "ray", "workers": 1, "cpus_per_trial": 1}, 1),
                ("ray w=2 cpt=1", {"name": "ray", "workers": 2, "cpus_per_trial": 1}, 1)]
    return out


CALIBRATION = """
import time, torch
torch.set_num_threads(1)
a = torch.randn(256, 256)
a @ a
t = time.perf_counter()
for _ in range(3000):
    a @ a
print(time.perf_counter() - t)
"""


def machine_ceiling(repeats: int) -> tuple[float, float, float]:
    """What the machine itself gives: one vs two plain single-thread torch processes at once.

    Returns (seconds alone, seconds each when two run together, throughput ratio); a ratio
    near 2 means two cores are really there for the taking right now.
    """
    def launch(k: int) -> list[float]:
        procs = [subprocess.Popen([sys.executable, "-c", CALIBRATION], stdout=subprocess.PIPE, text=True)
                 for _ in range(k)]
        return [float(p.communicate()[0]) for p in procs]

    alone, together = [], []
    for _ in range(repeats):
        alone += launch(1)
        together += launch(2)
    a, t = statistics.median(alone), statistics.median(together)
    return a, t, 2 * a / t


def one_run(executor: dict[str, Any], trials: int, epochs: int, seed: int) -> dict[str, Any]:
    config = Config.from_dict({
        "seed": seed,
        "space": {"name": "chain"},
        "strategy": {"name": "random"},
        "dataset": {"name": "digits"},
        "evaluator": {"name": "train"},
        "executor": dict(executor),
        "fidelity": {"epochs": epochs},
        "final": {"enabled": False},
        "budget": {"trials": trials},
    })
    out_dir = tempfile.mkdtemp(prefix="archsearch-bench-")
    try:
        start = time.perf_counter()
        summary = run_search(config, os.path.join(out_dir, "run"), quiet=True)
        wall = time.perf_counter() - start
        journal = Journal(os.path.join(out_dir, "run", Journal.FILENAME))
        rows = journal.raw_trials()
        journal.close()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    done = [r for r in rows if r["state"] == "complete"]
    first = min(r["finished_at"] - r["cost"] for r in done)
    finishes = sorted(r["finished_at"] for r in done)
    workers = int(executor.get("workers", 1))
    window = finishes[-1] - first
    train = [json.loads(r["metrics"]).get("train_time", 0.0) for r in done]
    # busy: share of the window the workers spent inside trials (1.0 = never idle)
    busy = sum(r["cost"] for r in done) / (workers * window)
    return {"wall": wall, "window": window, "busy": busy, "complete": summary.complete,
            "failed": summary.failed, "archs": [r["arch"] for r in rows],
            "cost": sum(r["cost"] for r in done) / len(done), "train": sum(train) / len(done),
            "other": sum(r["cost"] - t for r, t in zip(done, train)) / len(done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per search (default 10)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="experiment seed (same for every run)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    parser.add_argument("--ray-only", action="store_true", help="only the Ray executor (no process pool runs)")
    args = parser.parse_args()
    if args.no_ray and args.ray_only:
        parser.error("--no-ray and --ray-only exclude each other")

    use_ray = not args.no_ray
    if use_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray is not installed: skipping the Ray runs")
            if args.ray_only:
                sys.exit(1)
            use_ray = False
    cfgs = configs(not args.ray_only, use_ray)
    print(f"cores: {os.cpu_count()}  trials per search: {args.trials}  epochs per trial: {args.epochs}  "
          f"repeats: {args.repeats}  seed: {args.seed}  loadavg at start: {os.getloadavg()[0]:.2f}")

    alone, together, ceiling = machine_ceiling(3)
    print(f"machine ceiling: a 1-thread torch loop takes {alone:.2f}s alone, {together:.2f}s each with two "
          f"at once -> two processes give {ceiling:.2f}x throughput", flush=True)

    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in cfgs}
    for r in range(args.repeats):
        order = cfgs[r % len(cfgs):] + cfgs[: r % len(cfgs)]  # rotate so no config always runs first
        for label, executor, _ in order:
            res = one_run(executor, args.trials, args.epochs, args.seed)
            results[label].append(res)
            print(f"  repeat {r + 1} {label:<18} wall {res['wall']:6.1f}s  window {res['window']:6.1f}s  "
                  f"complete {res['complete']}  failed {res['failed']}", flush=True)

    reference = results[cfgs[0][0]][0]["archs"]
    same = all(res["archs"] == reference for runs in results.values() for res in runs)

    tpm: dict[str, float] = {}
    print()
    print("throughput (medians over repeats; window = first trial start .. last trial finish)")
    print(f"{'configuration':<18} {'threads':>7} {'window s':>9} {'trials/min':>11} {'busy':>6} "
          f"{'wall s':>7} {'e2e/min':>8}")
    for label, _, threads in cfgs:
        runs = results[label]
        window = statistics.median(x["window"] for x in runs)
        wall = statistics.median(x["wall"] for x in runs)
        n = statistics.median(x["complete"] for x in runs)
        tpm[label] = 60.0 * n / window
        tpm[label + " e2e"] = 60.0 * n / wall
        busy = statistics.median(x["busy"] for x in runs)
        print(f"{label:<18} {threads:>7} {window:9.1f} {tpm[label]:11.2f} {busy:6.0%} "
              f"{wall:7.1f} {tpm[label + ' e2e']:8.2f}")
    print()
    print("per trial, mean seconds (cost = measured in the worker; train = its train_time metric; "
          "other = cost - train: data load, build, flops)")
    print(f"{'configuration':<18} {'cost':>7} {'train':>7} {'other':>7}")
    for label, _, _ in cfgs:
        runs = results[label]
        print(f"{label:<18} {statistics.median(x['cost'] for x in runs):7.2f} "
              f"{statistics.median(x['train'] for x in runs):7.2f} {statistics.median(x['other'] for x in runs):7.2f}")
    print(f"same architectures in every run: {'yes' if same else 'NO'}")

    speedups = []
    if not args.ray_only:
        l1t2, l1t1, l2 = cfgs[0][0], cfgs[1][0], cfgs[2][0]
        speedups += [("process (a) default threads", l2, l1t2), ("process (b) 1 thread/worker", l2, l1t1)]
    if use_ray:
        speedups.append(("ray cpus_per_trial=1", cfgs[-1][0], cfgs[-2][0]))
    print()
    print(f"{'speedup 2 vs 1 worker':<30} {'window':>8} {'e2e':>7}   target >= {TARGET}")
    worst = None
    for name, two, one in speedups:
        s = tpm[two] / tpm[one]
        e = tpm[two + " e2e"] / tpm[one + " e2e"]
        print(f"{name:<30} {s:7.2f}x {e:6.2f}x   {'PASS' if s >= TARGET else 'FAIL'}")
        if worst is None or s < worst[1]:
            worst = (name, s)
    assert worst is not None
    verdict = "PASS" if worst[1] >= TARGET else "FAIL"
    print(f"machine ceiling measured above: {ceiling:.2f}x")
    print(f"loadavg at end: {os.getloadavg()[0]:.2f}   ratio below = worst window speedup: {worst[0]}")
    print(f"RESULT parallel_speedup: {worst[1]:.2f}x (target >= {TARGET}) {verdict}")


if __name__ == "__main__":
    main()
