"""The Python API: in-memory data, budgets, resume semantics, config round-trips."""

from __future__ import annotations

import dataclasses
import os

import pytest
import yaml

from archsearch import Config, Experiment, TrialState, from_arrays, run_search
from archsearch.config import apply_override
from archsearch.errors import ConfigError
from conftest import synthetic_images, tiny_config


def test_config_round_trip_and_overrides():
    data: dict = {}
    for a in ("space.layers=3", "space.channels=[4, 8]", "evaluator.lr=1e-3", "strategy=random",
              "budget.time=null", "fidelity.epochs=2"):
        apply_override(data, a)
    cfg = Config.from_dict(data)
    assert cfg.space == {"name": "chain", "layers": 3, "channels": [4, 8]}
    assert cfg.evaluator["lr"] == 0.001 and cfg.strategy == {"name": "random"} and cfg.fidelity.epochs == 2
    assert Config.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg
    with pytest.raises(ConfigError, match="'layers' is not a section"):
        apply_override({"layers": 3}, "layers.x=1")


@pytest.mark.slow
def test_in_memory_data_through_a_process_pool(tmp_path):
    x, y = synthetic_images(150)
    cfg = tiny_config(executor={"name": "process", "workers": 2, "threads": 1}, strategy={"name": "random"},
                      fidelity={"epochs": 4, "data_fraction": 1.0})
    summary = run_search(cfg, str(tmp_path / "run"), data=from_arrays(x, y), quiet=True)
    assert summary.complete == 4 and summary.failed == 0
    assert summary.best is not None and summary.best.reward > 0.4  # better than chance (1/3)
    # the workers saw exactly the data the driver holds: same trials, same results as in-process
    inline = run_search(dataclasses.replace(cfg, executor={"name": "inline", "threads": 1}), str(tmp_path / "inline"),
                        data=from_arrays(x, y), quiet=True)
    assert inline.best is not None
    assert (inline.best.number, inline.best.reward) == (summary.best.number, summary.best.reward)


@pytest.mark.slow
def test_time_budget_stops_the_search(tmp_path):
    cfg = tiny_config(budget={"trials": 1000, "time": 3})
    summary = run_search(cfg, str(tmp_path / "run"), quiet=True)
    assert 1 <= summary.complete < 1000


@pytest.mark.slow
def test_resume_with_a_larger_budget_continues_the_same_search(tmp_path):
    short, long = str(tmp_path / "short"), str(tmp_path / "long")
    evo = {"name": "evolution", "population_size": 2, "sample_size": 2}
    run_search(tiny_config(strategy=evo, budget={"trials": 3}), short, quiet=True)
    exp = Experiment.open(short, quiet=True, budget=6)
    exp.run()
    trials = exp.trials()
    exp.close()
    run_search(tiny_config(strategy=evo, budget={"trials": 6}), long, quiet=True)
    ref = Experiment.open(long, quiet=True)
    assert [str(t.arch) for t in trials] == [str(t.arch) for t in ref.trials()]
    assert all(t.state is TrialState.COMPLETE for t in trials) and len(trials) == 6
    assert os.path.isfile(os.path.join(short, "best.json"))
