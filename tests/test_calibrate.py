"""The trust meter (archsearch calibrate): rank correlations, bootstrap intervals, dropped
failures, the plot, and bad input. Tables with a known monotone relation pin the correlation
exactly; the training path runs at tiny fidelities on digits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from archsearch.calibrate import bootstrap, calibrate, rank_correlations, sample_distinct
from archsearch.core import Fidelity, Task
from archsearch.errors import ConfigError, SearchAborted
from archsearch.estimation.base import count_params
from archsearch.estimation.tabular import TabularEvaluator
from archsearch.spaces import create_space
from test_bad_input import assert_one_line_error

TINY_SPACE = ["--set", "space.layers=2", "--set", "space.channels=[8,16]", "--set", "space.stem_channels=8"]


def write_table(path, n: int = 12, extra_rows: tuple[str, ...] = (), seed: int = 0) -> list[str]:
    """A table of ``n`` distinct chain architectures: reward ``acc``; ``mono`` an increasing and
    ``anti`` a decreasing function of it; ``params`` the real parameter count at 1x8x8, 10 classes."""
    space = create_space("chain")
    archs = sample_distinct(space, n, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    acc = rng.permutation(n) / n + rng.uniform(0, 0.01, n)  # distinct rewards
    lines = ["arch,acc,mono,anti,params"]
    task = Task((1, 8, 8), 10)
    for arch, a in zip(archs, acc):
        params = count_params(space.build(arch, task))
        lines.append(f"{arch},{a:.6f},{math.exp(3 * a):.6f},{-a ** 3:.6f},{params}")
    lines.extend(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return [str(a) for a in archs]


@pytest.mark.parametrize("column, expected", [("mono", 1.0), ("anti", -1.0)])
def test_a_monotone_column_gives_a_perfect_rank_correlation(tmp_path, column, expected):
    write_table(tmp_path / "t.csv")
    ev = TabularEvaluator(table=str(tmp_path / "t.csv"), reward="acc")
    result = calibrate(create_space("chain"), ev, k=8, seed=0, low_column=column, resamples=200)
    assert len(result.archs) == 8 and result.failures == 0
    assert result.spearman.estimate == pytest.approx(expected)
    assert result.kendall.estimate == pytest.approx(expected)
    # every resample of a perfectly ordered sample is perfectly ordered too
    assert result.spearman.ci_low == pytest.approx(expected) and result.spearman.ci_high == pytest.approx(expected)
    assert result.passed is (expected >= 0.6)
    assert result.verdict.startswith("trust" if expected > 0 else "do not trust")
    # the pairs are the table's own values
    table = ev.table()
    for arch, low, high in result.pairs:
        assert table.rows[arch][column] == low and table.rows[arch]["acc"] == high


def test_proxy_against_a_table_column_it_predicts_exactly(run_cli, tmp_path):
    """``params`` of the built network vs a reward that *is* the parameter count: rho = 1."""
    write_table(tmp_path / "t.csv", n=8)
    code, out, err = run_cli("calibrate", "--evaluator", "tabular", "--table", str(tmp_path / "t.csv"),
                             "--reward", "params", "--proxy", "params", "--k", "8", "--resamples", "100",
                             "--set", "evaluator.input_shape=[1,8,8]", "--json", "--quiet")
    assert code == 0, err
    report = json.loads(out)
    assert report["spearman"]["estimate"] == pytest.approx(1.0)
    assert report["low"] == "params" and report["high"] == "params" and report["passed"] is True
    assert [p["low"] for p in report["pairs"]] == [p["high"] for p in report["pairs"]]


def test_cli_table_anti_monotone_exits_0_with_the_verdict_and_writes_plot_and_report(run_cli, tmp_path):
    write_table(tmp_path / "t.csv")
    plot, out = tmp_path / "c.png", tmp_path / "c.json"
    code, stdout, err = run_cli("calibrate", "--evaluator", "tabular", "--table", str(tmp_path / "t.csv"),
                                "--reward", "acc", "--low-column", "anti", "--k", "6", "--plot", str(plot),
                                "--out", str(out), "--quiet")
    assert code == 0, err  # a measurement: a bad correlation is not an error
    assert "Spearman rho" in stdout and "-1.000" in stdout
    assert "verdict: do not trust anti" in stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(out.read_text())
    assert report["spearman"]["estimate"] == pytest.approx(-1.0) and len(report["pairs"]) == 6


def test_failed_architectures_are_dropped_and_counted(tmp_path):
    write_table(tmp_path / "t.csv", n=6, extra_rows=("not-an-architecture,0.5,1.0,-0.1,10",))
    ev = TabularEvaluator(table=str(tmp_path / "t.csv"), reward="acc")
    result = calibrate(create_space("chain"), ev, k=7, seed=0, low_column="mono", resamples=50)
    assert result.failures == 1 and len(result.archs) == 6
    assert result.errors[0].startswith("not-an-architecture: ")
    assert result.spearman.estimate == pytest.approx(1.0)


def test_too_few_completed_pairs_abort(run_cli, tmp_path):
    write_table(tmp_path / "t.csv", n=2, extra_rows=("junk1,0.5,1.0,-0.1,10", "junk2,0.6,1.1,-0.2,11"))
    with pytest.raises(SearchAborted, match="only 2 of 4"):
        calibrate(create_space("chain"), TabularEvaluator(table=str(tmp_path / "t.csv"), reward="acc"),
                  k=4, low_column="mono")
    code, _, err = run_cli("calibrate", "--evaluator", "tabular", "--table", str(tmp_path / "t.csv"),
                           "--reward", "acc", "--low-column", "mono", "--k", "4", "--quiet")
    assert code == 1 and err.startswith("error: calibration aborted")


def test_the_sample_is_seeded(tmp_path):
    write_table(tmp_path / "t.csv", n=12)
    ev = TabularEvaluator(table=str(tmp_path / "t.csv"), reward="acc")
    space = create_space("chain")
    a = calibrate(space, ev, k=5, seed=3, low_column="mono", resamples=20)
    b = calibrate(space, ev, k=5, seed=3, low_column="mono", resamples=20)
    c = calibrate(space, ev, k=5, seed=4, low_column="mono", resamples=20)
    assert a.archs == b.archs and a.archs != c.archs
    drawn = sample_distinct(space, 20, np.random.default_rng(0))
    assert len({str(x) for x in drawn}) == 20


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=1.0, size=30)
    rho, tau = bootstrap(x, y, resamples=300, seed=1)
    again = bootstrap(x, y, resamples=300, seed=1)
    other = bootstrap(x, y, resamples=300, seed=2)
    assert (rho, tau) == again and rho != other[0]
    expected_rho, expected_tau = rank_correlations(x, y)
    assert rho.estimate == expected_rho and tau.estimate == expected_tau
    for c in (rho, tau):
        assert -1 <= c.ci_low < c.estimate < c.ci_high <= 1
    # a narrower confidence level gives a narrower interval inside the wider one
    narrow, _ = bootstrap(x, y, resamples=300, confidence=0.5, seed=1)
    assert rho.ci_low < narrow.ci_low < narrow.ci_high < rho.ci_high
    # a constant side has no rank correlation
    flat = bootstrap(x, np.ones(30), resamples=10)
    assert math.isnan(flat[0].estimate) and math.isnan(flat[0].ci_low)


def test_training_low_vs_high_fidelity_on_digits(run_cli, tmp_path):
    plot, out = tmp_path / "c.png", tmp_path / "c.json"
    code, stdout, err = run_cli("calibrate", "--space", "chain", *TINY_SPACE, "--dataset", "digits", "--k", "4",
                                "--low-epochs", "1", "--low-data-fraction", "0.1", "--high-epochs", "2",
                                "--high-data-fraction", "0.2", "--resamples", "200", "--seed", "1",
                                "--plot", str(plot), "--out", str(out), "--quiet")
    assert code == 0, err
    assert "verdict: " in stdout and "4 of 4" in stdout
    report = json.loads(out.read_text())
    assert report["low"] == "valid_acc @ 1 epoch, 10% data" and report["high"] == "valid_acc @ 2 epochs, 20% data"
    assert len(report["pairs"]) == 4 and report["failures"] == 0
    assert len({p["arch"] for p in report["pairs"]}) == 4
    for p in report["pairs"]:
        assert 0 <= p["low"] <= 1 and 0 <= p["high"] <= 1
    rho = report["spearman"]
    lows, highs = [p["low"] for p in report["pairs"]], [p["high"] for p in report["pairs"]]
    assert rho["estimate"] == pytest.approx(rank_correlations(lows, highs)[0])
    assert rho["ci_low"] <= rho["estimate"] <= rho["ci_high"]
    assert report["low_cost"] > 0 and report["high_cost"] > 0
    assert plot.stat().st_size > 1000


def test_training_with_a_proxy_scores_the_same_architectures(tmp_path):
    from archsearch.estimation.training import TrainingEvaluator

    space = create_space("chain", layers=2, channels=[8, 16], stem_channels=8)
    ev = TrainingEvaluator({"name": "digits"})
    result = calibrate(space, ev, None, Fidelity(epochs=1, data_fraction=0.1), k=3, seed=0, proxy="params",
                       resamples=20)
    assert result.low_name == "params" and len(result.archs) == 3
    expected = [count_params(space.build(space.parse(a), ev.task())) for a in result.archs]
    assert result.low == expected


@pytest.mark.parametrize("args, needle", [
    (["--k", "2"], "--k must be an integer >= 3"),
    (["--low-epochs", "0"], "--low-epochs must be an integer >= 1"),
    (["--low-data-fraction", "1.5"], "--low-data-fraction must be in (0, 1]"),
    (["--proxy", "magic"], "magic"),
    (["--threshold", "2"], "--threshold must be a number in [-1, 1]"),
    (["--plot", "c.txt"], "must end in .png"),
    (["--evaluator", "proxy"], "calibrate --evaluator must be one of: train, tabular"),
    (["--evaluator", "tabular"], "needs a table"),
    (["--low-column", "x"], "--low-column needs --evaluator tabular"),
    (["--set", "strategy.x=1"], "calibrate --set takes space.KEY=VALUE"),
    (["--set", "evaluator.lr=-1"], "evaluator.lr must be a positive number"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--space", "resnet"], "unknown space 'resnet'"),
    (["--k", "many"], "Invalid value for '--k'"),
])
def test_bad_input_is_one_line_exit_2(run_cli, args, needle):
    code, _, err = run_cli("calibrate", "--quiet", *args)
    assert_one_line_error(code, err, needle)


@pytest.mark.parametrize("args, needle", [
    (["--low-column", "nope"], "--low-column: the table has no numeric column 'nope'"),
    ([], "give either --low-column COLUMN or --proxy NAME"),
    (["--low-column", "mono", "--proxy", "params"], "give either --low-column COLUMN or --proxy NAME"),
])
def test_bad_table_input_is_one_line_exit_2(run_cli, tmp_path, args, needle):
    write_table(tmp_path / "t.csv", n=4)
    code, _, err = run_cli("calibrate", "--evaluator", "tabular", "--table", str(tmp_path / "t.csv"),
                           "--reward", "acc", "--quiet", *args)
    assert_one_line_error(code, err, needle)


def test_api_checks_its_numbers():
    with pytest.raises(ConfigError, match="--workers"):
        calibrate(create_space("chain"), TabularEvaluator.__new__(TabularEvaluator), k=3, workers=0)
