"""What a new user meets first: the CLI's conventions, progress that never goes silent, the resolved
config, ties broken towards smaller models, ``describe RUN`` and the Python API."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import archsearch
from archsearch.core import incumbent
from archsearch.errors import ConfigError
from conftest import TINY_ARGS, tiny_config


def test_ties_go_to_the_smaller_model_then_the_earlier_trial():
    f = {"epochs": 1}
    assert incumbent([(0, 0.9, f, 5000.0), (1, 0.9, f, 300.0), (2, 0.8, f, 10.0)]) == 1
    assert incumbent([(0, 0.9, f, 300.0), (1, 0.9, f, 300.0)]) == 0
    assert incumbent([(0, 0.9, f), (1, 0.9, f)]) == 0  # no sizes: the earlier


def test_every_command_has_help_with_h_and_no_type_placeholders(run_cli):
    from archsearch.cli import _command

    code, out, _ = run_cli("-h")
    assert code == 0 and "search" in out and "predict" in out and "export" in out
    code, out, _ = run_cli("--version")
    assert code == 0 and re.match(r"archsearch \d+\.\d+\.\d+ \(torch ", out)
    for name in _command().commands:
        code, out, err = run_cli(name, "-h")
        assert code == 0, (name, err)
        assert not re.search(r"<(str|int|float|bool|list\[str\])>", out), (name, out)
    code, out, _ = run_cli("search", "--help")
    text = " ".join(out.split())
    for shown in ("--budget BUDGET", "(default: 30, or no limit with --time)", "--time TIME", "(default: chain)",
                  "--set KEY=VALUE", "--out DIR"):
        assert shown in text, shown


def test_list_gives_one_line_descriptions(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0
    lines = out.splitlines()
    assert "spaces:" in lines and "executors:" in lines
    rows = [line.split(None, 1) for line in lines if line.startswith("  ")]
    assert {"chain", "evolution", "digits", "train", "inline", "darts"} <= {r[0] for r in rows}
    assert all(len(r) == 2 and len(r[1]) > 15 and "Helper class" not in r[1] for r in rows), rows


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from archsearch.cli import main

    out = str(tmp_path_factory.mktemp("usability") / "run")
    with pytest.raises(SystemExit) as exc:
        main(["search", "--out", out, "--budget", "2", *TINY_ARGS[:-1], "--set", "final.enabled=true",
              "--set", "final.epochs=2"])
    assert exc.value.code == 0
    return out


def test_progress_names_the_directory_first_and_never_goes_silent(run_cli, tmp_path):
    out = str(tmp_path / "run")
    code, stdout, err = run_cli("search", "--out", out, "--budget", "2", *TINY_ARGS[:-1], "--set", "final.enabled=true",
                                "--set", "final.epochs=2")
    assert code == 0, err
    assert err.splitlines()[0] == f"search directory: {out}"
    assert "final training ~" in err  # the ETA counts the final training
    assert "final training epoch   1/2" in err and "final training epoch   2/2" in err


def test_ctrl_c_names_the_real_directory(run_cli, tmp_path, monkeypatch):
    from archsearch.experiment import Experiment

    def interrupted(self, executor=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Experiment, "run", interrupted)
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--out", out, *TINY_ARGS)
    assert code == 130 and f"archsearch resume {out} continues" in err


def test_config_yaml_holds_every_resolved_option_and_the_real_data(tmp_path):
    from archsearch.config import read_yaml
    from conftest import synthetic_images

    run = str(tmp_path / "digits")
    archsearch.run_search(tiny_config(budget={"trials": 1}), run, quiet=True)
    cfg = read_yaml(open(os.path.join(run, "config.yaml")).read())
    assert cfg["space"]["reductions"] == 2 and cfg["evaluator"]["lr"] == 0.003 and cfg["evaluator"]["batch_size"] == 64
    assert cfg["strategy"]["survivor"] == "aging" and cfg["dataset"] == {"name": "digits", "path": None,
                                                                         "valid_fraction": 0.2, "test_fraction": 0.2}
    archsearch.Config.from_dict(cfg)  # it reads back as a config

    x, y = synthetic_images(60)
    run = str(tmp_path / "arrays")
    archsearch.run_search(tiny_config(budget={"trials": 1}), run, data=archsearch.from_arrays(x, y), quiet=True)
    text = open(os.path.join(run, "config.yaml")).read()
    assert "dataset: passed in memory from Python (arrays, 36 train / 12 valid / 12 test, input [1, 8, 8])" in text
    assert read_yaml(text)["dataset"]["name"] == "arrays"


def test_run_search_takes_a_plain_dict_and_search_takes_arrays(tmp_path):
    from sklearn.datasets import load_digits

    summary = archsearch.run_search({"space": {"name": "chain", "layers": 2, "channels": [8], "stem_channels": 8},
                                     "budget": {"trials": 1}, "fidelity": {"epochs": 1, "data_fraction": 0.3},
                                     "final": {"enabled": False}}, str(tmp_path / "dict"), quiet=True)
    assert summary.complete == 1 and summary.model_path is None
    with pytest.raises(ConfigError, match="config must be a mapping"):
        archsearch.run_search(["space"], str(tmp_path / "bad"))  # type: ignore[arg-type]
    digits = load_digits()
    summary = archsearch.search(data=(digits.images, digits.target), space={"name": "chain", "layers": 2,
                                "channels": [8], "stem_channels": 8}, budget=2, out=str(tmp_path / "api"),
                                fidelity={"epochs": 1}, final={"epochs": 1})
    assert summary.model_path == str(tmp_path / "api" / "best_model.pt")
    assert str(summary.best.arch) and 0 <= summary.final["metrics"]["test_acc"] <= 1
    with pytest.raises(ConfigError, match="unknown keyword 'epochs'"):
        archsearch.search(epochs=3)


def test_describe_a_run_uses_its_own_shape_and_show_keeps_architectures_whole(run_cli, finished_run):
    code, out, err = run_cli("describe", finished_run)
    assert code == 0, err
    assert "input   1x8x8, 10 classes" in out
    flops = re.search(r"FLOPs\s+([\d,]+)", out).group(1)
    arch = archsearch.load_model(finished_run).info["arch"]
    code, explicit, _ = run_cli("describe", "--space", "chain", "--arch", arch, "--input-shape", "1,8,8",
                                "--set", "space.channels=[8,16]", "--set", "space.stem_channels=8", "--set", "space.layers=2")
    assert re.search(r"FLOPs\s+([\d,]+)", explicit).group(1) == flops
    code, out, _ = run_cli("show", finished_run)
    assert code == 0
    assert any(arch in line for line in out.splitlines())  # piped: never broken mid-token
    code, _, err = run_cli("describe")
    assert code == 2 and "needs a search directory RUN, or --space and --arch" in err


def test_the_readme_python_examples_run_as_written(tmp_path, monkeypatch):
    """Every ```python block of the README, in order, in one namespace (so they cannot rot)."""
    readme = os.path.join(os.path.dirname(__file__), "..", "README.md")
    blocks = re.findall(r"```python\n(.*?)```", open(readme, encoding="utf-8").read(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert np.isfinite(namespace["logits"].detach().numpy()).all()


def test_a_search_keeps_its_report_and_report_writes_one_anywhere(run_cli, tmp_path):
    run = str(tmp_path / "run")
    archsearch.run_search(tiny_config(budget={"trials": 2}, report=True), run, quiet=True)
    page = open(os.path.join(run, "report.html"), encoding="utf-8").read()
    assert 'id="summary"' in page and 'id="curve"' in page and "the search is finished" in page
    assert 'http-equiv="refresh"' not in page  # done: it stops reloading
    out = str(tmp_path / "elsewhere" / "page.html")
    os.makedirs(os.path.dirname(out))
    code, stdout, err = run_cli("report", run, "--out", out)
    assert code == 0, err
    assert os.path.isfile(out) and stdout.strip() == f"report written to {out}"
    code, _, err = run_cli("report", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error: ") and "not a search directory" in err
