"""Zero-cost proxies, the proxy evaluator, ``archsearch score`` and the prefilter strategy."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from archsearch.core import Fidelity, Task, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.estimation.base import count_flops, count_params
from archsearch.estimation.proxies import (
    build_model, list_proxies, random_batch, score_architecture, score_model,
)
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from conftest import TINY_ARGS, tiny_config
from test_bad_input import assert_one_line_error

NB201_SMALL = {"channels": 4, "cells_per_stage": 1}
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONVS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_names_the_issue_proxies():
    assert {"synflow", "snip", "grad_norm", "jacob_cov", "params", "flops"} <= set(list_proxies())
    with pytest.raises(ConfigError, match=r"unknown proxy 'synflw' \(valid: .*synflow"):
        score_model(nn.Linear(2, 2), Task((2,), 2), ["synflw"])


# -- synflow ---------------------------------------------------------------------------------
def test_synflow_equals_a_hand_computation_on_a_two_layer_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    w1, b1 = model[0].weight.detach().double().abs(), model[0].bias.detach().double().abs()
    w2 = model[2].weight.detach().double().abs()
    h = w1 @ torch.ones(3, dtype=torch.float64) + b1  # all-ones input, everything positive: ReLU is the identity
    # R = sum(w2 h + b2): dR/dw2[i, j] = h[j]; dR/dh[j] = sum_i w2[i, j]; dR/dw1[j, k] = that * 1
    expected = float((w2 * h[None, :]).sum() + (w1 * w2.sum(0)[:, None]).sum())
    before = [p.detach().clone() for p in model.parameters()]
    got = score_model(model, Task((3,), 2), ["synflow"])["synflow"]
    assert got == pytest.approx(expected, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the model is left alone


def test_synflow_on_a_conv_model_ignores_batch_norm_as_the_reference_does():
    """The reference scores synflow on the network rebuilt without batch-norm: statistics and
    affine parameters of BN layers change nothing, and the score is that of the BN-free network."""
    torch.manual_seed(1)
    conv, lin = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(2 * 4 * 4, 3)
    with_bn = nn.Sequential(conv, nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), lin)
    without = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), lin)
    task = Task((1, 4, 4), 3)
    a = score_model(with_bn, task, ["synflow"])["synflow"]
    bn = with_bn[1]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(0.01)
    with torch.no_grad():
        bn.weight.fill_(-7.0)
        bn.bias.fill_(3.0)
    b = score_model(with_bn, task, ["synflow"])["synflow"]
    c = score_model(without, task, ["synflow"])["synflow"]
    assert a == b == pytest.approx(c, rel=1e-12) and a > 0
    # and by hand: R = sum_o (|L| (|W| * 1 + |b|) + |bl|) with the conv output x = |W| conv ones
    x = torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4, dtype=torch.float64), conv.weight.detach().double().abs(),
                                   conv.bias.detach().double().abs(), padding=1).flatten()
    L = lin.weight.detach().double().abs()
    grad_x = L.sum(0)  # dR/dx
    grad_w = torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4, dtype=torch.float64),
                                        grad_x.reshape(1, 2, 4, 4).transpose(0, 1), padding=1).transpose(0, 1)
    expected = float((L * x[None, :]).sum() + (conv.weight.detach().double().abs() * grad_w).sum())
    assert c == pytest.approx(expected, rel=1e-10)


def test_synflow_ranks_an_all_none_nb201_cell_below_a_cell_of_convolutions():
    space = create_space("nb201", **NB201_SMALL)
    task = Task((3, 16, 16), 10)
    none = score_architecture(space, space.parse(ALL_NONE), task, ["synflow"])["synflow"]
    convs = score_architecture(space, space.parse(CONVS), task, ["synflow"])["synflow"]
    assert none < convs and convs > 0


# -- data-dependent proxies ----------------------------------------------------------------------
def test_snip_and_grad_norm_depend_on_the_data_and_are_deterministic():
    space = create_space("nb201", **NB201_SMALL)
    task = Task((3, 8, 8), 10)
    arch = space.parse(CONVS)
    names = ["snip", "grad_norm", "jacob_cov"]
    b1, b2 = random_batch(task, 16, seed=1), random_batch(task, 16, seed=2)
    s1 = score_architecture(space, arch, task, names, batch=b1)
    assert s1 == score_architecture(space, arch, task, names, batch=b1)
    s2 = score_architecture(space, arch, task, names, batch=b2)
    for name in names:
        assert np.isfinite(s1[name]) and s1[name] != s2[name], name
    assert s1["snip"] > 0 and s1["grad_norm"] > 0
    # no batch: a seeded random one of the task's shape
    assert score_architecture(space, arch, task, names, seed=3, batch_size=16) == \
        score_architecture(space, arch, task, names, batch=random_batch(task, 16, seed=3), seed=3)


def test_params_and_flops_agree_with_the_counters_and_scoring_leaves_the_global_rng_alone():
    space = create_space("nb201", **NB201_SMALL)
    task = Task((3, 8, 8), 10)
    arch = space.parse(CONVS)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    scores = score_architecture(space, arch, task, ["params", "flops", "synflow", "snip"], seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    model = build_model(space, arch, task, seed=5)
    assert scores["params"] == count_params(model) and scores["flops"] == count_flops(model, (3, 8, 8))
    assert list(scores) == ["params", "flops", "synflow", "snip"]  # the order asked
    # the same seed gives the same weights, hence the same scores; another seed other weights
    assert scores == score_architecture(space, arch, task, ["params", "flops", "synflow", "snip"], seed=5)
    assert scores["synflow"] != score_architecture(space, arch, task, ["synflow"], seed=6)["synflow"]


# -- the proxy evaluator ---------------------------------------------------------------------------
def test_proxy_evaluator_runs_a_search_from_the_cli(run_cli, tmp_path):
    out = tmp_path / "s"
    code, _, err = run_cli("search", "--evaluator", "proxy", "--set", "evaluator.proxy=synflow", "--budget", "4",
                           "--strategy", "evolution", "--set", "strategy.population_size=2",
                           "--set", "strategy.sample_size=2", "--out", str(out), *TINY_ARGS)
    assert code == 0, err
    best = json.loads((out / "best.json").read_text())
    assert best["metrics"]["synflow"] > 0 and best["metrics"]["params"] > 0 and "flops" in best["metrics"]
    code, stdout, err = run_cli("show", str(out), "--json")
    assert code == 0, err
    rewards = [t["reward"] for t in json.loads(stdout)["trials"]]
    assert len(rewards) == 4 and max(rewards) == best["metrics"]["synflow"]


def test_proxy_evaluator_scores_data_dependent_proxies_on_one_fixed_minibatch(tmp_path):
    from archsearch.experiment import run_search
    from archsearch.storage.journal import Journal

    cfg = tiny_config(evaluator={"name": "proxy", "proxy": "snip", "batch_size": 8}, strategy={"name": "random"})
    summary = run_search(cfg, str(tmp_path / "e"), quiet=True)
    assert summary.complete == 4
    journal = Journal(str(tmp_path / "e" / Journal.FILENAME))
    trials = journal.trials(create_space("chain", **cfg.options("space")).from_dict)
    journal.close()
    assert all(t.reward == t.metrics["snip"] and t.reward > 0 for t in trials)


def test_proxy_evaluator_options_are_checked(run_cli, tmp_path):
    code, _, err = run_cli("search", "--evaluator", "proxy", "--set", "evaluator.proxy=oracle",
                           "--out", str(tmp_path / "o"), *TINY_ARGS)
    assert_one_line_error(code, err, "evaluator.proxy must be one of", "synflow")
    code, _, err = run_cli("search", "--evaluator", "proxy", "--set", "evaluator.batch_size=1",
                           "--out", str(tmp_path / "o"), *TINY_ARGS)
    assert_one_line_error(code, err, "evaluator.batch_size must be an integer >= 2")


# -- archsearch score --------------------------------------------------------------------------------
def test_score_writes_one_column_per_proxy(run_cli, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"# two cells\n{CONVS}\n\n  {ALL_NONE}  \n")
    out = tmp_path / "scores.csv"
    code, _, err = run_cli("score", "--space", "nb201", "--set", "space.channels=4", "--set", "space.cells_per_stage=1",
                           "--proxies", "synflow,params", "--archs", str(archs), "--out", str(out),
                           "--input-shape", "3,8,8", "--classes", "5", "--seed", "2")
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert [r["arch"] for r in rows] == [CONVS, ALL_NONE] and list(rows[0]) == ["arch", "synflow", "params"]
    space = create_space("nb201", **NB201_SMALL)
    expected = score_architecture(space, space.parse(CONVS), Task((3, 8, 8), 5), ["synflow", "params"], seed=2)
    assert float(rows[0]["synflow"]) == expected["synflow"] and float(rows[0]["params"]) == expected["params"]
    assert float(rows[1]["synflow"]) < float(rows[0]["synflow"])
    code, _, err = run_cli("score", "--space", "chain", "--sample", "3", "--input-shape", "1,8,8",
                           "--out", str(tmp_path / "sampled.csv"), "--quiet")
    assert code == 0, err
    assert len(list(csv.DictReader((tmp_path / "sampled.csv").open()))) == 3


@pytest.mark.parametrize("args, needles", [
    (["--space", "nb201", "--archs", "ARCHS", "--proxies", "synflow,oracle"], ["unknown proxy 'oracle'", "valid: flops"]),
    (["--space", "nb201", "--archs", "MISSING"], ["architecture file not found"]),
    (["--space", "nb201", "--archs", "ARCHS", "--input-shape", "3,x,32"], ["--input-shape expects positive integers"]),
    (["--space", "chain", "--sample", "1", "--input-shape", "3"], ["needs input shape (C, H, W)"]),
    (["--space", "nb201", "--archs", "ARCHS", "--classes", "0"], ["--classes must be a positive integer"]),
    (["--space", "nb201", "--archs", "ARCHS", "--sample", "2"], ["give either --archs FILE or --sample N"]),
    (["--space", "nb201"], ["give either --archs FILE or --sample N"]),
    (["--space", "resnet", "--sample", "2"], ["unknown space 'resnet'"]),
])
def test_score_rejects_bad_input(run_cli, tmp_path, args, needles):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{CONVS}\n")
    paths = {"ARCHS": str(archs), "MISSING": str(tmp_path / "nope.txt")}
    code, _, err = run_cli("score", *[paths.get(a, a) for a in args], "--out", str(tmp_path / "o.csv"))
    assert_one_line_error(code, err, *needles)
    assert not os.path.exists(tmp_path / "o.csv")


def test_score_names_the_line_of_an_unparsable_architecture(run_cli, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"# header\n{CONVS}\nnot-a-cell\n")
    code, _, err = run_cli("score", "--space", "nb201", "--archs", str(archs), "--out", str(tmp_path / "o.csv"))
    assert_one_line_error(code, err, f"{archs} line 3")


# -- prefilter -----------------------------------------------------------------------------------------
def _prefilter(inner, **options):
    space = create_space("nb201", **NB201_SMALL)
    opts = {"candidates": 15, "keep": 4, "proxy": "synflow", "input_shape": [3, 8, 8], "inner": inner, **options}
    return space, create_strategy("prefilter", space, seed=7, **opts)


def _tell(strategy, number, arch, reward, ask_id=None):
    strategy.tell(Trial(number, arch, TrialState.COMPLETE, Fidelity(1), reward=reward, ask_id=ask_id))


def test_prefilter_proposes_the_top_scoring_candidates_first_then_defers_to_the_inner_strategy():
    space, pre = _prefilter({"name": "random"})
    candidates = pre.draw_candidates()
    assert len(candidates) == 15
    scored = {str(a): score_architecture(space, a, Task((3, 8, 8), 10), ["synflow"], seed=7)["synflow"]
              for a in candidates}
    top = sorted(scored, key=lambda k: -scored[k])[:4]
    asked = [pre.ask().arch for _ in range(4)]
    assert [str(a) for a in asked] == top
    for i, a in enumerate(asked):
        _tell(pre, i, a, 1.0)
    inner = create_strategy("random", space, seed=7)
    assert [str(pre.ask().arch) for _ in range(5)] == [str(inner.ask().arch) for _ in range(5)]


def test_prefilter_warm_starts_evolution_and_local_search():
    space, pre = _prefilter({"name": "evolution", "population_size": 4, "sample_size": 4})
    warm = [pre.ask().arch for _ in range(4)]
    for i, a in enumerate(warm):
        _tell(pre, i, a, float(i))
    assert [m[0] for m in pre.inner.population] == warm  # every tell reached the inner strategy
    child = pre.ask()  # the population is full of warm-start members: evolution mutates at once
    assert child.parent == warm[-1].id  # sample_size == population: the best one is the parent

    space, pre = _prefilter({"name": "local_search", "initial": 4})
    asked = [pre.ask() for _ in range(4)]
    warm = [p.arch for p in asked]
    for i, p in enumerate(asked):
        _tell(pre, i, p.arch, [0.1, 0.9, 0.3, 0.2][i], p.ask_id)  # matched to its ask by id
    assert pre.inner.current == warm[1]  # the climb starts from the best warm-start architecture
    nxt = pre.ask()
    assert nxt.parent == warm[1].id and nxt.arch not in warm


def test_prefilter_checks_its_options():
    space = create_space("nb201", **NB201_SMALL)
    for options, needle in (({"keep": 5, "candidates": 3}, "strategy.keep"),
                            ({"proxy": "oracle"}, "strategy.proxy must be one of"),
                            ({"inner": {"name": "anneal"}}, "strategy.inner: unknown strategy 'anneal'"),
                            ({"inner": {"name": "evolution", "population_size": 1}}, "strategy.inner"),
                            ({"input_shape": [3, 0]}, "strategy.input_shape")):
        with pytest.raises(ConfigError, match=needle):
            create_strategy("prefilter", space, **options)
