"""DARTS / PC-DARTS: options, the architecture weights, the unrolled gradient, learning, resume."""

from __future__ import annotations

import copy
import io
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import archsearch.oneshot.darts as darts_module
import archsearch.spaces.darts  # noqa: F401  (registers "darts")
import archsearch.spaces.nb201  # noqa: F401
import archsearch.spaces.skip_chain  # noqa: F401
from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.oneshot.base import count_param_free, create_oneshot
from archsearch.oneshot.darts import Darts
from archsearch.spaces import create_space

TASK = Task((3, 8, 8), 3)
TINY = {"channels": 4, "cells": 2, "nodes": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


def darts_space(**options):
    return create_space("darts", **{**TINY, **options})


def make(space, seed=0, task=TASK, steps=2, **options):
    """A method set up on a fresh supernet (the runner's call order)."""
    m = Darts(space, seed, device="cpu", epochs=2, batch_size=4, **options)
    torch.manual_seed(seed)
    net = space.supernet(task, **m.supernet_options())
    m.setup(net, steps)
    return m, net


def batch(seed, n=4, task=TASK):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *task.input_shape, generator=g), torch.randint(0, task.num_classes, (n,), generator=g)


# -- options --------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"order": 3}, "strategy.order must be an integer in [1, 2], got 3"),
    ({"order": 1.0}, "strategy.order"),
    ({"difference": "backward"}, "strategy.difference must be one of: central, forward"),
    ({"arch_lr": 0}, "strategy.arch_lr must be a number > 0"),
    ({"arch_weight_decay": -1}, "strategy.arch_weight_decay must be a number >= 0"),
    ({"partial_channels": 0}, "strategy.partial_channels must be an integer >= 1 or null"),
    ({"partial_channels": 3}, "strategy.partial_channels=3 must divide space.channels=4 (valid: 1, 2, 4)"),
    ({"edge_norm": "yes"}, "strategy.edge_norm must be true or false or null, got 'yes'"),
])
def test_bad_options_fail_in_one_line_naming_the_option(options, message):
    with pytest.raises(ConfigError) as err:
        Darts(darts_space(), 0, device="cpu", **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_pc_darts_options_are_refused_on_spaces_without_them():
    nb201 = create_space("nb201", channels=4, cells_per_stage=1)
    no_partial = r"partial_channels: the 'nb201' supernet has no partial channels \(valid spaces: .*darts"
    with pytest.raises(ConfigError, match=no_partial):
        Darts(nb201, 0, device="cpu", partial_channels=2)
    with pytest.raises(ConfigError, match=r"strategy.edge_norm needs edges grouped by node.*valid spaces: darts"):
        Darts(nb201, 0, device="cpu", edge_norm=True)
    assert not Darts(nb201, 0, device="cpu").edge_norm
    m = create_oneshot("darts", darts_space(), 0, device="cpu", partial_channels=2)
    assert isinstance(m, Darts) and m.edge_norm and m.supernet_options() == {"partial_channels": 2}
    assert not Darts(darts_space(), 0, device="cpu", partial_channels=2, edge_norm=False).edge_norm


# -- the architecture weights -----------------------------------------------------------
def test_weights_are_a_softmax_per_choice_point_and_edge_norm_normalises_each_node():
    m, net = make(darts_space())
    w = m.eval_weights()
    assert len(w) == len(net.choice_points) and all(len(r) == len(net.candidates) for r in w)
    assert torch.allclose(torch.stack(w).sum(1), torch.ones(len(w)))
    assert m.alpha.shape == (len(w), len(net.candidates)) and m.alphas() == [r.tolist() for r in w]

    m, net = make(darts_space(), partial_channels=2)
    with torch.no_grad():
        m.beta.copy_(torch.randn(m.beta.shape, generator=torch.Generator().manual_seed(1)))
    w = torch.stack(m.eval_weights())
    for s, e in net.node_groups:  # beta_norm * softmax(alpha): a node's incoming edges share one unit
        assert torch.allclose(w[s:e].sum(), torch.tensor(1.0))
        assert not torch.allclose(w[s:e].sum(1), w[s].sum().expand(e - s))  # the edges differ in weight
    assert net.node_groups[0] == (0, 2) and net.node_groups[-1][1] == len(net.choice_points)


def test_ragged_choice_points_get_rows_of_their_own_length_and_learn():
    space = create_space("skip_chain", layers=3, filters=[4, 8], supernet_filters=8, stem_channels=4)
    m, net = make(space, order=2, arch_lr=0.05)
    sizes = [len(cp.candidates) for cp in net.choice_points]
    assert len(set(sizes)) > 1 and [len(r) for r in m.eval_weights()] == sizes
    before = m.alpha.detach().clone()
    out = m.step(batch(1, task=TASK), batch(2, task=TASK))
    assert set(out) == {"train_loss", "arch_loss"}
    moved = (m.alpha.detach() != before)
    assert torch.equal(moved, m.mask) and (m.alpha.detach()[~m.mask] == 0).all()  # padding stays 0
    space.validate(m.derive(lambda w: 0.0))


# -- the unrolled (second-order) gradient ------------------------------------------------
def test_second_order_gradient_is_darts_finite_difference_of_the_exact_unrolled_gradient(monkeypatch):
    """In float64 the finite-difference Hessian-vector product converges to the exact unrolled
    gradient d/da L_val(w - xi (grad_w L_train(w, a) + wd w + momentum buf), a) (double backprop)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ops = ["sep_conv_3x3", "skip_connect", "avg_pool_3x3"]
        space = create_space("darts", channels=4, cells=1, nodes=1, ops=ops)
        task = Task((3, 6, 6), 3)
        m, net = make(space, task=task, order=2, lr=0.5)
        train, valid = batch(1, task=task), batch(2, task=task)
        m.step(train, valid)  # now the optimiser has momentum buffers, which the virtual step uses
        before = [p.detach().clone() for p in net.parameters()]
        g2 = m.arch_gradient(train, valid)[0][0]
        assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # w restored exactly

        names, params = zip(*net.named_parameters())
        g = torch.autograd.grad(F.cross_entropy(net(train[0], m.weights()), train[1]), params, create_graph=True)
        opt = m.w_optimizer
        xi = opt.param_groups[0]["lr"]
        unrolled = {n: p.detach() - xi * (gi + m.opts.weight_decay * p.detach() + 0.9 * opt.state[p]["momentum_buffer"])
                    for n, p, gi in zip(names, params, g)}
        loss = F.cross_entropy(functional_call(net, unrolled, (valid[0], m.weights())), valid[1])
        exact = torch.autograd.grad(loss, m.alpha)[0]

        m.opts = replace(m.opts, order=1)
        g1 = m.arch_gradient(train, valid)[0][0]
        m.opts = replace(m.opts, order=2)
        rel = lambda a: float((a - exact).norm() / exact.norm())  # noqa: E731
        assert rel(g1) > 0.1  # the second-order term matters here
        assert rel(g2) < 0.02  # DARTS's radius 0.01: finite differences are close ...
        m.opts = replace(m.opts, difference="forward")  # one pass fewer, O(eps) instead of O(eps^2)
        g_forward = m.arch_gradient(train, valid)[0][0]
        assert rel(g_forward) < 0.05 and not torch.allclose(g_forward, g2)
        assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
        monkeypatch.setattr(darts_module, "FD_RADIUS", 1e-4)
        assert rel(m.arch_gradient(train, valid)[0][0]) < 1e-3  # forward differences converge too ...
        m.opts = replace(m.opts, difference="central")
        assert rel(m.arch_gradient(train, valid)[0][0]) < 1e-6  # ... central ones to the exact gradient
    finally:
        torch.set_default_dtype(old)


# -- learning ---------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"order": 1}, {"order": 2}, {"partial_channels": 2}])
def test_architecture_steps_descend_the_valid_loss(options):
    """With the weights held still (lr ~ 0) the steps are Adam on L_val(alpha): the valid loss
    falls step after step (a sign error or a gradient into the wrong parameters would not)."""
    space = darts_space()
    m, net = make(space, arch_lr=0.05, lr=1e-12, lr_min=0.0, **options)
    train, valid = batch(1, n=8), batch(2, n=8)
    losses = [m.step(train, valid)["arch_loss"] for _ in range(8)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.99 * losses[0]
    moved = [p for p in m.arch_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(moved) == (2 if options.get("partial_channels") else 1)
    space.validate(m.derive(lambda w: 0.0))


def test_alphas_move_toward_the_op_that_keeps_the_signal():
    """NB201 cells of skip vs 3x3 average pooling; the label is the sign of a faint checkerboard
    under noise, which averaging destroys and a skip connection keeps: the skip alphas gain."""
    space = create_space("nb201", channels=4, cells_per_stage=1, ops=["skip_connect", "avg_pool_3x3"])
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2 - 1).float()
    gains = []
    for seed in (0, 1, 2):
        m, net = make(space, seed=seed, order=1, arch_lr=0.01, lr=0.05)
        g = torch.Generator().manual_seed(seed)

        def labelled(g=g):
            y = torch.randint(0, 3, (16,), generator=g)
            return torch.randn(16, 3, 8, 8, generator=g) + 0.3 * (y.float() - 1)[:, None, None, None] * checker, y

        a0 = m.alpha.detach().clone()
        for _ in range(25):
            m.step(labelled(), labelled())
        gains.append(((m.alpha.detach() - a0) @ torch.tensor([1.0, -1.0])))  # skip minus pool, per edge
    gains = torch.stack(gains)
    assert (gains.mean(dim=1) > 0).all() and (gains > 0).float().mean() >= 0.8, gains


def test_derive_respects_max_skips():
    space = darts_space(nodes=3)
    m, net = make(space, max_skips=1)
    skip = net.candidates.index("skip_connect")
    with torch.no_grad():
        m.alpha[:, skip] += 5.0  # skip dominates every edge
    free = Darts(space, 0, device="cpu")
    free.setup(net, 1)
    with torch.no_grad():
        free.alpha.copy_(m.alpha)
    assert count_param_free(net, free.derive(lambda w: 0.0))["skips"] == 2 * 2 * space.nodes
    arch = m.derive(lambda w: 0.0)
    space.validate(arch)
    assert count_param_free(net, arch)["skips"] == 1


# -- resume ------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"order": 1}, {"order": 2, "partial_channels": 2}])
def test_resume_between_epochs_continues_exactly(options):
    space = darts_space()
    data = [[(batch(10 * e + i), batch(10 * e + i + 5)) for i in range(2)] for e in range(2)]

    def epoch(m, e):
        for train, valid in data[e]:
            m.step(train, valid)
        m.end_epoch(e + 1)

    straight, net = make(space, seed=4, **options)
    start = copy.deepcopy(net.state_dict())
    epoch(straight, 0)
    epoch(straight, 1)

    first, net1 = make(space, seed=4, **options)
    assert all(torch.equal(a, b) for a, b in zip(start.values(), net1.state_dict().values()))
    epoch(first, 0)
    buf = io.BytesIO()
    torch.save({"method": first.state_dict(), "net": net1.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed, net2 = make(space, seed=99, **options)  # different init: everything must come from the checkpoint
    net2.load_state_dict(saved["net"])
    resumed.load_state_dict(saved["method"])
    epoch(resumed, 1)

    assert torch.equal(resumed.alpha, straight.alpha)
    if straight.beta is not None:
        assert torch.equal(resumed.beta, straight.beta)
    assert resumed.alphas() == straight.alphas()
    assert resumed.derive(lambda w: 0.0) == straight.derive(lambda w: 0.0)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))
