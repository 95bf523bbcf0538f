"""Multiple objectives: Pareto machinery, NSGA-II, MnasNet reward, constraints, latency, show --pareto."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch.nn as nn

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.estimation.resources import ResourceMeter
from archsearch.estimation.objectives import (
    MNAS_HARD, MNAS_SOFT, check_constraints, crowding_distance, hypervolume_2d, measure_latency, mnas_reward,
    non_dominated_sort, pareto_front, parse_objectives, violation,
)
from archsearch.spaces import create_space
from archsearch.strategies import create_strategy
from archsearch.strategies.nsga2 import Member, select_survivors
from conftest import TINY_ARGS

# -- non-dominated sorting, crowding, hypervolume (minimisation) ---------------------------------


def test_non_dominated_sort_with_ties_and_duplicates():
    pts = [(1, 5), (2, 3), (3, 1), (2, 3), (4, 4), (3, 3), (5, 5), (1, 6)]
    # (2, 3) twice: equal points do not dominate each other and share a front;
    # (1, 6) ties (1, 5) on the first objective and is worse on the second: dominated
    assert non_dominated_sort(pts) == [[0, 1, 2, 3], [5, 7], [4], [6]]
    assert pareto_front(pts) == [0, 1, 2, 3]
    assert non_dominated_sort([]) == [] and pareto_front([]) == []
    assert non_dominated_sort([(1, 1), (1, 1)]) == [[0, 1]]


def test_crowding_distance_by_hand():
    assert crowding_distance([(1, 5), (2, 3), (3, 1)]) == [math.inf, 2.0, math.inf]
    # duplicates: a stable order by (value, index) splits the gap between the two copies
    assert crowding_distance([(1, 5), (2, 3), (2, 3), (3, 1)]) == [math.inf, 1.0, 1.0, math.inf]
    # a constant objective adds nothing; the other still ranks the inner points
    assert crowding_distance([(0, 1), (0, 2), (0, 4)]) == [math.inf, 1.0, math.inf]
    assert crowding_distance([(0, 1), (0, 1), (0, 1)]) == [0.0, 0.0, 0.0]
    assert crowding_distance([(7, 7)]) == [math.inf] and crowding_distance([]) == []


def test_hypervolume_2d_by_hand():
    assert hypervolume_2d([(1, 2), (2, 1)], (3, 3)) == 3.0  # 2x1 + 1x1
    assert hypervolume_2d([(1, 2), (2, 1), (2, 2), (5, 0)], (3, 3)) == 3.0  # dominated / outside add nothing
    assert hypervolume_2d([], (3, 3)) == 0.0


def test_survivor_selection_cuts_the_last_front_by_crowding_and_puts_infeasible_last():
    arch = create_space("nb201", channels=4, cells_per_stage=1).sample(np.random.default_rng(0))
    members = [Member(arch, p) for p in [(1, 5), (2, 3), (2.2, 2.9), (3, 1), (4, 4)]]
    members.append(Member(arch, (0, 0), violation=0.5))  # would dominate all, but breaks a constraint
    members.append(Member(arch, (9, 9), violation=0.1))
    chosen = select_survivors(members, 3)
    # the first front has 4 points: the two ends (inf) survive, then the inner point with the larger
    # crowding distance: (2, 3) has 0.6 + 0.525 = 1.125, (2.2, 2.9) has 0.5 + 0.5 = 1.0
    assert [m.point for m in chosen] == [(1, 5), (3, 1), (2, 3)]
    assert crowding_distance([(1, 5), (2, 3), (2.2, 2.9), (3, 1)])[1:3] == pytest.approx([1.125, 1.0])
    everyone = select_survivors(members, 7)
    assert [m.point for m in everyone[-2:]] == [(9, 9), (0, 0)]  # infeasible last, smaller violation first
    assert [m.rank for m in everyone] == [0, 0, 0, 0, 1, 2, 3]


# -- NSGA-II -------------------------------------------------------------------------------------
Q = [0.0, 0.3, 0.6, 1.0, 0.2]  # per-op "accuracy" (none, skip, conv1x1, conv3x3, avg_pool)
COST = [0.0, 0.0, 1.0, 9.0, 0.0]  # per-op "parameters"
EDGE_W = [1.0, 0.8, 1.2, 0.6, 1.1, 1.4]
OBJECTIVES = ["acc:max", "cost:min"]


@pytest.fixture(scope="module")
def nb201():
    return create_space("nb201", channels=4, cells_per_stage=1)


def synthetic(space, arch) -> dict[str, float]:
    """A cheap two-objective problem with a real trade-off: better ops cost more."""
    idx = space.encode(arch)
    return {"acc": sum(w * Q[i] for w, i in zip(EDGE_W, idx)), "cost": sum(COST[i] for i in idx)}


def drive(strategy, space, n: int) -> list[Trial]:
    trials = []
    for i in range(n):
        p = strategy.ask()
        m = synthetic(space, p.arch)
        t = Trial(i, p.arch, TrialState.COMPLETE, Fidelity(1), p.parent, metrics=m, reward=m["acc"])
        strategy.tell(t)
        trials.append(t)
    return trials


def hypervolume(trials: list[Trial]) -> float:
    return hypervolume_2d([(-t.metrics["acc"], t.metrics["cost"]) for t in trials], (0.0, 55.0))


def test_nsga2_front_dominates_random_search_hypervolume(nb201):
    hv = {"random": [], "nsga2": []}
    for seed in range(4):
        hv["random"].append(hypervolume(drive(create_strategy("random", nb201, seed=seed), nb201, 60)))
        nsga = create_strategy("nsga2", nb201, seed=seed, objectives=OBJECTIVES, population_size=12)
        hv["nsga2"].append(hypervolume(drive(nsga, nb201, 60)))
    assert np.mean(hv["nsga2"]) > np.mean(hv["random"]) + 5.0, hv


def test_nsga2_generations_replay_and_parallel_asks(nb201):
    original = create_strategy("nsga2", nb201, seed=5, objectives=OBJECTIVES, population_size=4, offspring=3)
    history = drive(original, nb201, 13)
    assert all(t.parent is None for t in history[:4]) and all(t.parent for t in history[4:])
    assert original.generation == 1 + (13 - 4) // 3 and len(original.population) == 4
    assert len({str(t.arch) for t in history}) == 13  # repeats are re-drawn
    replayed = create_strategy("nsga2", nb201, seed=5, objectives=OBJECTIVES, population_size=4, offspring=3)
    for t in history:
        assert replayed.ask().arch == t.arch
        replayed.tell(t)
    assert [str(original.ask().arch) for _ in range(6)] == [str(replayed.ask().arch) for _ in range(6)]
    # asks never wait for tells: with nothing told they sample, then children keep coming
    eager = create_strategy("nsga2", nb201, seed=1, objectives=OBJECTIVES, population_size=3)
    assert all(eager.ask().parent is None for _ in range(8))
    drive(eager, nb201, 3)
    assert all(eager.ask().parent is not None for _ in range(8)) and eager.generation == 1


def test_nsga2_never_selects_failed_trials_and_ranks_infeasible_last(nb201):
    s = create_strategy("nsga2", nb201, seed=0, objectives=OBJECTIVES, population_size=2)
    rng = np.random.default_rng(0)
    a, b, c = (nb201.sample(rng) for _ in range(3))
    s.tell(Trial(0, a, TrialState.FAILED, Fidelity(1), metrics={"acc": 9.0, "cost": 0.0}))
    assert s.pool == []
    s.tell(Trial(1, b, TrialState.COMPLETE, Fidelity(1), metrics={"acc": 9.0, "cost": 0.0, "violation": 2.0},
                 reward=-3.0))
    s.tell(Trial(2, c, TrialState.COMPLETE, Fidelity(1), metrics={"acc": 1.0, "cost": 5.0}, reward=1.0))
    assert [m.arch for m in s.population] == [c, b] and s.population[1].rank == 1


def test_nsga2_reward_fallback_and_option_checks(nb201):
    s = create_strategy("nsga2", nb201, seed=0)  # valid_acc:max, params:min
    arch = nb201.sample(np.random.default_rng(0))
    assert s.point(Trial(0, arch, TrialState.COMPLETE, Fidelity(1), reward=0.7)) == (-0.7, 0.0)
    assert s.point(Trial(0, arch, TrialState.COMPLETE, Fidelity(1), metrics={"valid_acc": 0.5, "params": 10.0},
                         reward=0.7)) == (-0.5, 10.0)
    assert s.point(Trial(0, arch, TrialState.COMPLETE, Fidelity(1))) is None
    for options, needle in (({"objectives": ["valid_acc:up", "params:min"]}, "METRIC:max or METRIC:min"),
                            ({"objectives": ["valid_acc:max"]}, "at least two objectives"),
                            ({"objectives": ["params:max", "params:min"]}, "appears twice"),
                            ({"population_size": 1}, "population_size"),
                            ({"offspring": 0}, "offspring"),
                            ({"crossover_prob": 2}, "crossover_prob")):
        with pytest.raises(ConfigError, match=needle):
            create_strategy("nsga2", nb201, **options)
    assert [str(o) for o in parse_objectives("valid_acc, latency_b1:min")] == ["valid_acc:max", "latency_b1:min"]


# -- MnasNet reward, constraints, latency ----------------------------------------------------------
def test_mnas_reward_by_hand():
    assert mnas_reward(0.5, 0.08, 0.08) == 0.5  # at the target: accuracy
    assert mnas_reward(0.5, 0.16, 0.08) == pytest.approx(0.5 * 2 ** -0.07)  # soft: beta above the target
    assert mnas_reward(0.5, 0.04, 0.08) == pytest.approx(0.5 * 0.5 ** -0.07)  # soft: alpha below it
    assert mnas_reward(0.5, 0.04, 0.08) > 0.5
    assert mnas_reward(0.5, 0.04, 0.08, *MNAS_HARD) == 0.5  # hard: accuracy alone under the target
    assert mnas_reward(0.5, 0.16, 0.08, *MNAS_HARD) == pytest.approx(0.25)  # ... and acc * T / lat above
    # the paper's calibration: twice the latency for 5% more accuracy earns about the same reward
    assert MNAS_SOFT == (-0.07, -0.07)
    assert mnas_reward(1.05 * 0.6, 0.2, 0.1) == pytest.approx(mnas_reward(0.6, 0.1, 0.1), rel=1e-3)
    with pytest.raises(ValueError):
        mnas_reward(0.5, 0.0, 0.08)


def test_constraint_checks_and_violation():
    assert check_constraints(None) == {} and check_constraints({"max_params": 10, "max_flops": None}) == {"max_params": 10.0}
    with pytest.raises(ConfigError, match=r"unknown constraint 'max_size' \(valid: max_params, max_flops, max_latency\)"):
        check_constraints({"max_size": 3})
    with pytest.raises(ConfigError, match="max_params must be a positive number"):
        check_constraints({"max_params": -1})
    limits = {"max_params": 100.0, "max_latency": 0.01}
    assert violation({"params": 100.0, "latency_b1": 0.005}, limits) == 0.0
    assert violation({"params": 150.0, "latency_b1": 0.02}, limits) == pytest.approx(0.5 + 1.0)


def test_measure_latency_returns_positive_finite_medians_and_restores_the_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.train()
    lat = measure_latency(model, (1, 8, 8), batch_sizes=(1, 4), repeats=3, warmup=1)
    assert set(lat) == {1, 4} and all(0 < v < math.inf for v in lat.values())
    assert model.training
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency(model, (1, 8, 8), repeats=0)


@pytest.fixture(scope="module")
def chain():
    return create_space("chain", layers=2, channels=[8, 16], stem_channels=8)


FID = Fidelity(epochs=1, data_fraction=0.2)
DEFAULT_KEYS = {"valid_acc", "valid_loss", "train_loss", "params", "flops", "train_time", "epochs",
                "memory_estimate_mb"}  # the memory guard's estimate, on every training trial


def test_default_evaluator_and_constraints_never_measure_latency(chain, monkeypatch):
    import archsearch.estimation.training as training

    def refuse(*args, **kwargs):
        raise AssertionError("latency measured without being asked")

    monkeypatch.setattr(training, "measure_latency", refuse)
    arch = chain.parse("conv:3:8:relu|conv:3:16:relu")
    plain = TrainingEvaluator({"name": "digits"})
    r = run_trial(plain, chain, arch, FID, seed=0)
    assert r.status is TrialState.COMPLETE, r.error
    resources = set(ResourceMeter().metrics())  # what run_trial adds to every trial (cpu_s, peak_rss_mb)
    assert set(r.metrics) == DEFAULT_KEYS | resources and plain.objective == "valid_acc"

    limited = TrainingEvaluator({"name": "digits"}, constraints={"max_params": 100})
    r = run_trial(limited, chain, arch, FID, seed=0)
    assert r.status is TrialState.COMPLETE, r.error  # infeasible trials complete, penalised
    m = r.metrics
    assert limited.objective == "constrained_reward" and m["feasible"] == 0.0
    assert m["violation"] == pytest.approx((m["params"] - 100) / 100)
    assert m["constrained_reward"] == pytest.approx(-1.0 - m["violation"]) and "latency_b1" not in m


def test_mnas_reward_and_latency_constraint_from_the_evaluator(chain):
    arch = chain.parse("conv:3:8:relu|conv:3:16:relu")
    ev = TrainingEvaluator({"name": "digits"}, reward="mnas", target_latency=0.01, alpha=0.0, beta=-1.0,
                           latency_batch=8, latency_repeats=3, constraints={"max_latency": 100.0})
    r = run_trial(ev, chain, arch, FID, seed=0)
    assert r.status is TrialState.COMPLETE, r.error
    m = r.metrics
    assert 0 < m["latency_b1"] < math.inf and 0 < m["latency_b8"] < math.inf
    assert m["mnas_reward"] == pytest.approx(mnas_reward(m["valid_acc"], m["latency_b1"], 0.01, 0.0, -1.0))
    assert m["feasible"] == 1.0 and m["constrained_reward"] == m["mnas_reward"]
    assert ev.objective == "constrained_reward"
    final = ev.final(chain, arch, FID, seed=0).result.metrics  # the deployed model's latency, too
    assert 0 < final["latency_b1"] < math.inf and "test_acc" in final
    assert TrainingEvaluator({"name": "digits"}, reward="mnas", target_latency=0.01).objective == "mnas_reward"


@pytest.mark.parametrize("options, needle", [
    ({"reward": "speed"}, "evaluator.reward must be one of: valid_acc, mnas"),
    ({"reward": "mnas"}, "evaluator.target_latency must be a positive number"),
    ({"latency": "yes"}, "evaluator.latency must be true or false"),
    ({"latency_batch": 0}, "evaluator.latency_batch must be an integer >= 1"),
    ({"alpha": "x"}, "evaluator.alpha must be a number"),
    ({"constraints": {"max_flops": 0}}, "evaluator.constraints.max_flops must be a positive number"),
])
def test_evaluator_objective_options_are_checked(options, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        TrainingEvaluator({"name": "digits"}, **options)


# -- the CLI: an nsga2 search with latency, then show's Pareto front ------------------------------
@pytest.mark.slow
def test_cli_nsga2_latency_search_and_show_pareto(run_cli, tmp_path):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--out", out, "--budget", "4", "--strategy", "nsga2", "--seed", "1",
                           "--set", "strategy.population_size=2", "--set", "evaluator.latency=true",
                           "--set", "evaluator.latency_repeats=2", *TINY_ARGS)
    assert code == 0, err
    code, stdout, err = run_cli("show", out, "--json")
    assert code == 0, err
    data = json.loads(stdout)
    assert all(t["metrics"]["latency_b1"] > 0 and t["metrics"]["latency_b64"] > 0 for t in data["trials"])
    front = data["pareto"]
    assert front["objectives"] == ["valid_acc:max", "params:min"] and front["trials"]
    points = [(-t["metrics"]["valid_acc"], t["metrics"]["params"]) for t in data["trials"]]
    assert sorted(t["number"] for t in front["trials"]) == [data["trials"][i]["number"] for i in pareto_front(points)]

    png = str(tmp_path / "front.png")
    code, stdout, err = run_cli("show", out, "--pareto", "valid_acc:max,latency_b1:min", "--pareto-plot", png)
    assert code == 0, err
    assert "pareto front (valid_acc:max, latency_b1:min)" in stdout and "best: trial" in stdout
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    code, _, err = run_cli("show", out, "--pareto", "valid_acc:best,params:min")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "METRIC:max or METRIC:min" in lines[0]


def test_show_prints_a_front_only_for_multi_objective_searches():
    from archsearch import report

    def trial(n, acc, params, **extra):
        return {"number": n, "state": "complete", "arch": f"a{n}", "reward": acc, "error": None, "cost": 0.0,
                "attempts": 1, "parent": None, "fidelity": {}, "metrics": {"valid_acc": acc, "params": params, **extra}}

    data = {"trials": [trial(0, 0.9, 100.0), trial(1, 0.8, 50.0), trial(2, 0.7, 80.0)],
            "config": {"strategy": {"name": "evolution"}}}
    assert not report.is_multi_objective(data)  # show's text output stays as it was
    data["trials"].append(trial(3, 0.95, 10.0, violation=1.0))
    assert report.is_multi_objective(data)  # a constrained search
    front = report.pareto(data)
    assert [t["number"] for t in front["trials"]] == [0, 1]  # 2 dominated by 1; 3 infeasible
    data["config"]["strategy"] = {"name": "nsga2", "objectives": ["valid_acc:max", "latency_b1:min"]}
    assert report.is_multi_objective(data) and report.default_objectives(data) == ["valid_acc:max", "latency_b1:min"]
    assert report.pareto(data)["trials"] == []  # no trial has latency_b1


def test_language_models_measure_latency_on_tokens_and_refuse_constraints(tmp_path):
    from test_text_lm import write_corpus

    corpus = write_corpus(tmp_path / "toy", n=80)
    space = create_space("rnn_cell", leaves=2, hidden=8)
    arch = space.sample(np.random.default_rng(0))
    ev = TrainingEvaluator({"name": "text", "path": corpus, "seq_len": 8}, latency=True, latency_batch=4,
                           latency_repeats=2)
    r = run_trial(ev, space, arch, Fidelity(epochs=1), seed=0)
    assert r.status is TrialState.COMPLETE, r.error
    assert 0 < r.metrics["latency_b1"] < math.inf and 0 < r.metrics["latency_b4"] < math.inf
    assert ev.objective == "neg_valid_ppl"  # latency alone leaves the reward as it was
    for options in ({"constraints": {"max_params": 10}}, {"reward": "mnas", "target_latency": 0.01}):
        with pytest.raises(ConfigError, match="need a classification task"):
            TrainingEvaluator({"name": "text", "path": corpus, "seq_len": 8}, **options).task()
