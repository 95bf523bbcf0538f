"""Warm start: a wrapper proposes known architectures first, adopted by the inner strategy; --warm-start DIR."""

from __future__ import annotations

import json
import shutil

import pytest

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from test_spaces import SMALL_OPTIONS


@pytest.fixture(scope="module")
def space():
    return create_space("nb201", **SMALL_OPTIONS["nb201"])


def tell(strategy, number, proposal, reward):
    strategy.tell(Trial(number, proposal.arch, TrialState.COMPLETE, Fidelity(1), reward=reward,
                        ask_id=proposal.ask_id))


def test_warm_architectures_come_first_and_evolution_mutates_them_instead_of_sampling(space):
    import numpy as np

    rng = np.random.default_rng(0)
    warm = list(dict.fromkeys(str(space.sample(rng)) for _ in range(6)))[:4]
    s = create_strategy("warm_start", space, seed=0, archs=warm,
                        inner={"name": "evolution", "population_size": 4, "sample_size": 2})
    for i, text in enumerate(warm):
        p = s.ask()
        assert str(p.arch) == text and p.parent is None
        tell(s, i, p, float(len(warm) - i))
    nxt = s.ask()  # the population is full of warm architectures: evolution mutates one at once
    assert nxt.parent in {space.parse(t).id for t in warm}


def test_local_search_climbs_from_the_best_warm_architecture(space):
    import numpy as np

    rng = np.random.default_rng(1)
    warm = list(dict.fromkeys(str(space.sample(rng)) for _ in range(5)))[:3]
    s = create_strategy("warm_start", space, seed=0, archs=warm, inner={"name": "local_search", "initial": 3})
    for i in range(3):
        p = s.ask()
        tell(s, i, p, [1.0, 5.0, 2.0][i])  # the second is the best
    p = s.ask()
    assert p.parent == space.parse(warm[1]).id  # its first neighbour, not a fresh random sample


def test_without_archs_it_is_the_inner_strategy(space):
    a = create_strategy("warm_start", space, seed=3)
    b = create_strategy("evolution", space, seed=3, population_size=20)
    assert [a.ask().arch for _ in range(5)] == [b.ask().arch for _ in range(5)]


def test_bad_warm_start_options(space):
    with pytest.raises(ConfigError, match=r"strategy.archs\[1\] is not an architecture of space 'nb201'"):
        create_strategy("warm_start", space, archs=[str(space.sample(__import__("numpy").random.default_rng(0))),
                                                    "conv:3:32:relu"])
    with pytest.raises(ConfigError, match="strategy.archs must be a list"):
        create_strategy("warm_start", space, archs="abc")
    with pytest.raises(ConfigError, match="strategy.inner cannot be 'warm_start' itself"):
        create_strategy("warm_start", space, inner={"name": "warm_start"})


def test_cli_warm_start_from_a_finished_search_survives_its_deletion_on_resume(run_cli, tmp_path):
    common = ["--epochs", "1", "--data-fraction", "0.3", "--set", "space.layers=2", "--set", "final.enabled=false",
              "--quiet"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("search", "--budget", "4", *common, "--out", str(a))[0] == 0
    code, out, _ = run_cli("show", str(a), "--json")
    trials = json.loads(out)["trials"]
    best = [t["arch"] for t in sorted(trials, key=lambda t: (-t["reward"], t["number"]))][:2]
    assert run_cli("search", "--budget", "3", *common, "--out", str(b), "--warm-start", str(a),
                   "--warm-start-top", "2")[0] == 0
    first = [t["arch"] for t in json.loads(run_cli("show", str(b), "--json")[1])["trials"]][:2]
    assert first == best
    shutil.rmtree(a)  # the architectures live in b's config: resuming does not read a again
    code, out, err = run_cli("resume", str(b), "--budget", "4", "--quiet")
    assert code == 0, err
    assert len(json.loads(run_cli("show", str(b), "--json")[1])["trials"]) == 4


def test_cli_warm_start_errors(run_cli, tmp_path):
    code, _, err = run_cli("search", "--warm-start", str(tmp_path / "none"), "--budget", "1", "--quiet",
                           "--out", str(tmp_path / "x"))
    assert code == 2 and "no search there" in err and err.count("\n") == 1
    a = tmp_path / "a"
    assert run_cli("search", "--budget", "1", "--epochs", "1", "--data-fraction", "0.3", "--set", "space.layers=2",
                   "--set", "final.enabled=false", "--quiet", "--out", str(a))[0] == 0
    code, _, err = run_cli("search", "--space", "nb201", "--warm-start", str(a), "--budget", "1", "--quiet",
                           "--out", str(tmp_path / "y"))
    assert code == 2 and "used space 'chain', this one 'nb201'" in err
    assert not (tmp_path / "y").exists()  # nothing written


def test_cli_warm_start_with_inheritance_starts_from_the_earlier_trained_weights(run_cli, tmp_path):
    from conftest import journal_rows

    common = ["--epochs", "1", "--data-fraction", "0.3", "--set", "space.layers=2", "--set", "final.enabled=false",
              "--set", "evaluator.inherit=true", "--quiet"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("search", "--budget", "3", *common, "--out", str(a))[0] == 0
    code, _, err = run_cli("search", "--budget", "2", *common, "--out", str(b), "--warm-start", str(a),
                           "--warm-start-top", "2")
    assert code == 0, err
    rows = journal_rows(str(b))
    assert all(r["parent"] == r["arch_id"] for r in rows)  # each warm trial's parent: its own earlier weights
    assert all(json.loads(r["metrics"])["inherited"] == 1.0 for r in rows)  # same network: every tensor copied
    assert len(list((b / "weights").glob("*.pt"))) == 2
