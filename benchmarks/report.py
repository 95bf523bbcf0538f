"""The HTML report's cost during a search: writing ``RUN/report.html`` after trials must cost < 2%.

A real digits search (``run_search``: default ``chain`` space and strategy, ``--trials``
trials at ``--epochs`` epochs, no final training) with a :class:`LiveReport` updated after every
completed trial and closed at the end, as the search does it; every write is timed by wrapping
``html_report._write``, so all writes count, first-call imports included. Printed: search wall time, trials, report writes and their seconds, and the share of
the search's time spent writing (the RESULT, target <= 0.02), plus the final page's size
(target < 2 MB).

Then, on the finished run: ``write_report`` timed ``--repeats`` times (a cold first call in this
process, then the median of the rest) against the mean trial time: what writing after *every*
trial would cost without LiveReport's throttle (for reference).

What writing costs has a fixed part the throttle cannot spread: the first write of a process imports
matplotlib and jinja2 (about 0.3 s) and the final page is always written (about 0.2 s, more when
Python's garbage collector runs during it); the rest is kept to 2% by LiveReport. So the share
falls as the search gets longer: a short search (30 trials x 3 epochs of the small default
network: about half a minute on 2 idle cores) is the hard case, the default 10-epoch search an
easy one.

    .venv/bin/python benchmarks/report.py [--trials 30] [--epochs 3] [--threads N] [--repeats 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="run in this directory (must not exist) and keep it")
    args = ap.parse_args()

    import torch

    from archsearch.html_report import write as html_report  # _write lives there (LiveReport calls it)
    from archsearch.config import Config
    from archsearch.experiment import run_search
    from archsearch.storage.journal import Journal

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"digits search: default chain space and strategy, {args.trials} trials x {args.epochs} epochs, "
          f"no final training; torch threads {torch.get_num_threads()}")

    writes: list[tuple[bool, float]] = []  # (live, seconds) of every report written
    original_write = html_report._write

    def timed_write(run_dir, out, live, cache):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return original_write(run_dir, out, live, cache)
        finally:
            writes.append((live, time.perf_counter() - start))

    html_report._write = timed_write
    print("live report: driven by the search itself (Experiment.live_report)")

    config = Config.from_dict({
        "seed": args.seed,
        "fidelity": {"epochs": args.epochs},
        "final": {"enabled": False},
        "budget": {"trials": args.trials},
    })
    tmp = None
    if args.keep:
        out = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="archsearch-report-bench-")
        out = os.path.join(tmp.name, "run")
    try:
        start = time.perf_counter()
        run_search(config, out, quiet=True)
        wall = time.perf_counter() - start
        html_report._write = original_write

        journal = Journal(os.path.join(out, Journal.FILENAME))
        costs = [r["cost"] for r in journal.raw_trials() if r["state"] in ("complete", "failed")]
        journal.close()
        page = os.path.join(out, html_report.FILENAME)
        size = os.path.getsize(page) if os.path.isfile(page) else 0
        spent = sum(s for _, s in writes)
        share = spent / wall if wall > 0 else float("nan")
        print(f"{'search wall s':>14} {'trials':>7} {'mean trial s':>13} {'writes':>7} {'live':>5} "
              f"{'write s':>8} {'first s':>8} {'share':>7} {'page KB':>8}")
        print(f"{wall:14.1f} {len(costs):7d} {statistics.mean(costs) if costs else 0:13.2f} {len(writes):7d} "
              f"{sum(1 for live, _ in writes if live):5d} {spent:8.2f} {writes[0][1] if writes else 0:8.2f} "
              f"{share:7.4f} {size / 1024:8.1f}")
        print("each write (s): " + " ".join(f"{s:.2f}{'' if live else ' (final)'}" for live, s in writes))
        if len(writes) >= 2:
            fixed = writes[0][1] + writes[-1][1]
            print(f"first + final write {fixed:.2f} s ({fixed / wall:.4f} of the search), the other "
                  f"{len(writes) - 2} write(s) {spent - fixed:.2f} s ({(spent - fixed) / wall:.4f})")

        # reference: the cost of one write on the finished run, unthrottled
        other = os.path.join(tempfile.gettempdir(), f"archsearch-report-bench-{os.getpid()}.html")
        times = []
        for _ in range(max(2, args.repeats)):
            t = time.perf_counter()
            html_report.write_report(out, other)
            times.append(time.perf_counter() - t)
        os.remove(other)
        per_write = statistics.median(times[1:])
        mean_trial = statistics.mean(costs) if costs else float("nan")
        print("write_report on the finished run (s): " + " ".join(f"{t:.3f}" for t in times))
        print(f"write_report on the finished run: first {times[0]:.3f} s, median of the rest {per_write:.3f} s; "
              f"after every trial that would be {per_write / mean_trial:.3f} of a {mean_trial:.2f} s trial "
              "(LiveReport's throttle keeps it to 0.02)")
        print(f"page size: {size:,} bytes (target < 2 MB: {'PASS' if 0 < size < 2_000_000 else 'FAIL'})")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        ok = share <= 0.02 and 0 < size < 2_000_000
        print(f"RESULT report: {share:.4f} (target <= 0.02) {'PASS' if ok else 'FAIL'}")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
