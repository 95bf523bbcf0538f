"""The time planner: its arithmetic (plan.py), a whole job kept within its budget on an injected clock,
the evaluation cache, and the bad inputs of ``--time``."""

from __future__ import annotations

import os

import pytest

from archsearch.config import Budget, Config, parse_duration
from archsearch.core import TrialState
from archsearch.errors import ConfigError
from archsearch.experiment import Experiment
from archsearch.plan import FINAL_SHARE, MARGIN, MIN_ARCHS, TARGET_TRIALS, Workload, make_plan, minimum_total


def work(train_s: float = 1e-3, n_train: int = 10_000, **kw: float) -> Workload:
    base = dict(train_s=train_s, eval_s=train_s / 3, min_train_s=train_s / 4, min_eval_s=train_s / 12,
                overhead_s=0.5, n_train=n_train, n_valid=2000, n_test=2000, n_final=12_000)
    base.update(kw)
    return Workload(**base)  # type: ignore[arg-type]


# -- durations -----------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), (45, 45),
                                          ("2.5m", 150), (" 30 ", 30)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", [0, -3, "abc", "", "10x", True, "m", float("nan")])
def test_bad_durations_name_the_forms(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"budget.time must be a positive duration such as 90s, 10m"):
        Budget(time=bad)  # type: ignore[arg-type]


def test_time_alone_has_no_trial_limit_and_both_mean_whichever_first() -> None:
    assert Budget().trial_limit == 30
    assert Budget(time=60).trial_limit is None
    assert Budget(time=60, trials=5).trial_limit == 5


# -- the arithmetic -------------------------------------------------------------------------
def test_the_split_adds_up_and_keeps_the_margin() -> None:
    w = work()
    plan = make_plan(600, 10, w, 10, 1.0, 40, True, None, choose_strategy=False)
    assert plan.setup + plan.search_seconds + plan.final_seconds == pytest.approx(600 * (1 - MARGIN))
    assert plan.final_seconds <= FINAL_SHARE * (600 * (1 - MARGIN) - 10) + 1e-9
    # the named strategy keeps its name and gets at least TARGET_TRIALS trials at the chosen fidelity
    assert plan.strategy is None and plan.rungs is None
    assert plan.trials >= TARGET_TRIALS
    assert plan.trials * w.trial_seconds(plan.epochs, plan.data_fraction) <= plan.search_seconds
    # and that fidelity is the most effort that allows it: one step up the ladder would not fit
    effort = plan.epochs * plan.data_fraction
    for e, f in [(plan.epochs * 2, plan.data_fraction), (plan.epochs, min(1.0, plan.data_fraction * 2))]:
        if e * f > effort and e <= 10:
            assert plan.search_seconds // w.trial_seconds(e, f) < TARGET_TRIALS


def test_final_training_takes_less_when_its_epochs_need_less() -> None:
    small = work(train_s=1e-5, n_train=1000, n_final=1300)
    plan = make_plan(600, 1, small, 10, 1.0, 40, True, None, False)
    assert plan.final_epochs == 40  # all the configured epochs fit ...
    assert plan.final_seconds == pytest.approx(small.final_seconds(40))  # ... and take only their time
    assert plan.search_seconds > 0.9 * (600 * (1 - MARGIN) - 1 - plan.final_seconds)
    assert plan.epochs == 10 and plan.data_fraction == 1.0  # cheap: the configured fidelity itself


def test_no_final_training_gives_the_search_everything() -> None:
    plan = make_plan(300, 5, work(), 10, 1.0, 40, False, None, False)
    assert plan.final_seconds == 0 and plan.final_epochs == 0
    assert plan.search_seconds == pytest.approx(300 * (1 - MARGIN) - 5)


def test_successive_halving_when_the_strategy_is_the_planners() -> None:
    w = work()
    plan = make_plan(600, 10, w, 10, 1.0, 40, True, None, choose_strategy=True)
    assert plan.strategy is not None and plan.strategy["name"] == "successive_halving"
    assert plan.rungs in ([1, 3, 9], [1, 3])
    assert plan.strategy["max_resource"] == plan.rungs[-1] == plan.epochs
    assert plan.trials >= MIN_ARCHS
    per_arch = sum(w.trial_seconds(r, plan.data_fraction) * 3 ** -k for k, r in enumerate(plan.rungs))
    assert plan.trials * per_arch <= plan.search_seconds + 1e-9


def test_too_little_time_for_halving_falls_back_to_the_cheapest_fidelity() -> None:
    w = work(train_s=2e-2)
    plan = make_plan(400, 10, w, 10, 1.0, 40, True, None, choose_strategy=True)
    assert plan.strategy is None
    assert plan.epochs == 1 and plan.data_fraction == 0.05
    assert plan.trials == int(plan.search_seconds // w.trial_seconds(1, 0.05))


def test_trial_limit_and_workers() -> None:
    w = work()
    one = make_plan(600, 10, w, 10, 1.0, 40, True, None, False)
    two = make_plan(600, 10, w, 10, 1.0, 40, True, None, False, workers=2)
    assert two.epochs * two.data_fraction >= one.epochs * one.data_fraction
    assert two.trials >= 2 * one.trials - 2 or two.epochs * two.data_fraction > one.epochs * one.data_fraction
    capped = make_plan(600, 10, w, 10, 1.0, 40, True, 5, False)
    assert capped.trials <= 5
    assert capped.epochs * capped.data_fraction >= one.epochs * one.data_fraction  # 5 trials afford more each


def test_too_short_says_the_minimum() -> None:
    w = work()
    least = minimum_total(w, 3, True)
    with pytest.raises(ConfigError, match=rf"too short .* at least {int(-(-least // 1))} s"):
        make_plan(least * 0.9, 3, w, 10, 1.0, 40, True, None, False)
    make_plan(least * 1.01, 3, w, 10, 1.0, 40, True, None, False)  # just enough: a plan


# -- a whole job on an injected clock ---------------------------------------------------------
class FakeClock:
    """Seconds that pass only when a trial or the final training 'costs' them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SECONDS_PER_FLOP_SAMPLE = 3e-8  # the injected machine: per sample, per FLOP of the network


def fake_machine(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> list[float]:
    """Timing and training cost what the injected machine says: measured per-sample times come from the
    network's FLOPs, trials and the final training advance the clock by their cost. Returns the trial costs."""
    import archsearch.experiment_plan as plan_module
    from archsearch.estimation.cost import profile_network
    from archsearch.estimation.training import TrainingEvaluator

    costs: list[float] = []

    def timed(model, input_shape, num_classes, batch_size, generator, steps=3, warmup=1):  # noqa: ANN001, ANN202
        flops = profile_network(model, input_shape).flops
        return SECONDS_PER_FLOP_SAMPLE * flops, SECONDS_PER_FLOP_SAMPLE * flops / 3

    real_evaluate, real_final = TrainingEvaluator.evaluate, TrainingEvaluator.final

    def evaluate(self, space, arch, fidelity, seed, init=None, reference=None):  # noqa: ANN001, ANN202
        result = real_evaluate(self, space, arch, fidelity, seed, init, reference)
        samples = max(2, round(len(self.splits().train) * fidelity.data_fraction))
        per = SECONDS_PER_FLOP_SAMPLE * result.metrics["flops"]
        result.cost = fidelity.epochs * (samples * per + len(self.splits().valid) * per / 3) + 0.5
        clock.now += result.cost
        costs.append(result.cost)
        return result

    def final(self, space, arch, fidelity, seed, train_on_valid=True, on_epoch=None, until=None):  # noqa: ANN001, ANN202
        out = real_final(self, space, arch, fidelity, seed, train_on_valid, on_epoch)  # real time is not the budget
        splits = self.splits()
        per = SECONDS_PER_FLOP_SAMPLE * profile_network(out.model, tuple(splits.task.input_shape)).flops
        clock.now += fidelity.epochs * (len(splits.train) + len(splits.valid)) * per + len(splits.test) * per / 3
        return out

    monkeypatch.setattr(plan_module, "time_network", timed)
    monkeypatch.setattr(TrainingEvaluator, "evaluate", evaluate)
    monkeypatch.setattr(TrainingEvaluator, "final", final)
    monkeypatch.setattr(Experiment, "clock", staticmethod(clock))
    return costs


def tiny_config(**budget: object) -> Config:
    return Config.from_dict({
        "space": {"name": "chain", "layers": 2, "channels": [4, 8, 16], "stem_channels": 4},
        "dataset": {"name": "digits"}, "fidelity": {"epochs": 3}, "final": {"epochs": 5},
        "budget": budget, "report": False})


@pytest.mark.parametrize("budget", [40.0, 120.0])
def test_the_whole_job_ends_within_its_budget(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                              budget: float) -> None:
    clock = FakeClock()
    costs = fake_machine(monkeypatch, clock)
    start = clock.now
    exp = Experiment.create(tiny_config(time=budget), str(tmp_path), quiet=True)
    try:
        summary = exp.run()
        plan = exp.journal.get_meta("plan")
        trials = exp.trials()
    finally:
        exp.close()
    used = clock.now - start
    assert used <= budget * 1.05, f"the job took {used:.1f} s of a {budget} s budget"
    assert used >= budget * 0.5, f"the job left most of its budget unused ({used:.1f} of {budget} s)"
    assert summary.final is not None and summary.final["planned"]["epochs"] >= 1
    assert plan["strategy"] is None or plan["strategy"]["name"] == "successive_halving"
    assert plan["cost_model"]["model"].startswith("seconds/sample") and len(plan["cost_model"]["samples"]) >= 2
    assert plan["cost_model"]["observed"], "the trials' measurements did not reach the cost model"
    assert len(costs) >= 3  # the probe trial and at least two search trials
    skipped = [t for t in trials if t.state is TrialState.FAILED and (t.error or "").startswith("skipped: ")]
    for t in skipped:  # a proposal that cannot finish in time: recorded with why and its cost, never trained
        assert "would take" in (t.error or "")
        assert t.metrics["skipped"] == 1.0 and "expected_seconds" in t.metrics and "train_time" not in t.metrics
    assert all("expected_seconds" in t.metrics for t in trials if t.state is TrialState.COMPLETE
               and not t.metrics.get("cached"))


def test_constraints_no_network_meets_fail_before_anything_is_written(tmp_path: object) -> None:
    cfg = tiny_config(time=60.0)
    cfg.evaluator["constraints"] = {"max_params": 10}
    out = os.path.join(str(tmp_path), "run")
    with pytest.raises(ConfigError, match=r"no architecture meets evaluator.constraints .* smallest had"):
        Experiment.create(cfg, out, quiet=True)
    assert not os.path.exists(out)


def test_a_budget_too_short_fails_before_anything_is_written(tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "run")
    with pytest.raises(ConfigError, match=r"budget.time 0 s is too short .* at least \d+ s"):
        Experiment.create(tiny_config(time=0.05), out, quiet=True)
    assert not os.path.exists(out)


# -- the evaluation cache ------------------------------------------------------------------------
def one_network_config(trials: int) -> Config:
    return Config.from_dict({
        "space": {"name": "chain", "layers": 1, "ops": ["conv"], "kernels": [3], "channels": [4],
                  "activations": ["relu"], "stem_channels": 4, "reductions": 1},
        "strategy": {"name": "random"}, "dataset": {"name": "digits"}, "fidelity": {"epochs": 1},
        "final": {"enabled": False}, "budget": {"trials": trials}, "report": False})


def test_a_repeated_network_is_trained_once_even_across_resume(tmp_path: object,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from archsearch.estimation.training import TrainingEvaluator

    trained: list[str] = []
    real = TrainingEvaluator.evaluate

    def counting(self, space, arch, *args, **kwargs):  # noqa: ANN001, ANN202
        trained.append(arch.id)
        return real(self, space, arch, *args, **kwargs)

    monkeypatch.setattr(TrainingEvaluator, "evaluate", counting)
    out = str(tmp_path)
    exp = Experiment.create(one_network_config(3), out, quiet=True)
    try:
        exp.run()
    finally:
        exp.close()
    assert len(trained) == 1
    exp = Experiment.open(out, budget=5)
    try:
        exp.run()
        trials = exp.trials()
        best = exp.best_trial()
    finally:
        exp.close()
    assert len(trained) == 1, "the resumed search trained a network the journal already had"
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    first = trials[0]
    for t in trials[1:]:
        assert t.metrics["cached"] == 1.0 and t.metrics["cached_from"] == first.number
        assert t.reward == first.reward and t.cost == 0.0
    assert best is not None and best.number == first.number  # ties go to the earlier trial: the one trained


# -- bad input on the command line ---------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--time", "0"], "budget.time must be a positive duration such as 90s, 10m, 2h or 1h30m"),
    (["--time", "abc"], "budget.time must be a positive duration such as 90s, 10m, 2h or 1h30m"),
    (["--time", "0.05s"], "too short for this data on this machine"),
    (["--time", "5m", "--set", "evaluator.constraints={max_params: 10}"], "no architecture meets evaluator.constraints"),
])
def test_bad_time_budgets_are_one_line_and_write_nothing(run_cli, tmp_path: object, args: list[str],
                                                         message: str) -> None:
    out = os.path.join(str(tmp_path), "run")
    code, stdout, stderr = run_cli("search", *args, "--set", "space.layers=2", "--out", out)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not os.path.exists(out)


# -- the chain space sizes itself for the data ---------------------------------------------------
def test_chain_layers_run_at_most_16_px_so_cost_hardly_grows_with_resolution() -> None:
    import numpy as np

    from archsearch.core import Task
    from archsearch.estimation.cost import profile_network
    from archsearch.spaces.base import create_space
    from archsearch.spaces.chain import stem_halvings

    assert [stem_halvings(s, 16) for s in (8, 16, 17, 28, 32, 64, 224)] == [0, 0, 1, 1, 1, 2, 4]
    assert stem_halvings(224, 0) == 0  # 0: the stem never halves (the space before sizing)
    space = create_space("chain", layers=4, channels=[16, 32])

    def median_flops(size: int, stem_max_size: int = 16) -> float:
        s = create_space("chain", layers=4, channels=[16, 32], stem_max_size=stem_max_size)
        rng = np.random.default_rng(0)
        return float(np.median([profile_network(s.build(s.sample(rng), Task((1, size, size), 10)),
                                                (1, size, size)).flops for _ in range(6)]))

    at16 = median_flops(16)
    for size, bound in ((28, 1.6), (32, 1.6), (64, 2.5)):  # the layers see <= 16 px whatever the input;
        assert median_flops(size) <= bound * at16, size  # the stem's extra stride-2 convs are what grows
    assert median_flops(28, stem_max_size=0) > 2.5 * at16  # unsized, 28 px costs ~3x: the rule is what saves it
    assert space.opts.stem_max_size == 16


# -- final training under a deadline ------------------------------------------------------------------
def test_final_training_cuts_its_epochs_to_what_fits_and_still_anneals(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import archsearch.estimation.loop as loop
    from archsearch.data.base import Split

    monkeypatch.setattr(loop.time, "monotonic", lambda: 100.0)
    assert loop._epochs_that_fit(10, 2.0, until=107.0) == 4  # 1 done + 0.97 * 7 s // 2 s
    assert loop._epochs_that_fit(10, 2.0, until=99.0) == 1  # at least the one done
    assert loop._epochs_that_fit(3, 0.1, until=200.0) == 3  # never more than asked
    monkeypatch.undo()

    gen = torch.Generator().manual_seed(0)
    data = Split(torch.randn(64, 1, 8, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen))

    def run(until: float | None) -> tuple[list[dict[str, float]], torch.nn.Module]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        curve = loop.train_model(model, data, 4, batch_size=16, lr=0.1, weight_decay=0.0, optimizer="adamw",
                                 label_smoothing=0.0, generator=torch.Generator().manual_seed(1),
                                 device=torch.device("cpu"), until=until)
        return curve, model

    import time

    free, m1 = run(None)
    far, m2 = run(time.monotonic() + 3600)  # plenty of time: exactly the training without a deadline
    assert free == far and all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    past, _ = run(time.monotonic() - 1)  # no time left: one batch, kept, and said
    assert len(past) == 1 and past[0]["time_stop"] == 1.0
