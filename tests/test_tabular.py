"""Tabular evaluation and the benchmark harness, on tables the tests write (and NB201's when present)."""

from __future__ import annotations

import csv
import itertools
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from archsearch.benchmark import RunSpec, benchmark, run_one
from archsearch.errors import DataError
from archsearch.estimation.tabular import TabularEvaluator, load_table
from archsearch.spaces import create_space

OPS = ["none", "skip_connect", "nor_conv_3x3"]
SPACE_ARGS = ["--space", "nb201", "--set", f"space.ops={json.dumps(OPS)}"]
NB201_CSV = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nb201" / "nb201_12epoch.csv"


def write_table(path: Path, drop: int = 0) -> dict[str, dict[str, float]]:
    """All 729 cells of a 3-op NB201 space; valid = a smooth function of the ops, test = valid + noise."""
    space = create_space("nb201", ops=OPS)
    rng = np.random.default_rng(0)
    rows = {}
    for idx in itertools.product(range(3), repeat=6):
        arch = space.decode(list(idx))
        valid = 50.0 + 5.0 * sum(idx) + rng.normal(0, 0.5)
        rows[str(arch)] = {"valid": valid, "test": valid + rng.normal(0, 1.0), "seconds": 10.0 + sum(idx)}
    keys = list(rows)[drop:]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "valid", "test", "seconds", "note"])
        for k in keys:
            w.writerow([k, rows[k]["valid"], rows[k]["test"], rows[k]["seconds"], "x"])
    return {k: rows[k] for k in keys}


def test_search_with_the_tabular_evaluator_reads_the_table(run_cli, tmp_path):
    rows = write_table(tmp_path / "t.csv")
    code, _, err = run_cli("search", *SPACE_ARGS, "--table", str(tmp_path / "t.csv"), "--reward", "valid",
                           "--set", "evaluator.cost_column=seconds", "--strategy", "evolution", "--budget", "30",
                           "--seed", "2", "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0, err
    db = sqlite3.connect(tmp_path / "run" / "journal.sqlite")
    trials = db.execute("SELECT arch, metrics, reward, cost, state FROM trials").fetchall()
    assert len(trials) == 30 and all(t[4] == "complete" for t in trials)
    for arch, metrics, reward, cost, _ in trials:
        measured = json.loads(metrics)
        assert measured.pop("cpu_s") >= 0  # what the trial used (the memory figures on Linux only)
        assert measured.pop("peak_rss_mb", 0) >= 0 and measured.pop("trial_rss_mb", 0) >= 0
        assert measured == rows[arch] and reward == rows[arch]["valid"]
        assert cost == rows[arch]["seconds"]  # the table's cost column is the trial's cost
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["metrics"]["valid"] == max(t[2] for t in trials)
    assert not (tmp_path / "run" / "best_model.pt").exists()  # nothing was trained


def test_an_architecture_missing_from_the_table_fails_its_trial_clearly(tmp_path):
    rows = write_table(tmp_path / "t.csv", drop=100)
    space = create_space("nb201", ops=OPS)
    ev = TabularEvaluator(table=str(tmp_path / "t.csv"), reward="valid")
    missing = space.decode([0] * 6)
    assert str(missing) not in rows
    from archsearch.core import Fidelity, TrialState
    from archsearch.estimation import run_trial

    result = run_trial(ev, space, missing, Fidelity(1), 0)
    assert result.status is TrialState.FAILED
    assert f"is not in the table {tmp_path / 't.csv'}" in result.error and "Traceback" not in result.error


@pytest.mark.parametrize("content, args, message", [
    (None, ["--reward", "valid"], "table not found"),
    ("arch,valid\n", ["--reward", "valid"], "has a header but no rows"),
    ("name,valid\nx,1\n", ["--reward", "valid"], "has no column 'arch' (columns: name, valid)"),
    ("arch,valid\nx,1\nx,2\n", ["--reward", "valid"], "appears twice"),
    ("arch,valid\nx,1,3\n", ["--reward", "valid"], "line 2: 3 fields, the header has 2"),
    ("arch,valid,test\nx,1,2\n", ["--reward", "nope"], "no numeric column 'nope' (valid: valid, test)"),
    ("arch,valid\nx,1\n", [], "needs a reward column"),
])
def test_bad_tables_are_one_line_exit_2(run_cli, tmp_path, content, args, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    code, _, err = run_cli("search", *SPACE_ARGS, "--table", str(path), *args, "--out", str(tmp_path / "r"),
                           "--quiet")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_benchmark_picks_the_best_of_the_first_b_queries_and_is_deterministic(run_cli, tmp_path):
    rows = write_table(tmp_path / "t.csv")
    out1, out2 = tmp_path / "a.csv", tmp_path / "b.csv"
    args = ["benchmark", "--table", str(tmp_path / "t.csv"), "--reward", "valid", "--strategies", "random,evolution",
            "--budgets", "5,20", "--seeds", "3", "--set", f"space.ops={json.dumps(OPS)}",
            "--set", "evolution.population_size=5", "--set", "evolution.sample_size=2"]
    code, out, err = run_cli(*args, "--out", str(out1), "--quiet")
    assert code == 0, err
    assert "test mean ± std" in out and "reference: best valid in the table" in out
    code, _, err = run_cli(*args, "--out", str(out2), "--workers", "2", "--quiet")
    assert code == 0, err
    a = list(csv.DictReader(open(out1)))
    b = list(csv.DictReader(open(out2)))
    assert len(a) == 2 * 3 * 2
    assert [(r["strategy"], r["seed"], r["budget"], r["arch"]) for r in a] == \
           [(r["strategy"], r["seed"], r["budget"], r["arch"]) for r in b]
    assert set(a[0]) >= {"strategy", "seed", "budget", "arch", "reward", "test", "seconds"}
    run = run_one(RunSpec("nb201", {"ops": OPS}, str(tmp_path / "t.csv"), "arch", "valid", "evolution",
                          {"population_size": 5, "sample_size": 2}, 1, 20))
    for row in a:
        if row["strategy"] == "evolution" and row["seed"] == "1":
            b_ = int(row["budget"])
            assert float(row["reward"]) == max(run.rewards[:b_])
            assert float(row["test"]) == rows[row["arch"]]["test"]


def test_benchmark_bad_input(run_cli, tmp_path):
    write_table(tmp_path / "t.csv")
    base = ["benchmark", "--table", str(tmp_path / "t.csv"), "--reward", "valid", "--out", str(tmp_path / "o.csv"),
            "--set", f"space.ops={json.dumps(OPS)}"]
    for extra, message in ((["--strategies", "random,annealing"], "unknown strategy 'annealing'"),
                           (["--strategies", "random", "--budgets", "10,x"], "--budgets expects"),
                           (["--strategies", "random", "--seeds", "0"], "--seeds must be"),
                           (["--set", "tpe2.x=1", "--strategies", "random"], "not in --strategies"),
                           (["--strategies", "random", "--report", "nope"],
                            "--report: the table has no numeric column 'nope'")):
        code, _, err = run_cli(*base, *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(DataError, match="is not in the table"):  # a table of another space
        run_one(RunSpec("nb201", {}, str(tmp_path / "t.csv"), "arch", "valid", "random", {}, 0, 200))


@pytest.mark.skipif(not NB201_CSV.exists(), reason="NAS-Bench-201 table not present (../shared is absent)")
def test_nb201_table_random_search_matches_the_published_reference():
    table = load_table(str(NB201_CSV))
    assert len(table.rows) == 15625
    assert table.rows[table.best("cifar10_valid_acc")[0]]["cifar10_test_acc"] == pytest.approx(89.03)
    rows = benchmark("nb201", str(NB201_CSV), "cifar10_valid_acc", ["random"], [100], 40, "")
    mean = np.mean([r["cifar10_test_acc"] for r in rows])
    assert 87.7 < mean < 88.4  # the reference: about 88.06 at 100 queries


def test_an_exhausted_grid_ends_the_search_normally(run_cli, tmp_path):
    write_table(tmp_path / "t.csv")
    code, _, err = run_cli("search", *SPACE_ARGS, "--set", 'space.ops=["none", "skip_connect"]', "--table",
                           str(tmp_path / "t.csv"), "--reward", "valid", "--strategy", "grid", "--budget", "100",
                           "--out", str(tmp_path / "g"), "--quiet")
    assert code == 0, err
    db = sqlite3.connect(tmp_path / "g" / "journal.sqlite")
    archs = [a for (a,) in db.execute("SELECT arch FROM trials WHERE state = 'complete'")]
    assert len(archs) == len(set(archs)) == 64  # every cell of the 2-op space once, then a clean stop
    assert json.loads((tmp_path / "g" / "best.json").read_text())["arch"] in archs
