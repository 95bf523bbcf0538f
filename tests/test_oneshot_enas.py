"""ENAS: option errors, child-only weight steps, the controller's learning, derive, resume, all spaces."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

import archsearch.oneshot.enas as enas_module
from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.oneshot.base import create_oneshot
from archsearch.oneshot.enas import Enas
from archsearch.spaces.base import create_space

TASK = Task((3, 8, 8), 3)
SPACES = {
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "darts": {"channels": 4, "cells": 2, "nodes": 2},
    "skip_chain": {"layers": 3, "filters": [4, 8], "supernet_filters": 8, "stem_channels": 4},
}


def make(name: str = "nb201", steps: int = 4, **options):
    space = create_space(name, **SPACES[name])
    m = Enas(space, seed=0, device="cpu", batch_size=4, epochs=2, **options)
    with torch.random.fork_rng():  # the same initial supernet every time, global RNG untouched
        torch.manual_seed(0)
        net = space.supernet(TASK, **m.supernet_options()).to(m.device)
    m.setup(net, steps)
    return space, m, net


def batches(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pair = lambda: (torch.randn(4, *TASK.input_shape, generator=g), torch.randint(0, 3, (4,), generator=g))  # noqa: E731
    return [(pair(), pair()) for _ in range(n)]


def score_of(net):
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(8, *TASK.input_shape, generator=g), torch.randint(0, 3, (8,), generator=g)
    return lambda weights: enas_module.accuracy(net, weights, x, y, 8)


@pytest.mark.parametrize("key, value, message", [
    ("controller_hidden", 0, "strategy.controller_hidden must be an integer >= 1, got 0"),
    ("controller_lr", 0, "strategy.controller_lr must be a number > 0, got 0"),
    ("entropy_weight", -1, "strategy.entropy_weight must be a number >= 0, got -1"),
    ("baseline_decay", 1.5, "strategy.baseline_decay must be a number in [0, 1], got 1.5"),
    ("temperature", 0, "strategy.temperature must be a number > 0 or null, got 0"),
    ("tanh_constant", "2", "strategy.tanh_constant must be a number > 0 or null, got '2'"),
    ("controller_every", 0, "strategy.controller_every must be an integer >= 1, got 0"),
    ("controller_samples", True, "strategy.controller_samples must be an integer >= 1, got True"),
    ("candidates", 2.5, "strategy.candidates must be an integer >= 1, got 2.5"),
])
def test_bad_options_fail_with_one_line_errors(key, value, message):
    space = create_space("nb201", **SPACES["nb201"])
    with pytest.raises(ConfigError) as err:
        Enas(space, **{key: value})
    assert str(err.value) == message


def test_registered_and_null_scaling_allowed():
    space = create_space("nb201", **SPACES["nb201"])
    m = create_oneshot("enas", space, 3, temperature=None, tanh_constant=None, device="cpu")
    assert isinstance(m, Enas) and not m.has_alphas and m.alphas() is None


@pytest.mark.parametrize("name", ["nb201", "skip_chain"])
def test_a_step_trains_only_the_sampled_childs_candidates(name, monkeypatch):
    space, m, net = make(name, controller_every=100)
    used = []
    real = m.weight_step
    monkeypatch.setattr(m, "weight_step", lambda x, y, w: used.append([int(v.argmax()) for v in w]) or real(x, y, w))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    (train, valid), = batches(1)
    out = m.step(train, valid)
    assert math.isfinite(out["train_loss"]) and 0.0 <= out["reward"] <= 1.0
    path = used[0]
    if name == "nb201":
        groups = [(e, k, cand) for cell in net.cells if hasattr(cell, "edges")
                  for e, edge in enumerate(cell.edges) for k, cand in enumerate(edge)]
    else:
        groups = [(net._op_cp[i], k, cand) for i, layer in enumerate(net.cells) for k, cand in enumerate(layer)]
    names = {id(p): n for n, p in net.named_parameters()}
    trained = 0
    for cp, k, cand in groups:
        for p in cand.parameters():
            if k == path[cp]:
                assert p.grad is not None
                trained += 1
            else:  # not on the path: never ran, so no gradient and an unchanged weight
                assert p.grad is None
                assert torch.equal(p, before[names[id(p)]])
    assert trained > 0 or all(not any(True for _ in c.parameters()) for cp, k, c in groups if k == path[cp])


def _first_choice_probs(m: Enas) -> torch.Tensor:
    """The controller's distribution over decision 0 (the first LSTM step: no earlier tokens)."""
    c = m.controller
    h, _ = c.lstm(c.start)
    first, k = c.offset[0]
    logits = F.linear(h[0], c.head.weight[first:first + k], c.head.bias[first:first + k])
    return torch.softmax(c._scale(logits), -1).detach()


def test_controller_learns_the_rewarded_choice(monkeypatch):
    space, m, net = make("nb201", controller_lr=0.05, entropy_weight=0.0, baseline_decay=0.5, controller_samples=2)
    good = space.decisions()[0].choices.index("nor_conv_3x3")
    # the reward: 1 when edge 0 runs the good op, else 0 (the supernet's accuracy is replaced)
    monkeypatch.setattr(enas_module, "accuracy", lambda net, w, x, y, b: float(int(w[0].argmax()) == good))
    monkeypatch.setattr(m, "weight_step", lambda x, y, w: 0.0)  # only the controller matters here
    p0 = float(_first_choice_probs(m)[good])
    rewards = [m.step(t, v)["reward"] for t, v in batches(40)]
    p1 = float(_first_choice_probs(m)[good])
    assert p0 < 0.3 and p1 > 0.6, (p0, p1)
    assert sum(rewards[-10:]) > sum(rewards[:10])


def test_derive_returns_the_best_scored_candidate_and_ranks_the_top():
    space, m, net = make("nb201", candidates=12)
    calls = []

    def score(weights):
        path = tuple(int(w.argmax()) for w in weights)
        value = sum(path) / 24  # higher op indices score better; many ties
        calls.append((path, value))
        return value

    first = [w.clone() for w in m.eval_weights()]  # before any derive: a fixed sample's path
    assert all(float(w.sum()) == 1.0 for w in first) and len(first) == len(net.choice_points)
    arch = m.derive(score)
    space.validate(arch)
    paths = [p for p, _ in calls]
    assert len(paths) == len(set(paths)) and 1 <= len(paths) <= 12  # each distinct child scored once
    best = max(v for _, v in calls)
    assert tuple(net.path(arch)) == next(p for p, v in calls if v == best)  # ties: the first sampled
    assert [int(w.argmax()) for w in m.eval_weights()] == net.path(arch)
    assert len(m.ranking) == min(10, len(calls))
    assert [s for _, s in m.ranking] == sorted((v for _, v in calls), reverse=True)[:10]
    assert m.ranking[0] == (str(arch), best) and space.parse(m.ranking[-1][0])


def test_derive_respects_max_skips():
    space, m, net = make("nb201", candidates=30, max_skips=0)
    skip = space.decisions()[0].choices.index("skip_connect")
    arch = m.derive(lambda w: float(sum(int(v.argmax()) == skip for v in w)))  # skips score best
    assert "skip_connect" not in str(arch)
    assert "skip_connect" in m.ranking[0][0]  # the ranking still shows the better-scored ones


def test_derive_repairs_the_best_when_no_candidate_is_within_max_skips(monkeypatch):
    space, m, net = make("nb201", candidates=3, max_skips=1)
    skip = space.decisions()[0].choices.index("skip_connect")
    monkeypatch.setattr(m, "_sample", lambda: [skip] * len(space.decisions()))  # every child: all skips
    arch = m.derive(lambda w: 0.5)
    assert str(arch).count("skip_connect") == 1 and m.ranking == [(str(space.decode([skip] * 6)), 0.5)]
    assert [int(w.argmax()) for w in m.eval_weights()] == net.path(arch)


def _epoch(m, net, data, epoch):
    outs = [m.step(t, v) for t, v in data]
    m.end_epoch(epoch)
    return outs, str(m.derive(score_of(net)))


def test_resume_gives_exactly_the_same_search():
    data = batches(6)
    opts = {"controller_every": 2, "controller_samples": 2, "candidates": 5}
    _, a, net_a = make("nb201", steps=3, **opts)
    straight = [_epoch(a, net_a, data[:3], 1), _epoch(a, net_a, data[3:], 2)]

    _, b, net_b = make("nb201", steps=3, **opts)
    first = _epoch(b, net_b, data[:3], 1)
    buf = io.BytesIO()
    torch.save({"method": b.state_dict(), "net": net_b.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    _, c, net_c = make("nb201", steps=3, **opts)
    net_c.load_state_dict(saved["net"])
    c.load_state_dict(saved["method"])
    resumed = [first, _epoch(c, net_c, data[3:], 2)]

    assert resumed == straight
    assert a.ranking == c.ranking and a.baseline.value == c.baseline.value
    for p, q in zip(a.controller.parameters(), c.controller.parameters()):
        assert torch.equal(p, q)
    for (k, p), q in zip(net_a.state_dict().items(), net_c.state_dict().values()):
        assert torch.equal(p, q), k
    for p, q in zip(a.eval_weights(), c.eval_weights()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_searches_every_space_with_a_supernet(name):
    space, m, net = make(name, steps=2, candidates=4)
    outs, arch_str = _epoch(m, net, batches(2), 1)
    arch = space.parse(arch_str)
    assert all(math.isfinite(o["train_loss"]) and 0.0 <= o["reward"] <= 1.0 for o in outs)
    assert outs[1]["baseline"] == pytest.approx(0.99 * outs[0]["reward"] + 0.01 * outs[1]["reward"])
    net(torch.randn(2, *TASK.input_shape), m.eval_weights())  # the derived child runs
    if name == "skip_chain":  # returned as the supernet ran it: its width, stride 1, square kernels
        assert all(layer.filters == 8 and layer.stride == 1 and layer.kernel_h == layer.kernel_w
                   for layer in arch.layers)


def test_controller_steps_every_controller_every_steps(monkeypatch):
    space, m, net = make("nb201", controller_every=3, controller_samples=2)
    rewarded = []
    monkeypatch.setattr(enas_module, "accuracy", lambda net, w, x, y, b: rewarded.append(1) or 0.5)
    outs = [m.step(t, v) for t, v in batches(4)]
    adam_steps = {int(s["step"]) for s in m.c_optimizer.state.values()}
    assert adam_steps == {2} and len(rewarded) == 2 * 2  # steps 1 and 4, two children each
    assert outs[1]["reward"] == outs[2]["reward"] == outs[0]["reward"]  # held between updates
