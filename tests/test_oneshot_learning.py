"""Every one-shot method's supernet learns, on every space with a supernet (issue 18).

A one-shot search is only as good as its supernet: an argmax over untrained weights is noise.
On a separable toy task (each class lights up its own block of rows) each method trains a tiny
supernet for a few epochs through its own ``step``; the supernet's validation accuracy under the
method's own evaluation weights must then be far above chance, and what the method learned about
architectures must have moved: the alphas away from uniform (DARTS, GDAS), the controller's
policy away from its start (ENAS). SPOS learns no distribution (uniform sampling is its design);
for it the derived path must score above the median of random paths' scores, i.e. its search
picks non-randomly.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from archsearch.core import Task
from archsearch.oneshot.base import ONESHOT, OneShotMethod, accuracy, create_oneshot
from archsearch.spaces.base import create_space
from conftest import TINY_SUPERNET_SPACES, synthetic_images

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = 3
CHANCE = 1 / CLASSES
# chance is 1/3; a supernet that learned the blocks scores near 1.0 (measured: see the report in
# the commit; the weakest method x space measured >= 0.95). 0.8 is far above chance (a guess-the-
# majority model scores ~0.36 here) and leaves a margin for seeds and platforms.
MIN_ACCURACY = 0.8
EPOCHS = 6
BATCH = 24
TASK = Task((1, 8, 8), CLASSES)


def data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = synthetic_images(n=360, classes=CLASSES, size=8, seed=seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    return xt[:240], yt[:240], xt[240:], yt[240:]


def train(name: str, space_name: str, seed: int = 0, **options: Any) -> tuple[OneShotMethod, float, Any]:
    """``EPOCHS`` epochs of the method's own steps; returns the method, the supernet's valid accuracy
    under ``eval_weights`` and the state the method started from (for 'it moved')."""
    x, y, vx, vy = data(seed)
    space = create_space(space_name, **TINY_SUPERNET_SPACES[space_name])
    method = create_oneshot(name, space, seed, device="cpu", epochs=EPOCHS, batch_size=BATCH, **options)
    torch.manual_seed(seed)
    net = space.supernet(TASK, **method.supernet_options())
    steps = len(y) // BATCH
    method.setup(net, steps)
    start = copy.deepcopy(method.state_dict())  # state_dict tensors alias the live ones
    g = torch.Generator().manual_seed(seed)

    def score(weights: Any) -> float:
        return accuracy(net, weights, vx, vy, 60)

    for epoch in range(1, EPOCHS + 1):
        order = torch.randperm(len(y), generator=g)
        vorder = torch.randint(0, len(vy), (steps * BATCH,), generator=g)
        for s in range(steps):
            b, vb = order[s * BATCH:(s + 1) * BATCH], vorder[s * BATCH:(s + 1) * BATCH]
            method.step((x[b], y[b]), (vx[vb], vy[vb]))
        method.end_epoch(epoch)
        method.derive(score)
    return method, score(method.eval_weights()), start


def path_accuracies(method: OneShotMethod, n: int = 9, seed: int = 123) -> list[float]:
    """Valid accuracy of ``n`` uniformly drawn paths on the method's trained supernet."""
    net = method.supernet
    assert net is not None
    _, _, vx, vy = data(0)
    rng = np.random.default_rng(seed)
    return [accuracy(net, net.path_weights(method.space.sample(rng)), vx, vy, 60) for _ in range(n)]


def uniform_distance(rows: Any) -> float:
    """The largest |p - 1/K| over every choice point's distribution."""
    return max(float(np.abs(np.asarray(r, dtype=float) - 1 / len(r)).max()) for r in rows)


# Measured failures of the current code, kept visible rather than hidden by a lower bar (not strict:
# they are borderline, a seed or platform may pass them; the report of issue 18 has the numbers):
# * skip_chain: single random paths of the trained supernet score 0.0-0.7 (below chance for some: the
#   supernet *sums* a varying number of unnormalised ReLU maps where the standalone network concatenates,
#   so the head's input scale changes with the path); derived paths measured 0.68-0.72 at 6 epochs.
# * GDAS on NAS-Bench-201: the supernet trains (median random path 0.86) but in ~60 steps Adam at the
#   reference arch_lr 3e-4 moves the logits by ~1e-2, so the derived argmax path is near noise (measured
#   0.575 at 4 epochs, 0.808 at 6, 0.592 at 8).
KNOWN_FAILURES = {
    ("darts", "skip_chain"): "skip_chain supernet: path-dependent scale of summed inputs (issue 18)",
    ("gdas", "skip_chain"): "skip_chain supernet: path-dependent scale of summed inputs (issue 18)",
    ("spos", "skip_chain"): "skip_chain supernet: path-dependent scale of summed inputs (issue 18)",
    ("gdas", "nb201"): "GDAS's derived argmax of near-uniform alphas after few steps (issue 18)",
}

CASES = [pytest.param(m, s, marks=[pytest.mark.xfail(reason=KNOWN_FAILURES[(m, s)], strict=False)]
                      if (m, s) in KNOWN_FAILURES else []) for m in ONESHOT.names() for s in TINY_SUPERNET_SPACES]


@pytest.mark.parametrize("name, space_name", CASES)
def test_supernet_learns_and_the_architecture_knowledge_moves(name: str, space_name: str) -> None:
    method, acc, start = train(name, space_name)
    assert acc >= MIN_ACCURACY, f"{name} on {space_name}: valid accuracy {acc:.3f} (chance {CHANCE:.2f})"
    state = method.state_dict()
    if method.has_alphas:
        rows = method.alphas()
        assert rows is not None
        # the logits start within ~1e-3 of zero (softmax within ~1e-4 of uniform); 40 Adam steps at
        # 3e-4 move them by up to ~1e-2: require the distribution to be at least 5e-4 off uniform
        # (measured 1e-3 to 1.5e-2) - moved by learning, not by the initial noise
        assert uniform_distance(rows) >= 5e-4, f"{name} on {space_name}: alphas stayed uniform"
    elif "controller" in state:
        # ENAS: REINFORCE must have changed the controller's policy (its parameters)
        moved = max(float((state["controller"][k] - start["controller"][k]).abs().max()) for k in state["controller"])
        assert moved > 1e-4, f"{name} on {space_name}: the controller never moved"
    else:
        # SPOS learns no distribution by design; its search must pick non-randomly: the derived path
        # scores at least the median of freshly drawn random paths on the same trained supernet
        net = method.supernet
        assert net is not None
        _, _, vx, vy = data(0)
        rng = np.random.default_rng(123)
        randoms = [accuracy(net, net.path_weights(method.space.sample(rng)), vx, vy, 60) for _ in range(9)]
        assert acc >= float(np.median(randoms)), f"{name} on {space_name}: {acc:.3f} vs random {randoms}"
