"""SPOS: every step trains one valid sampled path; derive ranks candidates; evolution beats random."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
import pytest
import torch

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.oneshot.base import create_oneshot
from archsearch.oneshot.spos import SPOS
from archsearch.spaces.supernet import Supernet
from archsearch.spaces.base import Architecture, create_space
from conftest import TINY_SUPERNET_SPACES, make_oneshot, oneshot_batches

TASK = Task((3, 8, 8), 3)
SPACES = TINY_SUPERNET_SPACES


pytestmark = pytest.mark.usefixtures("one_thread")


def make(space_name: str = "nb201", seed: int = 0, net_seed: int = 0, space_options: Any = None,
         **options: Any) -> tuple[SPOS, Supernet]:
    return make_oneshot("spos", space_name, seed, net_seed, space_options, task=TASK, **options)


def batches(seed: int, n: int, size: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return oneshot_batches(seed, n, size, TASK.input_shape)


def matches(target: Sequence[int]) -> Any:
    """A fake score: how many choice points of the scored path agree with ``target``; logs each call."""
    calls: list[float] = []

    def score(weights: Sequence[torch.Tensor]) -> float:
        assert all(float(w.sum()) == 1.0 and int(w.ne(0).sum()) == 1 for w in weights)  # one path
        calls.append(float(sum(int(w.argmax()) == t for w, t in zip(weights, target))))
        return calls[-1]

    score.calls = calls  # type: ignore[attr-defined]
    return score


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_every_step_trains_a_valid_sampled_path(space_name: str) -> None:
    method, net = make(space_name)
    space = method.space
    sampled: list[Architecture] = []
    seen: list[list[torch.Tensor]] = []
    real_sample, real_forward = space.sample, net.forward
    space.sample = lambda rng: sampled.append(real_sample(rng)) or sampled[-1]  # type: ignore[method-assign]
    net.forward = lambda x, w: seen.append([t.clone() for t in w]) or real_forward(x, w)  # type: ignore[method-assign]
    for train, valid in zip(batches(1, 3), batches(2, 3)):
        assert set(method.step(train, valid)) == {"train_loss"}
    assert len(sampled) == len(seen) == 3  # one sample and one forward (train batch only) per step
    for arch, weights in zip(sampled, seen):
        space.validate(arch)
        assert [torch.equal(a, b) for a, b in zip(weights, net.path_weights(arch))] == [True] * len(weights)


def test_only_the_sampled_path_learns() -> None:
    method, net = make("nb201")
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    arch = method.space.sample(np.random.default_rng(0))  # the same draw the step will make
    method.step(*batches(1, 2))
    ops = net.path(arch)
    for name, p in net.named_parameters():
        parts = name.split(".")
        if "edges" not in parts:
            continue
        edge, cand = int(parts[parts.index("edges") + 1]), int(parts[parts.index("edges") + 2])
        assert torch.equal(p, before[name]) == (cand != ops[edge]), name


def test_derive_returns_the_best_candidate() -> None:
    # 2^6 = 64 architectures: 64 candidates score every one, so the planted best must come back
    small = {"channels": 4, "cells_per_stage": 1, "ops": ["none", "skip_connect"]}
    for search in ("random", "evolution"):
        method, net = make("nb201", space_options=small, candidates=64, search=search, population=6)
        target = method.space.sample(np.random.default_rng(5))
        score = matches(net.path(target))
        assert method.derive(score) == target
        assert len(score.calls) == 64
        assert method.ranking[0] == (str(target), 6.0) and len(method.ranking) == 10
        assert [s for _, s in method.ranking] == sorted((s for _, s in method.ranking), reverse=True)
        assert method.eval_weights()[0].tolist() == net.path_weights(target)[0].tolist()
    # more candidates than paths: every path once, then stop
    method, net = make("nb201", space_options=small, candidates=500, search="random")
    score = matches([0] * 6)
    method.derive(score)
    assert len(score.calls) == 64


def test_ties_go_to_the_first_candidate() -> None:
    method, net = make("nb201", candidates=7, search="random")
    first: list[list[int]] = []

    def flat(weights: Sequence[torch.Tensor]) -> float:
        first.append([int(w.argmax()) for w in weights])
        return 0.5

    arch = method.derive(flat)
    assert net.path(arch) == first[0] and len(first) == 7


def test_max_skips_rejects_candidates_unscored() -> None:
    method, net = make("nb201", candidates=20, search="evolution", population=4, max_skips=0)
    skip = method.space.ops.index("skip_connect")
    score = matches([skip] * 6)  # prefers skip connections everywhere
    arch = method.derive(score)
    assert "skip_connect" not in arch.ops and len(score.calls) == 20
    assert max(score.calls) == 0.0  # no scored path had a skip
    only_skips = {"channels": 4, "cells_per_stage": 1, "ops": ["skip_connect"]}
    method, _ = make("nb201", space_options=only_skips, max_skips=0)
    with pytest.raises(ConfigError, match="strategy.max_skips=0"):
        method.derive(score)


def found_after(search: str, seed: int, budget: int) -> int:
    """How many candidates it takes to score the planted best (budget + 1: never)."""
    method, net = make("nb201", seed, candidates=budget, search=search, population=10)
    score = matches(net.path(method.space.sample(np.random.default_rng(1000 + seed))))
    method.derive(score)
    assert len(score.calls) == budget
    return score.calls.index(6.0) + 1 if 6.0 in score.calls else budget + 1


def test_evolution_finds_a_planted_best_faster_than_random() -> None:
    budget = 100  # of 5^6 = 15,625 architectures
    evolution = [found_after("evolution", seed, budget) for seed in range(5)]
    random = [found_after("random", seed, budget) for seed in range(5)]
    assert sum(n <= budget for n in evolution) >= 4, evolution
    assert np.mean(evolution) < np.mean(random), (evolution, random)


def run_epoch(method: SPOS, epoch: int, derives: int = 1) -> None:
    for train, valid in zip(batches(10 * epoch, 3), batches(10 * epoch + 5, 3)):
        method.step(train, valid)
    method.end_epoch(epoch)
    for _ in range(derives):
        method.derive(matches([1, 2, 3, 1, 2, 3]))


def test_resume_is_exact_and_derive_does_not_disturb_training() -> None:
    straight, net_a = make("nb201", epochs=2, candidates=8)
    run_epoch(straight, 1)
    run_epoch(straight, 2)

    first, net_b = make("nb201", epochs=2, candidates=8)
    run_epoch(first, 1, derives=2)  # an extra derive (e.g. the journal's) must not change the training
    buffer = io.BytesIO()
    torch.save({"state": first.state_dict(), "net": net_b.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # checkpoints load this way
    resumed, net_c = make("nb201", epochs=2, net_seed=7, candidates=8)
    resumed.load_state_dict(saved["state"])
    net_c.load_state_dict(saved["net"])
    assert resumed.arch == first.arch and resumed.ranking == first.ranking
    run_epoch(resumed, 2)

    assert all(torch.equal(p, q) for p, q in zip(net_a.state_dict().values(), net_c.state_dict().values()))
    assert straight.arch == resumed.arch and straight.ranking == resumed.ranking
    assert all(torch.equal(a, b) for a, b in zip(straight.eval_weights(), resumed.eval_weights()))


def test_eval_weights_before_any_derive_are_a_fixed_path() -> None:
    a, net = make("nb201", seed=3)
    b, _ = make("nb201", seed=3)
    weights = a.eval_weights()
    assert all(int(w.ne(0).sum()) == 1 for w in weights)
    assert [w.tolist() for w in weights] == [w.tolist() for w in b.eval_weights()]
    a.step(*batches(1, 2))
    assert [w.tolist() for w in weights] == [w.tolist() for w in a.eval_weights()]


@pytest.mark.parametrize("options, key", [
    ({"candidates": 0}, "candidates"), ({"candidates": 2.5}, "candidates"), ({"search": "grid"}, "search"),
    ({"population": 1}, "population"), ({"population": True}, "population"),
])
def test_option_errors(options: dict[str, Any], key: str) -> None:
    space = create_space("nb201", **SPACES["nb201"])
    with pytest.raises(ConfigError, match=f"strategy.{key} "):
        create_oneshot("spos", space, 0, device="cpu", **options)
