"""The ``tpe`` strategy: Optuna's TPESampler driven through ask/tell on the decision encoding."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

import archsearch.spaces.hyperparams  # noqa: F401 - registers the space
import archsearch.strategies.tpe  # noqa: F401 - registers the strategy
from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from test_spaces import SMALL_OPTIONS
from archsearch.testing.strategies import drive, fake_reward

CHAIN = SMALL_OPTIONS["chain"]


def done(number, arch, reward, ask_id=None):
    state = TrialState.FAILED if reward is None else TrialState.COMPLETE
    return Trial(number, arch, state, Fidelity(1), reward=reward, ask_id=ask_id)


@pytest.mark.parametrize("space_name", ["nb201", "chain", "hyperparams"])
def test_seeded_deterministic_and_failures_become_optuna_fail(space_name):
    options = {"hyperparams": {"space": {"name": "chain", **CHAIN}, "params": {"lr": [0.01, 0.1]}}}
    space = create_space(space_name, **options.get(space_name, SMALL_OPTIONS.get(space_name, {})))
    a_strategy = create_strategy("tpe", space, seed=3, n_startup_trials=5)
    a = drive(a_strategy, space, 25, fail_every=4)
    b = drive(create_strategy("tpe", space, seed=3, n_startup_trials=5), space, 25, fail_every=4)
    c = drive(create_strategy("tpe", space, seed=4, n_startup_trials=5), space, 25, fail_every=4)
    assert [str(t.arch) for t in a] == [str(t.arch) for t in b]
    assert [str(t.arch) for t in a] != [str(t.arch) for t in c]
    states = [t.state for t in a_strategy.study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) >= 6  # every 4th of 25 (plus any dropped duplicate)
    assert states.count(optuna.trial.TrialState.COMPLETE) == 19
    assert optuna.trial.TrialState.RUNNING not in states


def test_parallel_asks_are_matched_to_their_tells_and_replay_restores_the_state():
    space = create_space("chain", **CHAIN)

    def run(strategy):
        calls, pending, asked = [], [], 0
        for round_ in range(8):
            for _ in range(3):  # three workers ask before anything finishes
                p = strategy.ask()
                calls.append(("ask", str(p.arch)))
                pending.append(Trial(asked, p.arch, TrialState.RUNNING, Fidelity(1), ask_id=p.ask_id))
                asked += 1
            for t in reversed(pending):  # finish out of order, one of them failed
                failed = round_ % 3 == 0 and t is pending[0]
                strategy.tell(done(t.number, t.arch, None if failed else fake_reward(space, t.arch), t.ask_id))
                calls.append(("tell", str(t.arch)))
            pending.clear()
        return calls

    first = create_strategy("tpe", space, seed=11, n_startup_trials=4)
    calls = run(first)
    second = create_strategy("tpe", space, seed=11, n_startup_trials=4)
    assert run(second) == calls
    assert [str(first.ask().arch) for _ in range(4)] == [str(second.ask().arch) for _ in range(4)]
    # every complete optuna trial carries the reward of the architecture it proposed
    for ot in first.study.trials:
        if ot.state is optuna.trial.TrialState.COMPLETE:
            arch = space.decode([ot.params[n] for n in first._names])
            assert ot.value == pytest.approx(fake_reward(space, arch))


def test_replay_matches_in_a_fresh_process_with_another_hash_seed(tmp_path):
    """Resume happens in a new process: the proposals must not depend on str hashing."""
    script = tmp_path / "run.py"
    script.write_text(
        "import archsearch.strategies.tpe\n"
        "from archsearch.spaces import create_space\n"
        "from archsearch.strategies import create_strategy\n"
        "from archsearch.core import Trial, TrialState, Fidelity\n"
        "space = create_space('nb201')\n"
        "s = create_strategy('tpe', space, seed=5, n_startup_trials=3)\n"
        "for i in range(15):\n"
        "    p = s.ask()\n"
        "    s.tell(Trial(i, p.arch, TrialState.COMPLETE, Fidelity(1), reward=float(sum(space.encode(p.arch))),\n"
        "                 ask_id=p.ask_id))\n"
        "    print(p.arch)\n")
    outs = []
    for hash_seed in ("1", "2"):
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                           env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 15


def test_ordered_numeric_decisions_are_int_distributions_over_the_index():
    space = create_space("chain", layers=1, reductions=1, kernels=[1, 3, 5], channels=[4, 8],
                         ops=["conv", "max_pool", "identity"])
    tpe = create_strategy("tpe", space, seed=0)
    dists = {name.split(".")[-1]: d for name, d in tpe._dists.items()}
    assert dists["kernel"] == IntDistribution(0, 2)  # ordered numbers: TPE may use the order
    assert dists["op"] == CategoricalDistribution([0, 1, 2])  # names: no order
    assert dists["channels"] == CategoricalDistribution([0, 1])  # two choices: order means nothing
    plain = create_strategy("tpe", space, seed=0, ordinal=False)
    assert all(isinstance(d, CategoricalDistribution) for d in plain._dists.values())
    hp = create_space("hyperparams")
    dists = create_strategy("tpe", hp, seed=0)._dists
    assert isinstance(dists["hp.lr"], IntDistribution) and isinstance(dists["hp.optimizer"], CategoricalDistribution)


def test_tpe_beats_random_on_a_simple_objective():
    space = create_space("chain", **CHAIN)
    best = {}
    for name in ("random", "tpe"):
        scores = [max(t.reward for t in drive(create_strategy(name, space, seed=seed), space, 50))
                  for seed in range(4)]
        best[name] = np.mean(scores)
    assert best["tpe"] > best["random"] + 1.0


def test_dedupe_replaces_repeats_with_unseen_neighbours():
    # 1 layer of 2 x 2 x 2 x 2 = 16 architectures, 16 networks (both ops use every field: 16 ids); TPE alone
    # repeats itself quickly here
    space = create_space("chain", layers=1, reductions=1, ops=["conv", "sep_conv"], kernels=[1, 3], channels=[4, 8],
                         activations=["relu", "tanh"], stem_channels=4)
    repeats = {}
    for dedupe in (True, False):
        tpe = create_strategy("tpe", space, seed=0, n_startup_trials=3, dedupe=dedupe)
        archs = [str(t.arch) for t in drive(tpe, space, 16)]
        repeats[dedupe] = len(archs) - len(set(archs))
        if dedupe:  # the substitutes are in the study, so TPE learns from what was evaluated
            told = [space.decode([ot.params[n] for n in tpe._names]) for ot in tpe.study.trials
                    if ot.state is optuna.trial.TrialState.COMPLETE]
            assert sorted(map(str, told)) == sorted(archs)
    assert repeats[True] == 0 and repeats[False] > 0


def test_a_trial_it_never_asked_for_is_learned_and_a_repeat_pending_twice_is_told_twice():
    space = create_space("nb201")
    tpe = create_strategy("tpe", space, seed=0, dedupe=False)
    stranger = space.sample(np.random.default_rng(1))
    tpe.tell(done(7, stranger, 0.5))
    assert [(t.state, t.value) for t in tpe.study.trials] == [(optuna.trial.TrialState.COMPLETE, 0.5)]
    p = tpe.ask()
    tpe.study.enqueue_trial(tpe._params(p.arch))  # make the next ask propose the same architecture
    q = tpe.ask()
    assert p.arch == q.arch
    tpe.tell(done(1, q.arch, 0.25, q.ask_id))  # same architecture, told by ask id: each closes its own ask
    tpe.tell(done(2, p.arch, None, p.ask_id))
    states = [t.state for t in tpe.study.trials]
    assert states.count(optuna.trial.TrialState.RUNNING) == 0
    assert sorted(t.value for t in tpe.study.trials if t.value is not None) == [0.25, 0.5]
    numbers = {ot.number: ot for ot in tpe.study.trials}
    assert numbers[2].value == 0.25 and numbers[1].state is optuna.trial.TrialState.FAIL  # q's ask, p's ask


def test_options_are_validated_and_optuna_stays_quiet(caplog, capsys):
    space = create_space("nb201")
    with pytest.raises(ConfigError, match="strategy.n_startup_trials must be an integer >= 0"):
        create_strategy("tpe", space, n_startup_trials=-1)
    with pytest.raises(ConfigError, match="strategy.n_ei_candidates"):
        create_strategy("tpe", space, n_ei_candidates=0)
    with pytest.raises(ConfigError, match="strategy.multivariate must be true or false"):
        create_strategy("tpe", space, multivariate="yes")
    with pytest.raises(ConfigError, match=r"unknown option 'gamma' for strategy 'tpe' \(valid: .*n_startup_trials"):
        create_strategy("tpe", space, gamma=0.1)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    tpe = create_strategy("tpe", space, seed=0, n_startup_trials=2)
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    with caplog.at_level(logging.INFO):
        drive(tpe, space, 5)
    assert not [r for r in caplog.records if r.name.startswith("optuna")]
    assert "Trial" not in capsys.readouterr().err
