"""A 20-trial recurrent-cell search on a small generated corpus, and the LSTM under the same training.

The corpus is Markov text written to a temporary folder (nothing is downloaded): a seeded
second-order chain over ``--vocab`` words, where each pair of previous words allows only a few
next words, so a model that remembers two tokens beats one that remembers one. Lines of 4 to 14
words; ``--train-tokens`` words of training text, a tenth of that for valid and for test.

The search: ``rnn_cell`` (8 leaves, hidden ``--hidden``) with ``--strategy`` (default reinforce,
the seed's method) for ``--trials`` trials of ``--epochs`` epochs each, through ``run_search``
(inline executor, no final training); its wall time is the target. Then the best cell, the LSTM
and the NASCell are trained again under identical settings (same evaluator, fidelity and seeds
``0..--seeds-1``) and their validation perplexities reported side by side.

Targets: the 20-trial search finishes in under 600 s on 2 cores; the perplexities are reported.

    .venv/bin/python benchmarks/rnn_search.py [--trials 20] [--strategy reinforce] [--epochs 2]
        [--hidden 64] [--train-tokens 60000] [--seeds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter

import numpy as np
import torch

from archsearch.config import Config
from archsearch.core import Fidelity, TrialState
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.experiment import run_search
from archsearch.spaces import LSTM, NASCELL, create_space
from archsearch.storage import Journal

TARGET_S = 600.0


def markov_corpus(folder: str, vocab: int, train_tokens: int, seed: int = 0) -> None:
    """Write toy.{train,valid,test}.txt from one seeded second-order Markov chain."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    # each (previous, current) pair allows 3 next words with Dirichlet weights
    nxt = rng.integers(0, vocab, size=(vocab, vocab, 3))
    probs = rng.dirichlet(np.ones(3) * 0.5, size=(vocab, vocab))

    def text(n_tokens: int) -> str:
        lines, count = [], 0
        a, b = rng.integers(vocab), rng.integers(vocab)
        while count < n_tokens:
            line = []
            for _ in range(int(rng.integers(4, 15))):
                a, b = b, nxt[a, b, rng.choice(3, p=probs[a, b])]
                line.append(words[b])
            lines.append(" ".join(line))
            count += len(line) + 1
        return "\n".join(lines) + "\n"

    for split, n in (("train", train_tokens), ("valid", train_tokens // 10), ("test", train_tokens // 10)):
        with open(os.path.join(folder, f"toy.{split}.txt"), "w", encoding="utf-8") as f:
            f.write(text(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--strategy", default="reinforce")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=35)
    ap.add_argument("--vocab", type=int, default=50)
    ap.add_argument("--train-tokens", type=int, default=60_000)
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the side-by-side retraining")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        markov_corpus(corpus, args.vocab, args.train_tokens)
        dataset = {"name": "text", "path": corpus, "seq_len": args.seq_len}
        space_opts = {"hidden": args.hidden}
        config = Config.from_dict({
            "space": {"name": "rnn_cell", **space_opts}, "strategy": {"name": args.strategy},
            "dataset": dataset, "fidelity": {"epochs": args.epochs}, "budget": {"trials": args.trials},
            "final": {"enabled": False}, "seed": 0,
        })
        start = time.perf_counter()
        summary = run_search(config, os.path.join(tmp, "run"), quiet=True)
        wall = time.perf_counter() - start
        best = summary.best
        assert best is not None
        print(f"\nsearch: {args.strategy}, {summary.complete} complete / {summary.failed} failed trials, "
              f"{args.epochs} epoch(s) each, hidden {args.hidden}, corpus {args.train_tokens:,} train tokens "
              f"(vocabulary {args.vocab} + <unk>, <eos>)")
        print(f"search wall time: {wall:.1f} s")
        print(f"best trial {best.number}: valid ppl {best.metrics['valid_ppl']:.2f} (search fidelity): {best.arch}")
        journal = Journal(os.path.join(tmp, "run", Journal.FILENAME))
        space = create_space("rnn_cell", **space_opts)
        errors = Counter((t.error or "").splitlines()[0] for t in journal.trials(space.from_dict)
                         if t.state is TrialState.FAILED)
        journal.close()
        for error, count in errors.most_common():
            print(f"failed trials: {count} x {error}")

        evaluator = TrainingEvaluator(dataset)
        fidelity = Fidelity(epochs=args.epochs)
        rows = {"best found": best.arch, "LSTM": LSTM, "NASCELL": NASCELL}
        print(f"\nretrained under the same training ({args.epochs} epoch(s), seeds 0..{args.seeds - 1}): "
              "valid perplexity")
        print(f"{'cell':<12} {'mean':>8} {'min':>8} {'max':>8} {'params':>9}")
        means = {}
        for name, arch in rows.items():
            ppl, params = [], 0.0
            for seed in range(args.seeds):
                r = run_trial(evaluator, space, arch, fidelity, seed)
                ppl.append(r.metrics["valid_ppl"] if r.metrics else float("inf"))
                params = r.metrics.get("params", 0.0)
            means[name] = statistics.mean(ppl)
            print(f"{name:<12} {means[name]:>8.2f} {min(ppl):>8.2f} {max(ppl):>8.2f} {int(params):>9,}")
    print(f"load average at end: {os.getloadavg()}")
    print(f"RESULT rnn_search: {wall:.1f} s for {args.trials} trials (target < {TARGET_S:.0f}) "
          f"{'PASS' if wall < TARGET_S else 'FAIL'}; valid ppl best found {means['best found']:.2f} "
          f"vs LSTM {means['LSTM']:.2f}")


if __name__ == "__main__":
    main()
