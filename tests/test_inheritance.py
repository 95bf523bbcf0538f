"""Weight inheritance: a child starts from its parent's trained weights where shapes match."""

from __future__ import annotations

import glob
import json
import os
import sqlite3

import pytest
import torch

from archsearch.core import Fidelity, Task
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.estimation.inheritance import inherit_weights
from archsearch.experiment import run_search
from archsearch.spaces import create_space
from conftest import TINY_ARGS, tiny_config
from conftest import journal_rows as _rows

FID = Fidelity(epochs=1, data_fraction=0.3)
SPACE_OPTS = {"layers": 3, "channels": [8, 16], "kernels": [3, 5], "stem_channels": 8}
PARENT = "conv:3:8:relu|conv:3:16:relu|conv:3:8:relu"
CHILD = "conv:3:8:relu|conv:5:16:relu|conv:3:8:relu"  # the middle conv's kernel changed: 3x3 -> 5x5


def _space():
    return create_space("chain", **SPACE_OPTS)


def _changed_key(space, task: Task) -> str:
    """The one state-dict entry whose shape differs between PARENT and CHILD."""
    parent = space.build(space.parse(PARENT), task).state_dict()
    child = space.build(space.parse(CHILD), task).state_dict()
    assert parent.keys() == child.keys()
    diff = [k for k in parent if parent[k].shape != child[k].shape]
    assert len(diff) == 1
    return diff[0]


def test_matching_tensors_are_copied_and_the_changed_layer_is_not():
    space = _space()
    evaluator = TrainingEvaluator(inherit=True)
    task = evaluator.task(FID)
    parent_result = evaluator.evaluate(space, space.parse(PARENT), FID, seed=0)
    weights = parent_result.weights
    assert weights is not None and all(t.device.type == "cpu" for t in weights.values())
    assert parent_result.metrics["inherited"] == 0.0  # no parent: trained from scratch

    changed = _changed_key(space, task)
    torch.manual_seed(123)
    child = space.build(space.parse(CHILD), task)
    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    fraction = inherit_weights(child, weights)
    state = child.state_dict()
    for name, tensor in state.items():
        if name == changed:
            assert tensor.shape != weights[name].shape and torch.equal(tensor, fresh[name])
        else:
            assert torch.equal(tensor, weights[name]), name
    total = sum(p.numel() for p in child.parameters())
    assert fraction == pytest.approx(1 - state[changed].numel() / total)
    assert 0 < fraction < 1

    # the same architecture inherits everything
    same = space.build(space.parse(PARENT), task)
    assert inherit_weights(same, weights) == pytest.approx(1.0)


def test_child_trial_reports_inherited_and_trains_inherit_epochs_deterministically():
    space = _space()
    parent = TrainingEvaluator(inherit=True).evaluate(space, space.parse(PARENT), FID, seed=0)
    evaluator = TrainingEvaluator(inherit=True, inherit_epochs=2)
    fid = Fidelity(epochs=3, data_fraction=0.3)
    first = run_trial(evaluator, space, space.parse(CHILD), fid, 5, init=parent.weights)
    again = run_trial(evaluator, space, space.parse(CHILD), fid, 5, init=parent.weights)
    assert first.error is None
    task = evaluator.task(fid)
    changed = _changed_key(space, task)
    total = sum(p.numel() for p in space.build(space.parse(CHILD), task).parameters())
    child_conv = space.build(space.parse(CHILD), task).state_dict()[changed].numel()
    assert first.metrics["inherited"] == pytest.approx(1 - child_conv / total)
    assert first.metrics["epochs"] == 2.0 and len(first.curve) == 2  # inherit_epochs, not the fidelity's 3
    measured = ("train_time", "cpu_s", "peak_rss_mb", "trial_rss_mb")  # timings and memory vary from run to run
    assert first.metrics == {**again.metrics, **{k: first.metrics[k] for k in measured if k in first.metrics}}
    assert all(torch.equal(first.weights[k], again.weights[k]) for k in first.weights)

    # starting from the parent changes the result (the init is really used)
    scratch = run_trial(evaluator, space, space.parse(CHILD), fid, 5)
    assert scratch.metrics["inherited"] == 0.0 and scratch.metrics["epochs"] == 3.0
    assert any(not torch.equal(first.weights[k], scratch.weights[k]) for k in first.weights)


def test_default_returns_no_weights_and_stores_nothing(tmp_path):
    space = _space()
    result = TrainingEvaluator().evaluate(space, space.parse(PARENT), FID, seed=0)
    assert result.weights is None and "inherited" not in result.metrics
    out = str(tmp_path / "run")
    run_search(tiny_config(strategy={"name": "evolution", "population_size": 2, "sample_size": 2}), out, quiet=True)
    assert not os.path.exists(os.path.join(out, "weights"))


@pytest.mark.parametrize("value", ["yes", 1])
def test_bad_inherit_option(value):
    with pytest.raises(ConfigError, match="evaluator.inherit"):
        TrainingEvaluator(inherit=value)
    with pytest.raises(ConfigError, match="evaluator.inherit_epochs"):
        TrainingEvaluator(inherit_epochs=0)



def _search(run_cli, out: str, *extra: str) -> list[dict]:
    # seed 5: five distinct networks (ids), so no child retrains its parent's network into its weights file
    code, _, err = run_cli("search", "--out", out, "--budget", "5", "--strategy", "evolution", "--seed", "5",
                           "--set", "strategy.population_size=2", "--set", "strategy.sample_size=2",
                           "--set", "evaluator.inherit=true", "--set", "evaluator.inherit_epochs=1",
                           *TINY_ARGS, *extra)
    assert code == 0, err
    return _rows(out)


def _check_search(out: str, rows: list[dict]) -> None:
    files = glob.glob(os.path.join(out, "weights", "*.pt"))
    assert {os.path.basename(f)[:-3] for f in files} == {r["arch_id"] for r in rows}
    for path in files:  # plain state dicts: they load without unpickling code
        state = torch.load(path, weights_only=True)
        assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    children = [r for r in rows if r["parent"]]
    assert len(children) == 3
    for row in rows:
        metrics = json.loads(row["metrics"])
        assert "weights" not in metrics
        if row["parent"]:
            assert metrics["inherited"] > 0, row
        else:
            assert metrics["inherited"] == 0.0
    assert not glob.glob(os.path.join(out, "weights", "*.tmp"))


def test_cli_search_with_inheritance_inline_then_resume(run_cli, tmp_path):
    out = str(tmp_path / "run")
    rows = _search(run_cli, out)
    _check_search(out, rows)

    # a child cut off by a kill runs again on resume: it finds its parent's weights in OUT/weights
    # and gives the same result; with the parent's file gone it trains from scratch (inherited 0)
    last = rows[-1]
    assert last["parent"]

    def interrupt() -> None:
        con = sqlite3.connect(os.path.join(out, "journal.sqlite"))
        with con:
            con.execute("UPDATE trials SET state='running', tell_seq=NULL, finished_at=NULL WHERE number=?",
                        (last["number"],))
        con.close()

    interrupt()
    code, _, err = run_cli("resume", out, "--quiet")
    assert code == 0, err
    rerun = _rows(out)[-1]
    assert rerun["state"] == "complete" and rerun["attempts"] == 2
    assert rerun["reward"] == last["reward"]
    assert json.loads(rerun["metrics"])["inherited"] == json.loads(last["metrics"])["inherited"] > 0

    os.remove(os.path.join(out, "weights", f"{last['parent']}.pt"))
    interrupt()
    code, _, err = run_cli("resume", out, "--quiet")
    assert code == 0, err
    assert json.loads(_rows(out)[-1]["metrics"])["inherited"] == 0.0


def test_cli_search_with_inheritance_process_executor(run_cli, tmp_path):
    out = str(tmp_path / "run")
    rows = _search(run_cli, out, "--executor", "process", "--workers", "2")
    _check_search(out, rows)
