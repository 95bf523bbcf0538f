"""Bad input of every kind: one line on stderr naming the problem (and the valid choices), exit 2,
no traceback, and nothing already stored is lost."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import TINY_ARGS, cli_subprocess


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("args, needles", [
    (["--space", "resnet"], ["unknown space 'resnet'", "valid: chain"]),
    (["--strategy", "anneal"], ["unknown strategy 'anneal'", "valid: bananas, bohb, darts, enas, evolution, gdas, grid, hyperband, local_search, nsga2, prefilter, random, reinforce, spos, successive_halving, tpe, warm_start"]),
    (["--executor", "slurm"], ["unknown executor 'slurm'", "valid: inline, process, ray"]),
    (["--dataset", "imagenet"], ["unknown dataset 'imagenet'", "digits"]),
    (["--set", "evaluator.name=oracle"], ["unknown evaluator 'oracle'", "valid: proxy, tabular, train"]),
])
def test_unknown_names_list_the_valid_ones(run_cli, tmp_path, args, needles):
    code, _, err = run_cli("search", "--out", str(tmp_path / "o"), *args)
    assert_one_line_error(code, err, *needles)
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("args, needle", [
    (["--budget", "0"], "budget.trials must be an integer >= 1"),
    (["--budget", "many"], "Invalid value for '--budget'"),
    (["--data-fraction", "1.5"], "fidelity.data_fraction must be in (0, 1]"),
    (["--epochs", "0"], "fidelity.epochs must be an integer >= 1"),
    (["--workers", "0"], "executor.workers must be an integer >= 1"),
    (["--seed", "-1"], "seed must be a non-negative integer"),
    (["--set", "strategy.population_size=1"], "strategy.population_size must be an integer >= 2"),
    (["--set", "space.layers=1000"], "space.layers must be an integer in [1, 64], got 1000"),
    (["--set", "evaluator.lr=-1"], "evaluator.lr must be a positive number"),
    (["--set", "dataset.valid_fraction=2"], "dataset.valid_fraction must be a number in (0, 1)"),
    (["--set", "novalue"], "--set expects KEY=VALUE"),
    (["--executor", "inline", "--workers", "2"], "runs one trial at a time"),
])
def test_out_of_range_numbers(run_cli, tmp_path, args, needle):
    code, _, err = run_cli("search", "--out", str(tmp_path / "o"), *args)
    assert_one_line_error(code, err, needle)


def test_bad_configs(run_cli, tmp_path):
    code, _, err = run_cli("search", "--config", str(tmp_path / "nope.yaml"))
    assert_one_line_error(code, err, "config file not found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {name: chain\nbudget: [")
    code, _, err = run_cli("search", "--config", str(bad))
    assert_one_line_error(code, err, "is not valid YAML", "line")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("seed: 1\nbudgit: {trials: 3}\n")
    code, _, err = run_cli("search", "--config", str(unknown))
    assert_one_line_error(code, err, "unknown config key 'budgit'", "valid: seed, space")
    unknown_opt = tmp_path / "opt.yaml"
    unknown_opt.write_text("strategy: {name: evolution, populaton_size: 3}\n")
    code, _, err = run_cli("search", "--config", str(unknown_opt))
    assert_one_line_error(code, err, "unknown option 'populaton_size' for strategy 'evolution'",
                          "population_size")
    unknown_opt.write_text("budget: {trails: 2}\n")
    code, _, err = run_cli("search", "--config", str(unknown_opt))
    assert_one_line_error(code, err, "unknown key budget.trails", "valid: trials, time, max_failures")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("- just\n- a list\n")
    code, _, err = run_cli("search", "--config", str(scalar))
    assert_one_line_error(code, err, "must be a YAML mapping")


def test_bad_data(run_cli, tmp_path):
    code, _, err = run_cli("search", "--out", str(tmp_path / "o"), "--dataset", "mnist:" + str(tmp_path / "none"))
    assert_one_line_error(code, err, "data folder not found")
    x = np.random.rand(20, 1, 8, 8).astype(np.float32)
    y = np.arange(20) % 2
    cases = {
        "nan.npz": dict(x=np.where(x > 0.9, np.nan, x), y=y),
        "shape.npz": dict(x=x, y=y[:10]),
        "labels.npz": dict(x=x, y=y - 1),
        "nox.npz": dict(images=x, y=y),
    }
    needles = {"nan.npz": "NaN", "shape.npz": "20 images but 10 labels", "labels.npz": "labels must be >= 0",
               "nox.npz": "needs arrays 'x' and 'y'"}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        code, _, err = run_cli("search", "--out", str(tmp_path / name / "o"), "--dataset", str(tmp_path / name))
        assert_one_line_error(code, err, needles[name])
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run_cli("search", "--out", str(tmp_path / "o"), "--dataset", str(tmp_path / "notes.txt"))
    assert_one_line_error(code, err, "cannot tell the data format")
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=np.array([{"a": 1}] * 3, dtype=object), y=np.arange(3))
    code, _, err = run_cli("search", "--out", str(tmp_path / "o"), "--dataset", str(pickled))
    assert_one_line_error(code, err, "cannot read")


def test_bad_journals_are_refused_and_left_untouched(run_cli, tmp_path):
    code, _, err = run_cli("resume", str(tmp_path / "missing"))
    assert_one_line_error(code, err, "no search directory")
    code, _, err = run_cli("show", str(tmp_path / "missing"))
    assert_one_line_error(code, err, "no search directory")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    journal = corrupt / "journal.sqlite"
    journal.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    before = journal.read_bytes()
    for cmd in ("resume", "show"):
        code, _, err = run_cli(cmd, str(corrupt))
        assert_one_line_error(code, err, "journal")
    assert journal.read_bytes() == before


@pytest.mark.slow
def test_an_existing_search_is_never_overwritten(run_cli, tmp_path):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--out", out, "--budget", "1", *TINY_ARGS)
    assert code == 0, err
    journal = os.path.join(out, "journal.sqlite")
    before = open(journal, "rb").read()
    code, _, err = run_cli("search", "--out", out, "--budget", "1", *TINY_ARGS)
    assert_one_line_error(code, err, "already holds a search", "archsearch resume")
    assert open(journal, "rb").read() == before


def test_debug_shows_the_traceback():
    plain = cli_subprocess("search", "--space", "resnet", timeout=120)
    assert_one_line_error(plain.returncode, plain.stderr, "unknown space")
    debug = cli_subprocess("search", "--space", "resnet", "--debug", timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UnknownNameError" in debug.stderr


def test_architecture_strings_are_parse_errors_not_crashes():
    from archsearch.errors import ParseError
    from archsearch.spaces import create_space

    space = create_space("chain", layers=2)
    for text in ("", "   ", "conv", "conv:3:32:relu|", "conv:3:32:relu|conv:3:32:nope", "||||"):
        with pytest.raises(ParseError):
            space.parse(text)
    with pytest.raises(ParseError, match="malformed 'chain' architecture JSON"):
        space.from_dict({"layerz": []})


@pytest.mark.slow
def test_a_bad_resume_option_changes_nothing(run_cli, tmp_path):
    out = str(tmp_path / "run")
    assert run_cli("search", "--out", out, "--budget", "1", *TINY_ARGS)[0] == 0
    config = open(os.path.join(out, "config.yaml")).read()
    code, _, err = run_cli("resume", out, "--set", "executor.workers=0")
    assert_one_line_error(code, err, "executor.workers must be an integer >= 1")
    assert open(os.path.join(out, "config.yaml")).read() == config
    code, _, err = run_cli("resume", out, "--quiet")  # the stored config was not changed
    assert code == 0, err


@pytest.mark.parametrize("yaml_text, args, needle", [
    ("executor: 5\n", [], "'executor' must be a mapping"),
    ("budget: 5\n", ["--budget", "1"], "'budget' must be a mapping"),
])
def test_malformed_sections(run_cli, tmp_path, yaml_text, args, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    code, _, err = run_cli("search", "--config", str(cfg), "--out", str(tmp_path / "o"), *args)
    assert_one_line_error(code, err, needle)


def test_bad_output_and_plot_paths(run_cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run_cli("search", "--out", str(afile))
    assert_one_line_error(code, err, "cannot create the output directory")
    code, _, err = run_cli("search", "--set", "evaluator.device=cuda:x", "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "evaluator.device must be one of auto, cpu")
