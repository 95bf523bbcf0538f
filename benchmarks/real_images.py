"""Real images on a laptop: ``archsearch search --time 10m`` against the hand-written MNIST CNN.

On the real MNIST digits in ``../shared/data/mnist-17k`` (15,000 train, 2,435 test; skips without
``../shared``), per seed: the whole ``archsearch search --dataset mnist:DIR --time T`` job in a fresh
process (wall time, trials, the final model's test accuracy), then the classic hand CNN
(conv32-conv64-maxpool-dropout-fc128, AdamW 1e-3, batch 64) trained on the same 15,000 images and
tested on the same 2,435: for 10 epochs (the usual recipe) and for as many epochs as fit the
archsearch job's wall time (a cosine schedule over them). ``--subset N`` first writes the first N
training images to a temporary idx folder (same test images), so the result does not hinge on one
data size. Prints one row per run and the targets: the job within 1.05 x T, and a higher test
accuracy than the hand CNN given the same wall time.

    python benchmarks/real_images.py --seeds 0 1 2
    python benchmarks/real_images.py --subset 8000 --seeds 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "mnist-17k"))


def read_idx(path: str) -> np.ndarray:
    from archsearch.data.files.idx import read_idx as read

    return read(path, 3 if "images" in path else 1)


def write_idx(path: str, array: np.ndarray) -> None:
    """The idx format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, the bytes; gzipped."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def subset_folder(n: int, where: str) -> str:
    os.makedirs(where, exist_ok=True)
    for kind in ("images-idx3", "labels-idx1"):
        write_idx(os.path.join(where, f"train-{kind}-ubyte.gz"),
                  read_idx(os.path.join(DATA, f"train-{kind}-ubyte.gz"))[:n])
        write_idx(os.path.join(where, f"t10k-{kind}-ubyte.gz"), read_idx(os.path.join(DATA, f"t10k-{kind}-ubyte.gz")))
    return where


def run_archsearch(data: str, budget: str, seed: int, out: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "archsearch", "search", "--dataset", f"mnist:{data}", "--time", budget,
           "--seed", str(seed), "--out", out, "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    import sqlite3

    db = sqlite3.connect(os.path.join(out, "journal.sqlite"))
    meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    states = dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    cached = db.execute("SELECT COUNT(*) FROM trials WHERE metrics LIKE '%\"cached\": 1.0%'").fetchone()[0]
    skipped = db.execute("SELECT COUNT(*) FROM trials WHERE error LIKE 'skipped:%'").fetchone()[0]
    final = meta["final"]
    plan = meta.get("plan") or {}
    return {"wall": wall, "complete": states.get("complete", 0), "failed": states.get("failed", 0) - skipped,
            "skipped": skipped, "cached": cached, "test_acc": final["final_metrics"]["test_acc"],
            "final_epochs": final["final_metrics"]["epochs"], "arch": final["arch"],
            "plan": {k: plan.get(k) for k in ("setup", "search_seconds", "final_seconds", "epochs", "data_fraction",
                                              "rungs", "trials")}}


class HandCNN(nn.Module):
    """The classic Keras/PyTorch MNIST example network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.drop1, self.drop2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.drop1(x), 1)
        return self.fc2(self.drop2(F.relu(self.fc1(x))))


def hand_cnn(data: str, seed: int, epochs: int = 0, seconds: float = 0.0) -> dict[str, float]:
    """Train for ``epochs`` (or as many as fit ``seconds``, timed on the first epoch) and test."""
    def load(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor(read_idx(os.path.join(data, f"{prefix}-images-idx3-ubyte.gz")), dtype=torch.float32)
        y = torch.tensor(read_idx(os.path.join(data, f"{prefix}-labels-idx1-ubyte.gz")), dtype=torch.long)
        return ((x / 255.0 - 0.1307) / 0.3081).unsqueeze(1), y

    (xtr, ytr), (xte, yte) = load("train"), load("t10k")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = HandCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()

    def epoch() -> None:
        model.train()
        for idx in torch.randperm(len(ytr), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            if sched is not None:
                sched.step()

    sched = None
    if seconds:  # time one epoch, then fit the rest of the budget with a cosine schedule
        epoch()
        per = time.perf_counter() - start
        epochs = max(1, int(seconds // per))
        steps = (epochs - 1) * ((len(ytr) + 63) // 64)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1)) if steps else None
        epochs -= 1
    for _ in range(epochs):
        epoch()
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return {"test_acc": acc, "wall": time.perf_counter() - start, "epochs": epochs + (1 if seconds else 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time", default="10m", help="archsearch --time")
    parser.add_argument("--subset", type=int, default=0, help="use the first N training images (0: all 15,000)")
    parser.add_argument("--same-time-seeds", type=int, default=1, help="train the hand CNN for the job's wall time "
                        "for the first K seeds (each takes as long as the job; the others get the 10-epoch recipe)")
    args = parser.parse_args()
    if not os.path.isdir(DATA):
        print(f"skipped: {DATA} is absent (real MNIST images come with ../shared)")
        return
    from archsearch.config import parse_duration

    budget = parse_duration(args.time)
    assert budget is not None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = subset_folder(args.subset, os.path.join(tmp, "data")) if args.subset else DATA
        for seed in args.seeds:
            found = run_archsearch(data, args.time, seed, os.path.join(tmp, f"run{seed}"))
            hand10 = hand_cnn(data, seed, epochs=10)
            hand_same = (hand_cnn(data, seed, seconds=found["wall"]) if len(rows) < args.same_time_seeds
                         else None)
            row = {"seed": seed, "archsearch": found, "hand_10_epochs": hand10, "hand_same_time": hand_same}
            rows.append(row)
            print(json.dumps(row), flush=True)
    size = args.subset or 15000
    print(f"\nreal MNIST, {size} training images, 2,435 test, archsearch --time {args.time} ({budget:.0f} s)")
    print(f"{'seed':>4} {'job s':>7} {'/budget':>7} {'trials':>6} {'skip':>4} {'cache':>5} {'test acc':>8} "
          f"{'hand 10ep':>9} {'(s)':>5} {'hand same time':>14} {'(epochs)':>8}")
    for r in rows:
        a, h10, hs = r["archsearch"], r["hand_10_epochs"], r["hand_same_time"]
        same = f"{hs['test_acc']:>14.4f} {hs['epochs']:>8}" if hs else f"{'-':>14} {'-':>8}"
        print(f"{r['seed']:>4} {a['wall']:>7.0f} {a['wall'] / budget:>7.3f} {a['complete']:>6} {a['skipped']:>4} "
              f"{a['cached']:>5} {a['test_acc']:>8.4f} {h10['test_acc']:>9.4f} {h10['wall']:>5.0f} {same}")
    within = all(r["archsearch"]["wall"] <= 1.05 * budget for r in rows)
    same_time = [r["hand_same_time"]["test_acc"] for r in rows if r["hand_same_time"]]
    best_hand = max(same_time + [r["hand_10_epochs"]["test_acc"] for r in rows])
    better = sum(round(r["archsearch"]["test_acc"], 4) > round(best_hand, 4) for r in rows)  # a tie is no win
    print(f"target: job within 1.05 x budget: {'met' if within else 'NOT met'}; "
          f"above the best hand CNN result ({best_hand:.4f}, 10 epochs or the job's wall time): {better} of "
          f"{len(rows)} seeds ({'met' if better == len(rows) else 'NOT met'})")
    worst = max(r["archsearch"]["wall"] / budget for r in rows)
    print(f"RESULT real_images_time: {worst:.3f} (target <= 1.05) {'PASS' if within else 'FAIL'}")
    margin = round(min(r["archsearch"]["test_acc"] for r in rows) - best_hand, 4)
    print(f"RESULT real_images_accuracy: {margin:+.4f} (target > 0) {'PASS' if margin > 0 else 'FAIL'}")


if __name__ == "__main__":
    main()
