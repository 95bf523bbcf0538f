"""Sample+mutate throughput of every registered space (strategies call them in tight loops).

For each space at its default options: draw a random architecture and mutate it, N times,
with one seeded generator; report architectures per second counting each (sample, mutate)
pair as one, the conservative reading of the target. Also times ``neighbours`` of one
architecture, ``encode``/``decode`` and ``str``/``parse`` round trips, which local search,
RL controllers and journal replay lean on.

Target: at least 10,000 sample+mutate pairs per second for every space.

    .venv/bin/python benchmarks/space_ops.py [--n 20000] [--repeats 3] [--space NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

from archsearch.spaces import create_space, list_spaces

TARGET = 10_000


def rate(fn, n: int, repeats: int) -> float:
    """Median calls per second over ``repeats`` timed runs of ``n`` calls (after a warm-up)."""
    fn(min(n, 200))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--space", action="append", help="only these spaces (repeatable)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'space':<14} {'sample+mutate/s':>16} {'decode(encode)/s':>17} {'parse(str)/s':>13} {'neighbours':>11}")
    worst = float("inf")
    for name in args.space or list_spaces():
        space = create_space(name)
        rng = np.random.default_rng(0)

        def sample_mutate(n: int, space: Any = space, rng: Any = rng) -> None:
            for _ in range(n):
                space.mutate(space.sample(rng), rng)

        archs = [space.sample(np.random.default_rng(i)) for i in range(200)]
        texts = [str(a) for a in archs]

        def roundtrip(n: int, space: Any = space, archs: list[Any] = archs) -> None:
            for i in range(n):
                a = archs[i % 200]
                space.decode(space.encode(a))

        def parse(n: int, space: Any = space, texts: list[str] = texts) -> None:
            for i in range(n):
                space.parse(texts[i % 200])

        sm = rate(sample_mutate, args.n, args.repeats)
        rt = rate(roundtrip, args.n, args.repeats)
        ps = rate(parse, max(args.n // 4, 1), args.repeats)
        worst = min(worst, sm)
        print(f"{name:<14} {sm:>16,.0f} {rt:>17,.0f} {ps:>13,.0f} {len(space.neighbours(archs[0])):>11}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    verdict = "PASS" if worst >= TARGET else "FAIL"
    print(f"RESULT space_ops: {worst:,.0f} sample+mutate/s for the slowest space (target >= {TARGET:,}) {verdict}")


if __name__ == "__main__":
    main()
