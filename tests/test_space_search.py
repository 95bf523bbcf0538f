"""Every registered space runs a real search from the CLI, final training included ("search small, train big")."""

from __future__ import annotations

import json

import pytest
import torch

from archsearch.experiment import load_checkpoint
from archsearch.spaces import create_space, list_spaces
from tests.test_spaces import SMALL_OPTIONS, space_args


@pytest.mark.parametrize("name", list_spaces())
def test_search_on_every_space_trains_finalises_and_reloads(run_cli, tmp_path, name):
    out = tmp_path / name
    code, _, err = run_cli("search", *space_args(name), "--strategy", "evolution", "--budget", "3",
                           "--epochs", "1", "--data-fraction", "0.3", "--set", "final.epochs=1",
                           "--set", "strategy.population_size=2", "--set", "strategy.sample_size=2",
                           "--seed", "3", "--out", str(out), "--quiet")
    assert code == 0, err
    best = json.loads((out / "best.json").read_text())
    space = create_space(name, **SMALL_OPTIONS.get(name, {}))
    assert str(space.parse(best["arch"])) == best["arch"]
    assert 0.0 <= best["metrics"]["test_acc"] <= 1.0
    model, ckpt = load_checkpoint(str(out / "best_model.pt"))
    final = space.final_space()
    assert ckpt["space_options"] == json.loads(json.dumps(final.options(), default=list))
    model.eval()
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    code, shown, err = run_cli("show", str(out), "--json")
    assert code == 0, err
    assert sum(t["state"] == "complete" for t in json.loads(shown)["trials"]) == 3
