"""NB201 build cost: build + one forward/backward through archsearch vs the same network written by hand.

For each cell, (A) a hand-written NAS-Bench-201 network (plain ``nn.Module``s defined in this
file, no archsearch code) and (B) ``space.build(space.parse(cell), Task((3, 32, 32), 10))`` are
each timed from construction to the end of ``loss.backward()`` on one CIFAR-sized batch
(64 x 3 x 32 x 32, cross-entropy). Both build their modules in the same order under the same
seed, so they start from identical weights: the script checks that parameter counts and logits
agree before timing, so the comparison is of the same network.

Runs are interleaved (A B, B A, ... per cell, so drift hits both alike) after one untimed
warm-up of each; medians per cell are reported. Default cells: NB201's example cell plus
``--cells`` sampled with ``--seed``.

Target: sum of per-cell medians, archsearch / hand-written <= 1.2.

    .venv/bin/python benchmarks/nb201_build.py [--cells 3] [--repeats 7] [--threads 2] [--arch STR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TARGET = 1.2
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


# -- (A) NAS-Bench-201 written by hand --------------------------------------------
def hand_edge(op: str, c: int) -> nn.Module | None:
    if op == "none":
        return None
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    k = 3 if op == "nor_conv_3x3" else 1
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c))


def _total(x: torch.Tensor, *terms: torch.Tensor | None) -> torch.Tensor:
    live = [t for t in terms if t is not None]
    if not live:
        return torch.zeros_like(x)
    out = live[0]
    for t in live[1:]:
        out = out + t
    return out


class HandCell(nn.Module):
    """n1 = e01(n0); n2 = e02(n0) + e12(n1); n3 = e03(n0) + e13(n1) + e23(n2); 'none' edges left out."""

    def __init__(self, ops: Sequence[str], c: int) -> None:
        super().__init__()
        self.e01, self.e02, self.e12, self.e03, self.e13, self.e23 = (hand_edge(o, c) for o in ops)

    @staticmethod
    def _run(edge: nn.Module | None, x: torch.Tensor) -> torch.Tensor | None:
        return None if edge is None else edge(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = _total(x, self._run(self.e01, x))
        n2 = _total(x, self._run(self.e02, x), self._run(self.e12, n1))
        return _total(x, self._run(self.e03, x), self._run(self.e13, n1), self._run(self.e23, n2))


class HandResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out))
        self.conv_b = nn.Sequential(nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.down(x)


class HandNB201(nn.Module):
    def __init__(self, ops: Sequence[str], num_classes: int = 10, c: int = 16, n: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = [HandCell(ops, c) for _ in range(n)]
        layers += [HandResBlock(c, 2 * c)] + [HandCell(ops, 2 * c) for _ in range(n)]
        layers += [HandResBlock(2 * c, 4 * c)] + [HandCell(ops, 4 * c) for _ in range(n)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU())
        self.classifier = nn.Linear(4 * c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.lastact(self.cells(self.stem(x))).mean(dim=(2, 3)))


def parse_ops(cell: str) -> list[str]:
    return [tok.split("~")[0] for node in cell.split("+") for tok in node.strip("|").split("|")]


# -- timing -----------------------------------------------------------------------
def timed(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[float, torch.Tensor]:
    """Seconds from construction to the end of backward; also the logits (to check A == B)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = build()
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    return time.perf_counter() - start, logits.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3, help="sampled cells besides NB201's example (default 3)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each per cell (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both (default 2)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--arch", default=None, help="time only this NB201 cell string")
    parser.add_argument("--seed", type=int, default=0, help="cell sampling, data and init seed (default 0)")
    args = parser.parse_args()

    import archsearch.spaces.nb201  # noqa: F401  (registers the space)
    from archsearch.core import Task
    from archsearch.spaces.base import create_space

    load0 = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    space, task = create_space("nb201"), Task((3, 32, 32), 10)
    rng = np.random.default_rng(args.seed)
    cells = [args.arch] if args.arch else [EXAMPLE] + [str(space.sample(rng)) for _ in range(args.cells)]
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    print(f"batch: {args.batch}x3x32x32  torch threads: {args.threads}  repeats: {args.repeats}  cells: {len(cells)}")

    rows = []
    for cell in cells:
        ops = parse_ops(cell)
        build_a: Callable[[], nn.Module] = lambda ops=ops: HandNB201(ops)
        build_b: Callable[[], nn.Module] = lambda cell=cell: space.build(space.parse(cell), task)
        n_a = sum(p.numel() for p in build_a().parameters())
        n_b = sum(p.numel() for p in build_b().parameters())
        _, la = timed(build_a, x, y, args.seed)  # warm-up, and the same-network check
        _, lb = timed(build_b, x, y, args.seed)
        diff = (la - lb).abs().max().item()
        if n_a != n_b or diff > 1e-4:
            raise SystemExit(f"hand-written and archsearch networks differ for {cell}: "
                             f"params {n_a} vs {n_b}, max logit difference {diff:.2e}")
        base, cand = [], []
        for r in range(args.repeats):
            for which in (("A", "B") if r % 2 == 0 else ("B", "A")):
                if which == "A":
                    base.append(timed(build_a, x, y, args.seed)[0])
                else:
                    cand.append(timed(build_b, x, y, args.seed)[0])
        rows.append((cell, n_b, base, cand))

    print()
    for cell, n, base, cand in rows:
        mb, mc = statistics.median(base), statistics.median(cand)
        print(f"{cell}  ({n:,} params)")
        for name, ts in (("A hand-written", base), ("B archsearch", cand)):
            print(f"  {name:<15} median {statistics.median(ts):6.3f} s  min {min(ts):6.3f}   all: "
                  + " ".join(f"{t:.2f}" for t in ts))
        print(f"  B/A: medians {mc / mb:.3f}  minima {min(cand) / min(base):.3f}")
    total_a = sum(statistics.median(b) for _, _, b, _ in rows)
    total_b = sum(statistics.median(c) for _, _, _, c in rows)
    paired = statistics.median(c / b for _, _, bs, cs in rows for b, c in zip(bs, cs))
    ratio = total_b / total_a
    min_ratio = sum(min(c) for _, _, _, c in rows) / sum(min(b) for _, _, b, _ in rows)
    print()
    print("identical networks: parameter counts equal and logits agree (same seed) for every cell")
    print(f"sum of medians A/B: {total_a:.3f}/{total_b:.3f} s   ratio B/A: {ratio:.3f}   "
          f"median of paired ratios: {paired:.3f}   ratio of summed minima: {min_ratio:.3f}")
    print(f"loadavg (1 min) at start/end: {load0:.2f}/{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"RESULT nb201_build: {ratio:.3f}x (target <= {TARGET}) {verdict}")


if __name__ == "__main__":
    main()
