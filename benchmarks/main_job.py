"""The main job: ``archsearch search`` with no arguments, timed end to end.

Runs ``archsearch search --out TMPDIR --quiet`` (the executable next to this Python) as a
subprocess, times it, then reads ``TMPDIR/best.json`` for the found architecture and its
final test accuracy on the built-in digits data.

Target, on 2 CPU cores: wall time at most 5 minutes AND final test accuracy at least 99%.
The RESULT ratio is wall time / 300 s (target <= 1.0); it says PASS only when the accuracy
check passes too.

    .venv/bin/python benchmarks/main_job.py [--extra="--seed 1 --budget 20"] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

WALL_LIMIT_S = 300.0
ACC_TARGET = 0.99


def archsearch_executable() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "archsearch")
    if os.path.isfile(exe) and os.access(exe, os.X_OK):
        return [exe]
    return [sys.executable, "-m", "archsearch"]  # fallback: same package, same interpreter


def journal_counts(out_dir: str) -> dict[str, int]:
    path = os.path.join(out_dir, "journal.sqlite")
    if not os.path.isfile(path):
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", default="",
                        help="more CLI arguments for 'archsearch search', one string (write --extra=\"...\")")
    parser.add_argument("--timeout", type=float, default=3600.0, help="kill the job after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the output directory (printed)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="archsearch-main-job-")
    out_dir = os.path.join(tmp, "run")
    cmd = archsearch_executable() + ["search", "--out", out_dir, "--quiet"] + shlex.split(args.extra)
    print(f"command: {' '.join(shlex.quote(c) for c in cmd)}")
    print(f"cores: {os.cpu_count()}  loadavg at start: {os.getloadavg()[0]:.2f}", flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        rc, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stderr = None, (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.perf_counter() - start

    best = None
    best_path = os.path.join(out_dir, "best.json")
    if os.path.isfile(best_path):
        with open(best_path, encoding="utf-8") as f:
            best = json.load(f)
    counts = journal_counts(out_dir)
    if args.keep:
        print(f"output kept in {out_dir}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)

    if rc != 0:
        print(f"exit code: {rc if rc is not None else 'killed after --timeout'}")
        if stderr.strip():
            print("stderr (last lines):\n  " + "\n  ".join(stderr.strip().splitlines()[-10:]))
    metrics = (best or {}).get("metrics", {})
    test_acc = metrics.get("test_acc")
    wall_ok = rc == 0 and wall <= WALL_LIMIT_S
    acc_ok = test_acc is not None and test_acc >= ACC_TARGET

    print()
    print(f"{'measure':<22} {'value':>12} {'target':>12}  check")
    print(f"{'wall time (s)':<22} {wall:12.1f} {'<= ' + format(WALL_LIMIT_S, '.0f'):>12}  "
          f"{'PASS' if wall_ok else 'FAIL'}")
    print(f"{'final test accuracy':<22} {(f'{test_acc:.4f}' if test_acc is not None else 'n/a'):>12} "
          f"{'>= ' + format(ACC_TARGET, '.2f'):>12}  {'PASS' if acc_ok else 'FAIL'}")
    print(f"{'trials complete':<22} {counts.get('complete', 0):12d}")
    print(f"{'trials failed':<22} {counts.get('failed', 0):12d}")
    if best:
        print(f"{'search valid_acc':<22} {metrics.get('valid_acc', float('nan')):12.4f}")
        print(f"best trial {best.get('trial')}: {best.get('arch')}")
    print(f"loadavg at end: {os.getloadavg()[0]:.2f}")
    verdict = "PASS" if wall_ok and acc_ok else "FAIL"
    print(f"ratio below = wall / {WALL_LIMIT_S:.0f} s; PASS needs it <= 1.0 and test_acc >= {ACC_TARGET}")
    print(f"RESULT main_job: {wall / WALL_LIMIT_S:.2f} (target <= 1.0) {verdict}")


if __name__ == "__main__":
    main()
