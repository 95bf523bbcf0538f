"""Median-rule early stopping: random search on digits with and without it, same trials.

Both runs are real searches (``run_search``: journal, inline executor, no final training) of
the default ``chain`` space by random search, ``--trials`` architectures at ``--epochs``
epochs. With ``evaluator.early_stop=median`` a trial stops after epoch t > ``--warmup`` when
its best valid accuracy so far is below the median of completed full trials' best up to t
(once ``--min-trials`` of them exist). Random search proposes the same architectures in the
same order for the same seed whatever the results, so both runs train the same networks and
differ only in the epochs the rule cuts.

Per seed it prints the best valid accuracy (the search's reward: a stopped trial's is its last
value), the total training epochs, how many trials stopped, and whether both runs picked the
same architecture. The RESULT is the epochs ratio (median / full, summed over seeds); it
passes when the ratio is at most 0.8 and every seed's best accuracy is within 0.005 of the
full run's (targets set here, not by the issue).

    .venv/bin/python benchmarks/median_stopping.py [--trials 16] [--epochs 5] [--seeds 2] [--threads 1]
        [--warmup 1] [--min-trials 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time


def search(seed: int, median: bool, args: argparse.Namespace) -> list[dict]:
    """One random search; its complete trials (arch, reward, epochs, stopped_early) in trial order."""
    import torch

    from archsearch.config import Config
    from archsearch.experiment import run_search

    torch.set_num_threads(args.threads)
    evaluator = {"name": "train"}
    if median:
        evaluator.update(early_stop="median", early_stop_warmup=args.warmup, early_stop_min_trials=args.min_trials)
    config = Config.from_dict({
        "seed": seed,
        "space": {"name": "chain"},
        "strategy": {"name": "random"},
        "evaluator": evaluator,
        "executor": {"name": "inline", "threads": args.threads},
        "fidelity": {"epochs": args.epochs},
        "final": {"enabled": False},
        "budget": {"trials": args.trials},
    })
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        run_search(config, out, quiet=True)
        con = sqlite3.connect(os.path.join(out, "journal.sqlite"))
        rows = con.execute("SELECT arch, metrics, reward FROM trials WHERE state='complete' ORDER BY number").fetchall()
        con.close()
    out_rows = []
    for arch, metrics, reward in rows:
        m = json.loads(metrics)
        out_rows.append({"arch": arch, "reward": reward, "epochs": m["epochs"], "stopped": m.get("stopped_early", 0.0)})
    return out_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="evaluator.early_stop_warmup")
    ap.add_argument("--min-trials", type=int, default=3, help="evaluator.early_stop_min_trials")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"random search, chain space, digits: {args.trials} trials x {args.epochs} epochs; median rule "
          f"warmup {args.warmup}, min trials {args.min_trials}; threads {args.threads}")
    print(f"{'seed':>4} {'run':>6} {'best_acc':>9} {'epochs':>7} {'stopped':>8} {'wall_s':>7}  best arch")
    total = {False: 0.0, True: 0.0}
    close = True
    for seed in range(args.seeds):
        best = {}
        for median in (False, True):
            start = time.perf_counter()
            rows = search(seed, median, args)
            wall = time.perf_counter() - start
            top = max(rows, key=lambda r: r["reward"])
            epochs = sum(r["epochs"] for r in rows)
            stopped = sum(r["stopped"] > 0 for r in rows)
            total[median] += epochs
            best[median] = top
            print(f"{seed:>4} {'median' if median else 'full':>6} {top['reward']:>9.4f} {epochs:>7g} "
                  f"{stopped:>8} {wall:>7.1f}  {top['arch']}")
        diff = best[True]["reward"] - best[False]["reward"]
        close = close and abs(diff) <= 0.005
        same = "same" if best[True]["arch"] == best[False]["arch"] else "different"
        print(f"     seed {seed}: best accuracy median - full = {diff:+.4f}; {same} best architecture")
    ratio = total[True] / total[False]
    print(f"total epochs: full {total[False]:g}, median {total[True]:g}, ratio {ratio:.3f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    verdict = "PASS" if ratio <= 0.8 and close else "FAIL"
    print(f"RESULT median_stopping: {ratio:.3f} (target <= 0.8, best accuracy within 0.005) {verdict}")


if __name__ == "__main__":
    main()
