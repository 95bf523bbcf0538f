"""Grid search and local search: enumeration, the size limit, climbing, moves, restarts, replay."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import archsearch.strategies.grid  # noqa: F401  (registers "grid")
import archsearch.strategies.local_search  # noqa: F401  (registers "local_search")
from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError, SearchAborted
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from test_spaces import SMALL_OPTIONS


def tiny_nb201(ops=("none", "skip_connect")):
    return create_space("nb201", ops=list(ops), **SMALL_OPTIONS["nb201"])


def told(strategy, proposal, reward, number=0):
    """Tell the trial of ``proposal`` (matched to its ask by id)."""
    trial = Trial(number, proposal.arch, TrialState.COMPLETE if reward is not None else TrialState.FAILED,
                  Fidelity(1), reward=reward, ask_id=proposal.ask_id)
    strategy.tell(trial)
    return trial


def run(strategy, objective, n):
    """Sequential ask/tell; returns the proposals."""
    out = []
    for i in range(n):
        p = strategy.ask()
        out.append(p)
        told(strategy, p, objective(p.arch), i)
    return out


# -- grid --------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["lexicographic", "shuffled"])
def test_grid_enumerates_every_architecture_once_then_says_it_is_exhausted(order):
    space = tiny_nb201()
    grid = create_strategy("grid", space, seed=1, order=order)
    archs = [grid.ask().arch for _ in range(64)]
    assert len({str(a) for a in archs}) == 64 == space.size()
    assert {tuple(space.encode(a)) for a in archs} == set(itertools.product(range(2), repeat=6))
    with pytest.raises(SearchAborted, match="grid exhausted: all 64 architectures"):
        grid.ask()


def test_grid_lexicographic_counts_up_and_shuffled_is_a_seeded_permutation():
    space = tiny_nb201(("none", "skip_connect", "nor_conv_3x3"))  # 3^6 = 729
    lex = [space.encode(create_strategy("grid", space, seed=s, order="lexicographic").ask().arch) for s in (0, 1)]
    assert lex == [[0] * 6, [0] * 6]
    grid = create_strategy("grid", space, order="lexicographic")
    ranks = [int("".join(map(str, space.encode(grid.ask().arch))), 3) for _ in range(10)]
    assert ranks == list(range(10))

    def first(seed, n=30):
        g = create_strategy("grid", space, seed=seed)
        return [str(g.ask().arch) for _ in range(n)]

    assert first(5) == first(5) and first(5) != first(6)
    # a truncated budget spreads over the space instead of covering one corner
    assert {space.encode(space.parse(a))[0] for a in first(5)} == {0, 1, 2}


def test_grid_refuses_a_space_too_large_to_enumerate():
    space = create_space("chain", **SMALL_OPTIONS["chain"])  # 2,985,984 points
    with pytest.raises(ConfigError, match=r"2,985,984 architectures, more than strategy.max_size=100,000; "
                                          r"restrict the space's options .* random or evolution"):
        create_strategy("grid", space)
    with pytest.raises(ConfigError, match=r"raise strategy.max_size \(up to 10,000,000\)"):
        create_strategy("grid", space)
    assert create_strategy("grid", space, max_size=3_000_000).total == 2_985_984
    darts = create_space("darts", **SMALL_OPTIONS["darts"])
    with pytest.raises(ConfigError, match=r"decision\) or use a sampling strategy"):  # no point raising the limit
        create_strategy("grid", darts)
    assert create_strategy("grid", tiny_nb201(), max_size=64).total == 64
    with pytest.raises(ConfigError, match="strategy.max_size=63"):
        create_strategy("grid", tiny_nb201(), max_size=63)
    with pytest.raises(ConfigError, match="strategy.order must be one of: shuffled, lexicographic"):
        create_strategy("grid", tiny_nb201(), order="random")
    with pytest.raises(ConfigError, match="strategy.max_size must be an integer"):
        create_strategy("grid", tiny_nb201(), max_size=0)


def test_grid_replays_to_the_same_position():
    space = create_space("nb201", **SMALL_OPTIONS["nb201"])
    original = create_strategy("grid", space, seed=2)
    history = run(original, lambda a: 1.0, 20)
    replayed = create_strategy("grid", space, seed=2)
    for i, p in enumerate(history):
        assert replayed.ask().arch == p.arch
        told(replayed, p, 1.0, i)
    assert [original.ask().arch for _ in range(5)] == [replayed.ask().arch for _ in range(5)]


# -- local search ----------------------------------------------------------------------
SPACE3 = ("none", "skip_connect", "nor_conv_3x3")  # 3^6 = 729 cells


def distance_objective(space, target):
    """Unimodal: minus the number of decisions that differ from ``target`` (its only optimum)."""
    return lambda arch: -float(sum(x != y for x, y in zip(space.encode(arch), target)))


@pytest.mark.parametrize("move", ["first", "best"])
def test_local_search_climbs_to_the_optimum_of_a_small_space(move):
    space = tiny_nb201(SPACE3)
    target = [2, 0, 1, 2, 1, 0]
    for seed in range(3):
        ls = create_strategy("local_search", space, seed=seed, move=move, initial=3)
        proposals = run(ls, distance_objective(space, target), 80)  # 729 points; random would need ~hundreds
        assert space.decode(target) in [p.arch for p in proposals]
        # every climbing proposal is a neighbour of the point it names as parent
        for p in proposals:
            if p.parent is not None:
                parent = next(q.arch for q in proposals if q.arch.id == p.parent)
                assert sum(x != y for x, y in zip(space.encode(parent), space.encode(p.arch))) == 1


def test_first_improvement_moves_at_once_and_best_improvement_after_the_whole_neighbourhood():
    space = tiny_nb201()  # 6 neighbours per point
    for move in ("first", "best"):
        ls = create_strategy("local_search", space, seed=0, move=move, initial=1)
        first = ls.ask()
        start = first.arch
        told(ls, first, 0.0)
        nb = ls.ask()
        assert nb.parent == start.id
        told(ls, nb, 1.0)  # better than the start
        nxt = ls.ask()
        if move == "first":
            assert nxt.parent == nb.arch.id  # moved to the first improvement
            continue
        assert nxt.parent == start.id  # still evaluating the start's neighbourhood
        told(ls, nxt, 5.0)
        rewards = iter([2.0, 3.0, 0.5, 0.1])
        for _ in range(4):  # the rest of the six
            p = ls.ask()
            assert p.parent == start.id
            told(ls, p, next(rewards))
        assert ls.ask().parent == nxt.arch.id  # moved to the best neighbour (5.0), not the first better


def test_local_optimum_restarts_from_the_best_of_fresh_samples():
    space = tiny_nb201(SPACE3)  # 12 neighbours per point
    ls = create_strategy("local_search", space, seed=4, move="best", initial=2, restart_samples=3)
    pa, pb = ls.ask(), ls.ask()
    a = pa.arch
    told(ls, pa, 10.0)
    told(ls, pb, 3.0)
    for _ in range(12):
        p = ls.ask()
        assert p.parent == a.id
        told(ls, p, 1.0)  # every neighbour worse: a is a local optimum
    assert ls.restarts == 1 and ls.current is None
    samples = [ls.ask() for _ in range(3)]
    assert all(p.parent is None for p in samples)
    for p, r in zip(samples, (4.0, 7.0, 5.0)):
        told(ls, p, r)
    assert ls.current == samples[1].arch and ls.ask().parent == samples[1].arch.id


def test_a_neighbour_subset_limits_each_step():
    space = tiny_nb201(SPACE3)
    ls = create_strategy("local_search", space, seed=1, initial=1, neighbours=3)
    first = ls.ask()
    start = first.arch
    told(ls, first, 5.0)
    for _ in range(3):
        p = ls.ask()
        assert p.parent == start.id
        told(ls, p, 1.0)
    assert ls.restarts == 1 and ls.ask().parent is None


def test_no_architecture_is_proposed_twice_even_with_parallel_asks():
    space = tiny_nb201(SPACE3)
    rng = np.random.default_rng(0)
    grid = (space.decode(list(i)) for i in itertools.product(range(3), repeat=6))
    table = {str(a): float(rng.random()) for a in grid}
    for move in ("first", "best"):
        ls = create_strategy("local_search", space, seed=7, move=move, initial=4)
        seen, n = [], 0
        while len(seen) < 600:
            batch = [ls.ask() for _ in range(int(rng.integers(1, 5)))]
            seen += [str(p.arch) for p in batch]
            for j in rng.permutation(len(batch)):
                told(ls, batch[j], table[str(batch[j].arch)], n)
                n += 1
        assert len(set(seen)) == len(seen)
        assert ls.restarts > 0  # it went through local optima and kept finding new points


def test_parallel_asks_hand_out_more_neighbours_then_fresh_samples():
    space = tiny_nb201()  # 6 neighbours
    ls = create_strategy("local_search", space, seed=3, initial=1)
    first = ls.ask()
    start = first.arch
    told(ls, first, 1.0)
    batch = [ls.ask() for _ in range(8)]
    assert [p.parent for p in batch] == [start.id] * 6 + [None, None]
    assert len({str(p.arch) for p in batch} | {str(start)}) == 9


def test_failed_trials_are_never_better_and_failed_samples_do_not_start_a_climb():
    space = tiny_nb201(SPACE3)
    ls = create_strategy("local_search", space, seed=0, initial=2)
    for i in range(2):
        told(ls, ls.ask(), None, i)
    assert ls.current is None
    p = ls.ask()  # still sampling: no complete sample to climb from
    assert p.parent is None
    told(ls, p, 0.5)
    nb = ls.ask()
    assert nb.parent == p.arch.id
    told(ls, nb, None)
    assert ls.current == p.arch  # a failed neighbour is no improvement


@pytest.mark.parametrize("move,order", [("first", "random"), ("best", "random"), ("first", "predicted")])
def test_local_search_replays_interleaved_asks_and_tells(move, order):
    """Resume replays asks and tells in their original order, batches and out-of-order tells included."""
    space = tiny_nb201(SPACE3)
    objective = distance_objective(space, [1, 1, 0, 2, 2, 0])
    rng = np.random.default_rng(1)
    events, pending = [], []
    opts = {"move": move, "initial": 3, "restart_samples": 2, "order": order, "epochs": 50}
    original = create_strategy("local_search", space, seed=5, **opts)
    for _ in range(60):
        if pending and (len(pending) >= 3 or rng.random() < 0.5):
            p = pending.pop(int(rng.integers(len(pending))))
            events.append(("tell", p))
            told(original, p, objective(p.arch))
        else:
            p = original.ask()
            pending.append(p)
            events.append(("ask", p))
    replayed = create_strategy("local_search", space, seed=5, **opts)
    for kind, p in events:
        if kind == "ask":
            assert replayed.ask() == p
        else:
            told(replayed, p, objective(p.arch))
    assert [str(original.ask().arch) for _ in range(6)] == [str(replayed.ask().arch) for _ in range(6)]


def test_predicted_order_evaluates_the_neighbours_the_predictor_ranks_best_first():
    """With a learnable objective the climb asks the neighbourhood roughly best-first; random order does not."""
    from scipy.stats import spearmanr

    space = tiny_nb201(SPACE3)
    value = {"none": 0.0, "skip_connect": 0.4, "nor_conv_3x3": 1.0}

    def objective(arch):
        return sum(value[op] for op in arch.ops) + 0.5 * (arch.ops[0] == arch.ops[4] == "nor_conv_3x3")

    def first_step_correlation(order, seed):
        ls = create_strategy("local_search", space, seed=seed, move="best", initial=40, order=order, epochs=200,
                             encoding="onehot")  # one-hot features model this additive objective exactly
        proposals = run(ls, objective, 40)  # the initial samples; the climb starts after the 40th tell
        start = ls.current
        asked = []
        for i in range(40, 80):
            p = ls.ask()
            if p.parent != start.id:
                break
            asked.append(p.arch)
            told(ls, p, objective(p.arch), i)
        assert len(asked) >= 6 and proposals
        return spearmanr(range(len(asked)), [objective(a) for a in asked])[0]

    predicted = [first_step_correlation("predicted", seed) for seed in range(6)]
    shuffled = [first_step_correlation("random", seed) for seed in range(6)]
    assert np.mean(predicted) < -0.6, predicted  # best first: reward falls along the ask order
    assert np.mean(predicted) < np.mean(shuffled) - 0.4, (predicted, shuffled)


def test_local_search_validates_its_options():
    space = tiny_nb201()
    with pytest.raises(ConfigError, match="strategy.move must be one of: first, best"):
        create_strategy("local_search", space, move="steepest")
    with pytest.raises(ConfigError, match="strategy.neighbours must be 'all' or an integer >= 1"):
        create_strategy("local_search", space, neighbours="some")
    with pytest.raises(ConfigError, match="strategy.initial must be an integer >= 1"):
        create_strategy("local_search", space, initial=0)
    with pytest.raises(ConfigError, match="strategy.restart_samples must be an integer >= 1"):
        create_strategy("local_search", space, restart_samples=1.5)
    with pytest.raises(ConfigError, match="strategy.order must be one of: random, predicted"):
        create_strategy("local_search", space, order="greedy")
    with pytest.raises(ConfigError, match="strategy.hidden must be a non-empty list"):
        create_strategy("local_search", space, order="predicted", hidden=[])
    with pytest.raises(ConfigError, match="strategy.encoding must be one of: auto, onehot, path"):
        create_strategy("local_search", space, order="predicted", encoding="adjacency")
