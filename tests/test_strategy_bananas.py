"""BANANAS: neural-predictor ensemble, mutation candidates, acquisition, replay."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

import archsearch.strategies.bananas  # noqa: F401
from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.options import replace
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from archsearch.strategies.bananas import Bananas
from archsearch.strategies.predictor import MLPEnsemble, transform_rewards

SMALL = {"initial": 5, "batch": 4, "candidates": 40, "epochs": 100}


def nb201_objective(space, arch) -> float:
    """A synthetic cell score with interactions: convs help, more so in series; 'none' on 0->3 hurts."""
    ops = arch.ops
    score = sum({"nor_conv_3x3": 1.0, "nor_conv_1x1": 0.6, "skip_connect": 0.3, "avg_pool_3x3": 0.1}.get(o, 0.0)
                for o in ops)
    score += 0.8 * (ops[0] == "nor_conv_3x3" and ops[4] == "nor_conv_3x3")
    return score - 1.5 * (ops[3] == "none")


def trial(i, arch, reward, parent=None):
    state = TrialState.COMPLETE if reward is not None else TrialState.FAILED
    return Trial(i, arch, state, Fidelity(1), parent, reward=reward)


def drive(strategy, space, n, objective=nb201_objective, width=1):
    """n evaluations, ``width`` asks outstanding at a time (parallel workers), tells in ask order."""
    history, pending = [], []
    while len(history) < n:
        while len(pending) < width and len(history) + len(pending) < n:
            pending.append(strategy.ask())
        p = pending.pop(0)
        t = trial(len(history), p.arch, objective(space, p.arch), p.parent)
        strategy.tell(t)
        history.append(t)
    return history


@pytest.fixture(scope="module")
def nb201():
    return create_space("nb201", channels=4, cells_per_stage=1)


def test_replay_with_parallel_asks_restores_the_queue_and_the_predictor(nb201):
    original = create_strategy("bananas", nb201, seed=5, **SMALL)
    calls = []  # the journal: asks and tells in their original order
    pending = []
    for i in range(30):
        while len(pending) < 3:
            p = original.ask()
            calls.append(("ask", p.arch))
            pending.append(p)
        p = pending.pop(0)
        t = trial(i, p.arch, None if i % 7 == 6 else nb201_objective(nb201, p.arch), p.parent)
        original.tell(t)
        calls.append(("tell", t))
    replayed = create_strategy("bananas", nb201, seed=5, **SMALL)
    for kind, item in calls:
        if kind == "ask":
            assert replayed.ask().arch == item
        else:
            replayed.tell(item)
    assert [str(original.ask().arch) for _ in range(6)] == [str(replayed.ask().arch) for _ in range(6)]


def test_the_predictor_learns_a_synthetic_objective(nb201):
    rng = np.random.default_rng(0)
    archs = list({str(a): a for a in (nb201.sample(rng) for _ in range(300))}.values())
    x = np.stack([nb201.features(a, "onehot") for a in archs]).astype(np.float64)
    y = np.array([nb201_objective(nb201, a) for a in archs])
    y = (y - y.mean()) / y.std()
    train, test = slice(0, 150), slice(150, None)
    model = MLPEnsemble(5, (32, 32), 300).fit(x[train], y[train], np.random.default_rng(1))
    preds = model.predict(x[test])
    assert preds.shape == (5, len(y[test]))
    assert spearmanr(preds.mean(axis=0), y[test])[0] > 0.9
    assert np.mean((preds.mean(axis=0) - y[test]) ** 2) < 0.15  # y has unit variance
    assert preds.std(axis=0).mean() > 1e-3  # the members disagree: the spread is the uncertainty


def test_candidates_mutate_the_best_architectures_and_are_never_seen_before(nb201):
    s = create_strategy("bananas", nb201, seed=1, initial=8, batch=4, candidates=30, parents=2, mutations=2,
                        epochs=50)
    history = drive(s, nb201, 8)
    assert all(t.parent is None for t in history)  # the initial design is random
    seen = {str(t.arch) for t in history}
    for i in range(8, 40):
        if (i - 8) % 4 == 0:  # an empty queue: this ask runs an iteration on the results so far
            best = sorted(history, key=lambda t: -t.reward)[:2]
        p = s.ask()
        assert str(p.arch) not in seen
        parent = next(t.arch for t in best if t.arch.id == p.parent)
        diff = sum(a != b for a, b in zip(nb201.encode(parent), nb201.encode(p.arch)))
        assert 1 <= diff <= 2
        seen.add(str(p.arch))
        t = trial(i, p.arch, nb201_objective(nb201, p.arch), p.parent)
        s.tell(t)
        history.append(t)


def test_parallel_asks_never_repeat_a_pending_architecture(nb201):
    s = create_strategy("bananas", nb201, seed=2, **SMALL)
    drive(s, nb201, 6)
    asked = [str(s.ask().arch) for _ in range(15)]  # no tells: several iterations on the same data
    assert len(set(asked)) == len(asked)


def test_bananas_beats_random_search_on_a_synthetic_objective(nb201):
    found = {"random": [], "bananas": []}
    for seed in range(4):
        for name in found:
            opts = {"initial": 10, "batch": 5, "candidates": 60, "epochs": 150} if name == "bananas" else {}
            s = create_strategy(name, nb201, seed=seed, **opts)
            found[name].append(max(t.reward for t in drive(s, nb201, 50)))
    assert np.mean(found["bananas"]) > np.mean(found["random"]) + 0.3


@pytest.mark.parametrize("acquisition", ["its", "ei", "ucb"])
def test_every_acquisition_searches(nb201, acquisition):
    s = create_strategy("bananas", nb201, seed=0, acquisition=acquisition, **SMALL)
    history = drive(s, nb201, 25)
    assert len({str(t.arch) for t in history}) == 25
    assert any(t.parent is not None for t in history[SMALL["initial"]:])


def test_acquisitions_prefer_a_high_mean_and_reward_uncertainty(nb201):
    s = create_strategy("bananas", nb201, seed=0, acquisition="ei")
    # (members, candidates); columns: low mean; high mean; low mean with a wide spread
    preds = np.array([[-0.5, 0.5, -2.0], [0.5, 1.5, 2.0], [-0.5, 0.5, -2.0], [0.5, 1.5, 2.0]])
    ei = s._acquire(preds, best=1.5)
    assert ei[1] > ei[0] > 0 and ei[2] > ei[1]
    s.opts = replace(s.opts, acquisition="ucb")
    assert list(np.argsort(-s._acquire(preds, best=1.5))) == [2, 1, 0]


def test_encoding_defaults_to_path_where_the_space_has_one():
    assert Bananas(create_space("nb201", channels=4, cells_per_stage=1)).encoding == "path"
    chain = create_space("chain", layers=3, channels=[4, 8], stem_channels=4)
    assert Bananas(chain).encoding == "onehot"
    with pytest.raises(ConfigError, match=r"strategy.encoding must be one of: auto, onehot \(space 'chain'"):
        Bananas(chain, encoding="path")


def test_options_are_validated(nb201):
    with pytest.raises(ConfigError, match="strategy.acquisition must be one of: its, ei, ucb"):
        create_strategy("bananas", nb201, acquisition="pi")
    with pytest.raises(ConfigError, match="strategy.ensemble must be an integer >= 1"):
        create_strategy("bananas", nb201, ensemble=0)
    with pytest.raises(ConfigError, match="strategy.batch"):
        create_strategy("bananas", nb201, batch=2.5)
    with pytest.raises(ConfigError, match="strategy.hidden"):
        create_strategy("bananas", nb201, hidden=[])


def test_failures_fall_back_to_random_until_two_results_arrive(nb201):
    s = create_strategy("bananas", nb201, seed=3, **SMALL)
    for i in range(8):  # every trial fails: no predictor can be fitted
        p = s.ask()
        assert p.parent is None
        s.tell(trial(i, p.arch, None))
    assert s.predictor is None


def test_reward_transforms_keep_the_order_and_log_gap_stretches_the_top():
    y = np.array([10.0, 60.0, 80.0, 84.0, 84.5, 84.9])
    z = transform_rewards(y, "standard")
    assert np.allclose(z, (y - y.mean()) / y.std())
    g = transform_rewards(y, "log_gap")
    assert list(np.argsort(g)) == list(np.argsort(y))  # monotone
    assert np.allclose(g, transform_rewards(y / 100.0, "log_gap"))  # scale-free: percent or fraction
    assert abs(g.mean()) < 1e-9 and np.isclose(g.std(), 1.0)
    # the top three are 0.9 apart out of a range of 75: log_gap spreads them far more than the z-score
    assert (g[5] - g[3]) > 5 * (z[5] - z[3])


def test_bananas_accepts_the_log_gap_target_and_rejects_unknown_ones(nb201):
    s = create_strategy("bananas", nb201, seed=0, target="log_gap", **SMALL)
    history = drive(s, nb201, 20)
    assert len({str(t.arch) for t in history}) == 20
    with pytest.raises(ConfigError, match="strategy.target must be one of: standard, log_gap"):
        create_strategy("bananas", nb201, target="rank")
