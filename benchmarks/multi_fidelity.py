"""Successive halving and Hyperband vs full-fidelity random search on digits, by training epochs.

Random search trains ``--trials`` architectures of the default ``chain`` space at the full
fidelity (``--max-epochs``) and keeps the best validation accuracy. Successive halving and
Hyperband (min 1 epoch, max ``--max-epochs``, eta 3) run until they have spent half of
random search's epochs; their result is the best validation accuracy among the trials they
trained at the full fidelity (a lower rung's accuracy is not comparable). Same evaluator
(``TrainingEvaluator`` on digits), same per-trial seeds, ``--seeds`` repetitions.

Target (issue 7): they reach random search's best accuracy with at most half its epochs.

    .venv/bin/python benchmarks/multi_fidelity.py [--trials 20] [--max-epochs 9] [--seeds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.estimation import TrainingEvaluator
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy


def evaluate(evaluator: TrainingEvaluator, space, arch, epochs: int, seed: int) -> float:
    result = evaluator.evaluate(space, arch, Fidelity(epochs=epochs), seed)
    return float(result.metrics["valid_acc"])


def random_search(evaluator, space, trials: int, epochs: int, seed: int) -> tuple[float, int]:
    strategy = create_strategy("random", space, seed=seed)
    best = 0.0
    for i in range(trials):
        arch = strategy.ask().arch
        best = max(best, evaluate(evaluator, space, arch, epochs, seed * 1000 + i))
    return best, trials * epochs


def multi_fidelity(name: str, evaluator, space, budget: int, max_epochs: int, seed: int) -> tuple[float, int, int]:
    """(best full-fidelity accuracy, epochs spent, trials) within ``budget`` epochs."""
    strategy = create_strategy(name, space, seed=seed, min_resource=1, max_resource=max_epochs, eta=3)
    spent, best, i = 0, 0.0, 0
    while True:
        p = strategy.ask()
        if spent + p.fidelity.epochs > budget:
            break
        acc = evaluate(evaluator, space, p.arch, p.fidelity.epochs, seed * 1000 + i)
        spent += p.fidelity.epochs
        if p.fidelity.epochs == max_epochs:
            best = max(best, acc)
        strategy.tell(Trial(i, p.arch, TrialState.COMPLETE,
                            p.fidelity, p.parent, reward=acc))
        i += 1
    return best, spent, i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-epochs", type=int, default=9)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch {torch.get_num_threads()} threads")
    space = create_space("chain")
    evaluator = TrainingEvaluator({"name": "digits"})
    rows = []
    start = time.perf_counter()
    for seed in range(args.seeds):
        base, base_epochs = random_search(evaluator, space, args.trials, args.max_epochs, seed)
        row = {"seed": seed, "random": (base, base_epochs, args.trials)}
        for name in ("successive_halving", "hyperband"):
            row[name] = multi_fidelity(name, evaluator, space, base_epochs // 2, args.max_epochs, seed)
        rows.append(row)
        print(f"seed {seed}: " + "; ".join(f"{k} best {v[0]:.4f} in {v[1]} epochs ({v[2]} trials)"
                                            for k, v in row.items() if k != "seed"), flush=True)
    print(f"\n{'strategy':<20} {'best valid acc (mean)':>22} {'epochs (mean)':>14} {'reached random':>15}")
    base_acc = statistics.mean(r["random"][0] for r in rows)
    base_epochs = statistics.mean(r["random"][1] for r in rows)
    verdicts = []
    for name in ("random", "successive_halving", "hyperband"):
        acc = statistics.mean(r[name][0] for r in rows)
        epochs = statistics.mean(r[name][1] for r in rows)
        reached = sum(r[name][0] >= r["random"][0] for r in rows)
        print(f"{name:<20} {acc:>22.4f} {epochs:>14.1f} {reached:>12}/{len(rows)}")
        if name != "random":
            ok = epochs / base_epochs <= 0.5 and acc >= base_acc
            verdicts.append(f"{name} {epochs / base_epochs:.2f} of the epochs, mean best {acc:.4f} vs {base_acc:.4f} "
                            f"{'PASS' if ok else 'FAIL'}")
    print(f"wall {time.perf_counter() - start:.0f} s; load average at end: {os.getloadavg()}")
    print(f"RESULT multi_fidelity: {'; '.join(verdicts)} (target: <= 0.5 of the epochs, mean best >= random's)")

if __name__ == "__main__":
    main()
