"""End-to-end: the CLI on digits at tiny fidelity, and kill -9 + resume through a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from archsearch.data import load_splits
from archsearch.estimation import evaluate_model
from archsearch.experiment import load_checkpoint
from conftest import TINY_ARGS, journal_rows



@pytest.mark.slow
def test_search_show_and_checkpoint(run_cli, tmp_path):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--out", out, "--budget", "4", "--strategy", "evolution", "--seed", "1",
                           "--set", "strategy.population_size=2", "--set", "strategy.sample_size=2",
                           *TINY_ARGS, "--set", "final.enabled=true", "--set", "final.epochs=2")
    assert code == 0, err
    for name in ("journal.sqlite", "config.yaml", "best.json", "best_model.pt"):
        assert os.path.isfile(os.path.join(out, name)), name
    best = json.load(open(os.path.join(out, "best.json")))
    assert set(best) >= {"arch", "metrics"} and 0.0 <= best["metrics"]["test_acc"] <= 1.0

    # the checkpoint is self-describing and loads without unpickling code
    raw = torch.load(os.path.join(out, "best_model.pt"), weights_only=True)
    assert raw["arch"] == best["arch"] and raw["space"] == "chain" and "state_dict" in raw
    model, ckpt = load_checkpoint(os.path.join(out, "best_model.pt"))
    splits = load_splits({"name": "digits"}, seed=1)
    acc, _ = evaluate_model(model, splits.test, torch.device("cpu"))
    assert acc == pytest.approx(best["metrics"]["test_acc"])

    code, stdout, _ = run_cli("show", out, "--json")
    data = json.loads(stdout)
    assert len(data["trials"]) == 4 and data["best"]["arch"] == best["arch"]
    for t in data["trials"]:
        assert {"number", "state", "arch", "metrics"} <= set(t) and t["state"] == "complete"
    assert data["best"]["reward"] == max(t["metrics"]["valid_acc"] for t in data["trials"])

    png = str(tmp_path / "curve.png")
    code, stdout, _ = run_cli("show", out, "--plot", png)
    assert code == 0 and "best: trial" in stdout
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    code, stdout, _ = run_cli("list")
    assert code == 0 and "spaces:" in stdout and "  chain " in stdout and "  ray " in stdout and "  digits " in stdout


@pytest.mark.slow
def test_failures_are_recorded_and_stop_the_search_at_max_failures(run_cli, tmp_path):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--out", out, "--budget", "5", *TINY_ARGS, "--set", "evaluator.lr=1e30",
                           "--set", "evaluator.optimizer=sgd", "--set", "budget.max_failures=2",
                           "--set", "space.ops=[conv]")
    assert code == 1
    assert "search stopped: 2 trials failed (budget.max_failures=2)" in err and "not finite" in err
    rows = journal_rows(out)
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert all("not finite" in r["error"] for r in rows)

    # resume may raise the limit (how the search runs) but not change what it searches
    code, _, err = run_cli("resume", out, "--set", "space.layers=3")
    assert code == 2 and "resume can change only budget.*, executor.*" in err
    code, _, err = run_cli("resume", out, "--quiet", "--set", "budget.max_failures=3")
    assert code == 1 and "search stopped: 3 trials failed (budget.max_failures=3)" in err
    assert [r["state"] for r in journal_rows(out)] == ["failed"] * 3
    assert "max_failures: 3" in open(os.path.join(out, "config.yaml")).read()


@pytest.mark.slow
def test_same_seed_same_search(tmp_path):
    from archsearch.experiment import run_search
    from conftest import tiny_config

    cfg = dict(strategy={"name": "evolution", "population_size": 2, "sample_size": 2}, seed=7)
    a = run_search(tiny_config(**cfg), str(tmp_path / "a"), quiet=True)
    b = run_search(tiny_config(**cfg), str(tmp_path / "b"), quiet=True)
    ra, rb = journal_rows(a.out_dir), journal_rows(b.out_dir)
    assert [(r["arch"], r["reward"]) for r in ra] == [(r["arch"], r["reward"]) for r in rb]


@pytest.mark.slow
def test_kill_9_then_resume_finishes_exactly_the_budget(tmp_path):
    budget = 8
    args = ["--budget", str(budget), "--strategy", "evolution", "--seed", "3",
            "--set", "strategy.population_size=3", "--set", "strategy.sample_size=2", *TINY_ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "archsearch", "search"]

    reference = str(tmp_path / "reference")
    subprocess.run(cmd + ["--out", reference, *args], check=True, env=env, timeout=300, capture_output=True)
    ref_rows = journal_rows(reference)

    out = str(tmp_path / "killed")
    proc = subprocess.Popen(cmd + ["--out", out, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    killed_mid_trial = False
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(out, "journal.sqlite")):
            try:
                states = [r["state"] for r in journal_rows(out)]
            except sqlite3.OperationalError:
                states = []
            if states.count("complete") >= 3 and "running" in states:
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_trial = True
                break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed_mid_trial, "the search finished before it could be killed"
    before = journal_rows(out)
    assert sum(r["state"] == "complete" for r in before) < budget
    interrupted = [r["number"] for r in before if r["state"] == "running"]

    result = subprocess.run([sys.executable, "-m", "archsearch", "resume", out, "--quiet"], env=env,
                            timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    after = journal_rows(out)
    complete = [r for r in after if r["state"] == "complete"]
    assert len(complete) == budget and len(after) == budget
    # trials finished before the kill were kept as they were, not evaluated again
    for old in before:
        if old["state"] == "complete":
            new = after[old["number"]]
            assert (new["reward"], new["attempts"], new["finished_at"]) == (old["reward"], 1, old["finished_at"])
    # the trial cut off by the kill ran again
    assert interrupted and all(after[n]["attempts"] == 2 for n in interrupted)
    # and the whole search is the one an uninterrupted run with the same seed performs
    assert [(r["arch"], r["reward"]) for r in after] == [(r["arch"], r["reward"]) for r in ref_rows]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_process_workers_die_with_a_killed_driver(tmp_path):
    out = str(tmp_path / "run")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "archsearch", "search", "--out", out, "--executor", "process",
                             "--workers", "2", "--budget", "50", *TINY_ARGS], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(p) for p in found
                   if "spawn_main" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")]
    assert len(workers) == 2, "the pool's workers did not start"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")
             and open(f"/proc/{w}/stat").read().split()[2] != "Z"]
    assert not alive, f"orphaned workers still running: {alive}"
