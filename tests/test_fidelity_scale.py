"""Fidelity width/depth: networks built narrower or shallower by every evaluator, set from the CLI."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from archsearch.core import Fidelity, Task
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.estimation.base import count_params
from archsearch.estimation.proxy import ProxyEvaluator
from archsearch.estimation.tabular import TabularEvaluator
from archsearch.spaces import create_space, list_spaces
from archsearch.spaces.base import scale_count
from conftest import TINY_ARGS, journal_rows

TASK = Task((1, 8, 8), 10)  # digits
SMALL = {"darts": {"channels": 8, "cells": 3}, "nb201": {"channels": 8, "cells_per_stage": 2},
         "rnn_cell": {"leaves": 2, "hidden": 16, "layers": 2}, "template": {"stages": 2},
         "hierarchical": {"motifs": 2, "cells": 2, "stages": 2}}


@pytest.mark.parametrize("value", [0, -0.5, 16.5, float("nan"), True, "half", None])
@pytest.mark.parametrize("key", ["width", "depth"])
def test_bad_width_and_depth_are_one_line_config_errors(key, value):
    with pytest.raises(ConfigError, match=f"fidelity.{key} must be a number in") as info:
        Fidelity(**{key: value})
    assert "\n" not in str(info.value)


def test_fidelity_round_trips_and_reads_old_journal_dicts():
    fid = Fidelity(epochs=2, width=0.5, depth=2)
    assert fid.depth == 2.0 and Fidelity.from_dict(json.loads(json.dumps(fid.to_dict()))) == fid
    old = Fidelity.from_dict({"epochs": 3, "data_fraction": 0.5, "resolution": None})  # written before width/depth
    assert old == Fidelity(epochs=3, data_fraction=0.5) and (old.width, old.depth) == (1.0, 1.0)


def test_scale_count_rounds_and_keeps_the_minimum_and_parity():
    assert scale_count(16, 0.5) == 8 and scale_count(5, 0.5) == 3 and scale_count(1, 0.1) == 1
    assert scale_count(16, 0.3, 2, even=True) == 4 and scale_count(2, 0.1, 2, even=True) == 2
    assert scale_count(7, 1.0, 2, even=True) == 7  # factor 1 never changes a value


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_scales_width_down_and_depth_down_or_refuses_it(name):
    space = create_space(name, **SMALL.get(name, {}))
    assert space.scaled(1.0, 1.0) is space
    arch = space.sample(np.random.default_rng(0))
    full = count_params(space.build(arch, TASK))
    narrow = space.scaled(0.5, 1.0)
    assert narrow.decisions() == space.decisions()  # the same architectures
    assert count_params(narrow.build(arch, TASK)) < full
    try:
        shallow = space.scaled(1.0, 0.5)
    except ConfigError as exc:
        assert "cannot scale depth" in str(exc) and "\n" not in str(exc)
    else:
        assert count_params(shallow.build(arch, TASK)) <= full


def test_darts_and_nb201_scale_their_options():
    darts = create_space("darts", channels=16, cells=8).scaled(0.3, 0.5)
    assert (darts.channels, darts.cells) == (4, 4)  # 4.8 -> even 4; at least 2 channels
    assert create_space("darts", channels=2, cells=1).scaled(0.1, 0.1).options()["channels"] == 2
    nb = create_space("nb201").scaled(0.5, 0.4)
    assert (nb.channels, nb.cells_per_stage) == (8, 2)


def test_training_and_proxy_evaluators_build_at_the_fidelity_scale():
    space = create_space("chain", layers=2, channels=[8, 16], stem_channels=8)
    arch = space.parse("conv:3:16:relu|conv:3:16:relu")
    half = Fidelity(epochs=1, data_fraction=0.1, width=0.5)
    trained = run_trial(TrainingEvaluator(), space, arch, half, seed=0, threads=1).metrics["params"]
    assert trained == count_params(space.scaled(0.5).build(arch, TrainingEvaluator().task())) < \
        count_params(space.build(arch, TrainingEvaluator().task()))
    proxy = ProxyEvaluator(proxy="params")
    assert proxy.evaluate(space, arch, half, seed=0).metrics["params"] == trained


def test_the_tabular_evaluator_refuses_a_width_or_depth(tmp_path):
    space = create_space("nb201", ops=["none", "skip_connect"])
    arch = space.sample(np.random.default_rng(0))
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["arch", "valid"], [str(arch), 1.0]])
    ev = TabularEvaluator(table=str(path), reward="valid")
    assert ev.evaluate(space, arch, Fidelity(epochs=3), 0).metrics == {"valid": 1.0}  # epochs are ignored
    with pytest.raises(ConfigError, match="fidelity.width and fidelity.depth must be 1"):
        ev.task(Fidelity(depth=0.5))


def test_search_at_half_width_from_the_cli_trains_smaller_networks(run_cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("search", "--out", str(out), *TINY_ARGS, "--budget", "2", "--set", "fidelity.width=0.5",
                           "--set", "executor.threads=1")
    assert code == 0, err
    space = create_space("chain", layers=2, channels=[8, 16], stem_channels=8)
    rows = journal_rows(str(out))
    assert len(rows) == 2
    for row in rows:
        assert json.loads(row["fidelity"])["width"] == 0.5 and row["state"] == "complete"
        arch = space.parse(row["arch"])
        params = json.loads(row["metrics"])["params"]
        assert params == count_params(space.scaled(0.5).build(arch, TASK)) < \
            count_params(space.build(arch, TASK))


def test_a_space_that_cannot_scale_depth_stops_the_search_with_one_line(run_cli, tmp_path):
    code, _, err = run_cli("search", "--out", str(tmp_path / "run"), *TINY_ARGS, "--set", "fidelity.depth=0.5")
    assert code == 2 and err.strip().splitlines() == [
        "error: space 'chain' cannot scale depth (its layers are decisions of the architecture); "
        "fidelity.depth must be 1, got 0.5"]
    assert not os.path.exists(str(tmp_path / "run"))  # refused before anything was written
