"""Successive halving, Hyperband and BOHB: rungs, promotions, bracket proportions, the model, replay."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from test_spaces import SMALL_OPTIONS


@pytest.fixture(scope="module")
def space():
    return create_space("nb201", **SMALL_OPTIONS["nb201"])


def quality(space, arch) -> float:
    """Lower decision indices are better; the reward grows with the epochs, as training does."""
    return -float(sum(space.encode(arch)))


def reward(space, proposal) -> float:
    return quality(space, proposal.arch) + 0.1 * proposal.fidelity["epochs"]


def run(strategy, space, n, fail=lambda p: False):
    proposals = []
    for i in range(n):
        p = strategy.ask()
        failed = fail(p)
        state = TrialState.FAILED if failed else TrialState.COMPLETE
        strategy.tell(Trial(i, p.arch, state, Fidelity().refined(p.fidelity), p.parent,
                            reward=None if failed else reward(space, p), ask_id=p.ask_id))
        proposals.append(p)
    return proposals


def test_successive_halving_promotes_the_top_third_of_each_rung_to_three_times_the_epochs(space):
    sh = create_strategy("successive_halving", space, seed=0, min_resource=1, max_resource=9, eta=3)
    assert [b.resources for b in sh.brackets] == [[1.0, 3.0, 9.0]]
    proposals = run(sh, space, 39)  # 27 bottom-rung + 9 + 3 promotions, interleaved as ASHA does
    epochs = Counter(p.fidelity["epochs"] for p in proposals)
    assert epochs[3] >= 8 and epochs[9] >= 2
    by_epochs = {e: [p for p in proposals if p.fidelity["epochs"] == e] for e in (1, 3, 9)}
    for low, high in ((1, 3), (3, 9)):
        promoted = {p.arch.id for p in by_epochs[high]}
        assert promoted <= {p.arch.id for p in by_epochs[low]}  # only architectures that ran at the rung below
        assert all(p.parent == p.arch.id for p in by_epochs[high])
        # each promoted one was in the top third of the rung below when it was promoted: overall, the promoted
        # ones are better than those left behind
        left = [quality(space, p.arch) for p in by_epochs[low] if p.arch.id not in promoted]
        assert min(quality(space, p.arch) for p in by_epochs[high]) >= np.median(left)
    # an architecture runs at most once per rung
    assert all(c == 1 for c in Counter((p.arch.id, p.fidelity["epochs"]) for p in proposals).values())


def test_asynchronous_promotion_needs_eta_results_and_never_waits_for_tells(space):
    sh = create_strategy("successive_halving", space, seed=1, eta=3)
    asked = [sh.ask() for _ in range(20)]  # parallel workers: no tell yet
    assert all(p.fidelity["epochs"] == 1 for p in asked) and len({p.arch.id for p in asked}) == 20
    for i, p in enumerate(asked[:2]):
        sh.tell(Trial(i, p.arch, TrialState.COMPLETE, Fidelity().refined(p.fidelity), None, reward=reward(space, p),
                      ask_id=p.ask_id))
    assert sh.ask().fidelity["epochs"] == 1  # 2 results: the top third is empty
    p = asked[2]
    sh.tell(Trial(2, p.arch, TrialState.COMPLETE, Fidelity().refined(p.fidelity), None, reward=reward(space, p),
                      ask_id=p.ask_id))
    promoted = sh.ask()
    assert promoted.fidelity["epochs"] == 3
    assert promoted.arch == max(asked[:3], key=lambda q: reward(space, q)).arch


def test_failed_trials_count_in_the_rung_but_are_never_promoted(space):
    sh = create_strategy("successive_halving", space, seed=2)
    proposals = run(sh, space, 60, fail=lambda p: p.fidelity["epochs"] == 1 and hash(p.arch.id) % 2 == 0)
    failed = {p.arch.id for p in proposals if p.fidelity["epochs"] == 1 and hash(p.arch.id) % 2 == 0}
    assert failed and not failed & {p.arch.id for p in proposals if p.fidelity["epochs"] > 1}


def test_hyperband_spreads_new_architectures_over_brackets_in_its_proportions(space):
    hb = create_strategy("hyperband", space, seed=0, min_resource=1, max_resource=9, eta=3)
    assert [b.resources for b in hb.brackets] == [[1.0, 3.0, 9.0], [3.0, 9.0], [9.0]]
    assert Counter(hb._bracket_schedule()) == {0: 9, 1: 6, 2: 3}  # n_s = ceil(3 / (s + 1)) * 3**s
    starts = Counter()
    for p in run(hb, space, 80):
        if p.parent is None:
            starts[p.fidelity["epochs"]] += 1
    assert starts[1] > starts[3] > starts[9] > 0


def test_data_fraction_resource(space):
    sh = create_strategy("successive_halving", space, seed=0, resource="data_fraction", min_resource=0.25,
                         max_resource=1.0, eta=2, epochs=4)
    assert sh.brackets[0].resources == [0.25, 0.5, 1.0]
    fidelities = [p.fidelity for p in run(sh, space, 30)]
    assert {f["data_fraction"] for f in fidelities} == {0.25, 0.5, 1.0} and {f["epochs"] for f in fidelities} == {4}
    assert all(set(f) == {"epochs", "data_fraction"} for f in fidelities)  # it sets nothing else


def test_bohb_picks_new_architectures_with_its_model_and_they_beat_uniform_ones(space):
    mean_quality = {}
    for name in ("hyperband", "bohb"):
        qualities = []
        for seed in range(3):
            opts = {"min_points": 8, "candidates": 60, "predictor_epochs": 100} if name == "bohb" else {}
            s = create_strategy(name, space, seed=seed, **opts)
            proposals = run(s, space, 70)
            qualities += [quality(space, p.arch) for p in proposals[35:] if p.parent is None]
        mean_quality[name] = np.mean(qualities)
        if name == "bohb":
            assert s.model_based_picks > 0
    assert mean_quality["bohb"] > mean_quality["hyperband"] + 1.0, mean_quality


@pytest.mark.parametrize("name", ["successive_halving", "hyperband", "bohb"])
def test_replay_with_interleaved_asks_and_tells(space, name):
    opts = {"min_points": 6, "candidates": 30, "predictor_epochs": 50} if name == "bohb" else {}
    rng = np.random.default_rng(0)
    events, pending = [], []
    original = create_strategy(name, space, seed=4, **opts)
    for i in range(60):
        if pending and (len(pending) >= 3 or rng.random() < 0.5):
            p = pending.pop(int(rng.integers(len(pending))))
            t = Trial(i, p.arch, TrialState.COMPLETE, Fidelity().refined(p.fidelity), p.parent, reward=reward(space, p),
                      ask_id=p.ask_id)
            events.append(("tell", t))
            original.tell(t)
        else:
            p = original.ask()
            pending.append(p)
            events.append(("ask", p))
    replayed = create_strategy(name, space, seed=4, **opts)
    for kind, item in events:
        if kind == "ask":
            assert replayed.ask() == item
        else:
            replayed.tell(item)
    assert [original.ask() for _ in range(5)] == [replayed.ask() for _ in range(5)]


def test_multi_fidelity_options_are_checked(space):
    cases = [
        ({"resource": "time"}, "strategy.resource must be one of: epochs, data_fraction"),
        ({"eta": 1}, "strategy.eta must be an integer >= 2"),
        ({"min_resource": 0}, "strategy.min_resource must be an integer >= 1"),
        ({"min_resource": 9, "max_resource": 3}, "must be below strategy.max_resource"),
        ({"min_resource": 2, "max_resource": 4}, "at least eta"),
        ({"resource": "data_fraction", "min_resource": 0.1, "max_resource": 1.5}, r"max_resource must be a number in"),
    ]
    for options, match in cases:
        with pytest.raises(ConfigError, match=match):
            create_strategy("hyperband", space, **options)
    with pytest.raises(ConfigError, match="strategy.random_fraction must be a number in"):
        create_strategy("bohb", space, random_fraction=2)
    with pytest.raises(ConfigError, match="strategy.min_points must be an integer >= 2"):
        create_strategy("bohb", space, min_points=1)


def test_a_fidelity_per_proposal_reaches_the_journal(tmp_path, run_cli):
    """End to end on digits: successive halving's trials train at 1 and 3 epochs, recorded per trial."""
    import json
    import sqlite3

    out = tmp_path / "sh"
    code, stdout, stderr = run_cli("search", "--strategy", "successive_halving", "--budget", "5",
                                   "--data-fraction", "0.25",
                                   "--set", "space.layers=2", "--set", "strategy.max_resource=3",
                                   "--set", "final.enabled=false", "--quiet", "--out", str(out))
    assert code == 0, stdout + stderr
    rows = sqlite3.connect(out / "journal.sqlite").execute("SELECT fidelity FROM trials").fetchall()
    epochs = Counter(json.loads(r[0])["epochs"] for r in rows)
    assert set(epochs) == {1, 3} and epochs[1] > epochs[3] >= 1


def test_the_incumbent_is_the_best_at_the_highest_fidelity_reached():
    """A lucky 1-epoch reward does not beat the promoted architectures' full-fidelity rewards."""
    from archsearch.core import incumbent

    low, high = {"epochs": 1, "data_fraction": 1.0}, {"epochs": 9, "data_fraction": 1.0}
    trials = [(0, 0.99, low), (1, 0.95, high), (2, 0.97, high), (3, 0.97, high | {"width": 1.0})]
    assert incumbent(trials) == 2  # the highest reward at 9 epochs; ties to the earlier trial
    assert incumbent([(0, 0.5, low), (1, 0.7, low)]) == 1  # one fidelity: the highest reward
    assert incumbent([(0, 0.9, {"epochs": 3, "data_fraction": 1.0}),
                      (1, 0.8, {"epochs": 9, "data_fraction": 0.5})]) == 1  # 4.5 epochs of data beat 3
    assert incumbent([]) is None


@pytest.mark.parametrize("name", ["successive_halving", "hyperband", "bohb"])
def test_proposals_refine_the_configured_fidelity_in_the_journal(tmp_path, name):
    """A proposal changes only the fields it sets: width, resolution and data fraction configured by
    the user stay in every trial (they were silently reset to the defaults before)."""
    import json

    import archsearch
    from conftest import journal_rows, tiny_config

    cfg = tiny_config(strategy={"name": name, "min_resource": 1, "max_resource": 3},
                      fidelity={"epochs": 1, "data_fraction": 0.3, "resolution": 6, "width": 0.5},
                      budget={"trials": 5})
    archsearch.run_search(cfg, str(tmp_path / "run"), quiet=True)
    fidelities = [json.loads(r["fidelity"]) for r in journal_rows(str(tmp_path / "run"))]
    assert {f["epochs"] for f in fidelities} >= {1, 3}  # the strategy's own resource moved
    assert all((f["data_fraction"], f["resolution"], f["width"]) == (0.3, 6, 0.5) for f in fidelities), fidelities


def test_refined_names_unknown_fields():
    assert Fidelity(epochs=2, width=0.5).refined({"epochs": 4}) == Fidelity(epochs=4, width=0.5)
    assert Fidelity().refined(None) == Fidelity()
    with pytest.raises(ConfigError, match=r"unknown fidelity field\(s\) 'epoch' \(valid: epochs"):
        Fidelity().refined({"epoch": 3})


@pytest.mark.parametrize("name", ["successive_halving", "hyperband", "bohb"])
def test_a_real_search_keeps_the_configured_fidelity_and_takes_epochs_from_the_strategy(tmp_path, name):
    """Through a real Experiment: every trial's recorded fidelity keeps the configured width, resolution and
    data fraction; only the epochs are the strategy's (its rung)."""
    import json

    from archsearch import run_search
    from conftest import journal_rows, tiny_config

    cfg = tiny_config(strategy={"name": name, "max_resource": 3},
                      fidelity={"epochs": 1, "data_fraction": 0.3, "width": 0.5, "resolution": 6}, budget={"trials": 5})
    run_search(cfg, str(tmp_path / name), quiet=True)
    fidelities = [json.loads(row["fidelity"]) for row in journal_rows(str(tmp_path / name))]
    assert len(fidelities) == 5
    for f in fidelities:
        assert (f["width"], f["resolution"], f["data_fraction"]) == (0.5, 6, 0.3)
    assert {f["epochs"] for f in fidelities} == {1, 3}  # rungs of 1 and 3 epochs, whatever fidelity.epochs says
