"""The Zen-score proxy and the rank-vote ensemble of data-free proxies (``score`` and ``prefilter``)."""

from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.estimation import proxies as proxies_mod
from archsearch.estimation.ensemble import average_ranks, check_scores, list_scores, vote_scores, with_votes
from archsearch.estimation.proxies import ProxyContext, get_proxy, score_architecture, score_model
from archsearch.estimation.zen import _features
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from test_bad_input import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")
NB201_SMALL = {"channels": 4, "cells_per_stage": 1}
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONVS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
TASK = Task((3, 8, 8), 5)


class ConvNet(nn.Module):
    """conv-BN-ReLU x depth, a spatial mean, a linear classifier: the shape of every image space's network."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        layers, c = [], 3
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def _zen(model: nn.Module, seed: int = 0) -> float:
    return score_model(model, TASK, ["zen"], seed=seed)["zen"]


def test_zen_is_finite_seeded_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = ConvNet(8, 2).train()
    before = copy.deepcopy(model.state_dict())
    a, b, c = _zen(model, 1), _zen(model, 1), _zen(model, 2)
    assert math.isfinite(a) and a == b and a != c
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert get_proxy("zen").mutates and not get_proxy("zen").needs_data


def test_zen_is_data_free(monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("zen asked for a minibatch")

    monkeypatch.setattr(proxies_mod, "random_batch", no_data)
    assert math.isfinite(score_model(ConvNet(4, 1), TASK, ["zen"])["zen"])
    assert math.isfinite(get_proxy("zen").fn(ConvNet(4, 1), ProxyContext(TASK, None, seed=3)))


def test_zen_grows_with_width_and_depth_as_the_paper_claims():
    assert _zen(ConvNet(32, 2)) > _zen(ConvNet(4, 2))
    assert _zen(ConvNet(8, 4)) > _zen(ConvNet(8, 1))
    space = create_space("nb201", **NB201_SMALL)
    convs, empty = (score_architecture(space, space.parse(a), TASK, ["zen"])["zen"] for a in (CONVS, ALL_NONE))
    assert convs > empty  # an all-none cell passes nothing of x: the features do not change (score -inf)


def test_zen_uses_the_features_before_global_pooling():
    """The features are the map the last global average pool reduces (4-D), not the pooled vector."""
    model = ConvNet(4, 2).eval()
    x = torch.randn(2, 3, 8, 8)
    features = _features(model, x, None)
    assert features.shape == (2, 4, 8, 8) and torch.equal(features, model.body(x))
    flat = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 64, 5))
    assert math.isfinite(_zen(model)) and math.isfinite(_zen(flat))  # no pooling: the last linear layer's input
    with pytest.raises(ConfigError, match="found no global average pooling and no linear layer"):
        _zen(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ConfigError, match="needs continuous image inputs"):
        score_model(nn.Embedding(5, 5), Task((4,), 5, "language_model"), ["zen"])


@pytest.mark.parametrize("name, options", [
    ("chain", {}), ("skip_chain", {}), ("template", {}), ("darts", {"channels": 4, "cells": 2}),
    ("nb201", NB201_SMALL), ("hierarchical", {}), ("hyperparams", {}),
])
def test_zen_scores_every_image_space(name, options):
    space = create_space(name, **options)
    arch = space.sample(np.random.default_rng(0))
    value = score_architecture(space, arch, TASK, ["zen"], seed=0)["zen"]
    assert not math.isnan(value) and value > -math.inf


# -- the rank vote ----------------------------------------------------------------------------------
def test_average_ranks_and_the_vote_by_hand():
    assert list(average_ranks([3.0, 1.0, 2.0, 2.0, float("nan")])) == [5.0, 2.0, 3.5, 3.5, 1.0]
    rows = [{"synflow": 10.0, "zen": 1.0, "params": 5.0, "flops": 7.0},
            {"synflow": 30.0, "zen": 3.0, "params": 5.0, "flops": 9.0},
            {"synflow": 20.0, "zen": 2.0, "params": 1.0, "flops": 8.0}]
    # ranks: synflow 1,3,2; zen 1,3,2; params 2.5,2.5,1; flops 1,3,2 -> means 5.5/4, 11.5/4, 7/4
    assert vote_scores("vote", rows) == [5.5 / 4, 11.5 / 4, 7 / 4]
    assert with_votes(["vote", "zen"], rows)[1] == {"vote": 11.5 / 4, "zen": 3.0}


def test_check_scores_lists_every_choice():
    assert {"vote", "zen", "synflow"} <= set(list_scores())
    assert check_scores(["vote", "synflow"]) == ["vote", "synflow"]
    with pytest.raises(ConfigError, match=r"unknown proxy 'vot' \(valid: .*synflow, vote, zen\)"):
        check_scores(["vot"])


def test_score_cli_writes_the_vote_over_the_scored_architectures(run_cli, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{CONVS}\n{ALL_NONE}\n|nor_conv_1x1~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|\n")
    out = tmp_path / "scores.csv"
    code, _, err = run_cli("score", "--space", "nb201", "--set", "space.channels=4", "--set", "space.cells_per_stage=1",
                           "--proxies", "vote,zen", "--archs", str(archs), "--out", str(out),
                           "--input-shape", "3,8,8", "--classes", "5", "--seed", "2", "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["arch", "vote", "zen"]
    space = create_space("nb201", **NB201_SMALL)
    members = [score_architecture(space, space.parse(r["arch"]), TASK, ["synflow", "zen", "params", "flops"], seed=2)
               for r in rows]
    assert [float(r["vote"]) for r in rows] == vote_scores("vote", members)
    assert float(rows[0]["vote"]) > float(rows[1]["vote"])  # the conv cell out-votes the empty one
    code, _, err = run_cli("score", "--space", "nb201", "--archs", str(archs), "--proxies", "votes",
                           "--out", str(tmp_path / "o.csv"))
    assert_one_line_error(code, err, "unknown proxy 'votes'", "vote, zen")


def test_prefilter_ranks_its_candidate_pool_by_the_vote():
    space = create_space("nb201", **NB201_SMALL)
    pre = create_strategy("prefilter", space, seed=7, candidates=8, keep=3, proxy="vote", input_shape=[3, 8, 8],
                          inner={"name": "random"})
    distinct = list({str(a): a for a in pre.draw_candidates()}.values())
    rows = [score_architecture(space, a, Task((3, 8, 8), 10), ["synflow", "zen", "params", "flops"], seed=7)
            for a in distinct]
    votes = vote_scores("vote", rows)
    best = sorted(range(len(distinct)), key=lambda i: (-votes[i], i))[:3]
    assert [str(pre.ask().arch) for _ in range(3)] == [str(distinct[i]) for i in best]
    for bad in ("oracle", "votes"):
        with pytest.raises(ConfigError, match="strategy.proxy must be one of: .*vote, zen"):
            create_strategy("prefilter", space, proxy=bad)
    assert create_strategy("prefilter", space, proxy="zen").opts.proxy == "zen"


def test_the_proxy_evaluator_refuses_the_vote():
    """One network per trial has no population to rank: the evaluator lists the per-network proxies only."""
    from archsearch.estimation.proxy import ProxyEvaluator

    with pytest.raises(ConfigError, match="evaluator.proxy must be one of"):
        ProxyEvaluator(None, proxy="vote")
