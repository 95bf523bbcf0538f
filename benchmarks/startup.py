"""Start-up cost: ``import archsearch``, ``archsearch --help`` and ``archsearch search --help``
against a bare ``python -c pass``, each a fresh process, interleaved, median of --repeats runs.

Targets (issue 17): ``archsearch --help`` under 0.5 s, and ``import archsearch`` loads none of
Optuna, Ray, matplotlib (the script prints which heavy modules it did load).

    .venv/bin/python benchmarks/startup.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "optuna", "ray", "matplotlib")


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    cli = str(Path(sys.executable).with_name("archsearch"))
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "import archsearch": [sys.executable, "-c", "import archsearch"],
        "archsearch --help": [cli, "--help"],
        "archsearch search --help": [cli, "search", "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(args.repeats + 1):  # the first round warms the file cache and is dropped
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            t = timed(cases[name])
            if r:
                times[name].append(t)
    base = statistics.median(times["python -c pass (baseline)"])
    print(f"start-up, median of {args.repeats} fresh processes (cpu count {os.cpu_count()})")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:28s} {med:7.3f} s   {med / base:5.1f}x baseline   +{med - base:6.3f} s")
    probe = ("import sys, archsearch; print(','.join(m for m in %r if m in sys.modules) or 'none')" % (HEAVY,))
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    print(f"  heavy modules loaded by `import archsearch`: {loaded}")
    helpt = statistics.median(times["archsearch --help"])
    print(f"  target archsearch --help < 0.5 s: {'met' if helpt < 0.5 else 'NOT met'} ({helpt:.3f} s)")


if __name__ == "__main__":
    main()
