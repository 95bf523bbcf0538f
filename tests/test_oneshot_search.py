"""The one-shot runner: journal records, checkpoints, resume, guards and the CLI path.

A small first-order method defined here drives the runner, so these tests check the runner
alone; each real method (darts, gdas, enas, spos) has its own test file and a CLI test below.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from archsearch.errors import ConfigError
from archsearch.oneshot.base import ONESHOT, OneShotMethod
from archsearch.oneshot.base import accuracy
from archsearch.oneshot.search import CHECKPOINT, OneShotSearch
from archsearch.options import option

NB201_TINY = ["--space", "nb201", "--set", "space.channels=4", "--set", "space.cells_per_stage=1",
              "--data-fraction", "0.3", "--epochs", "1", "--set", "final.enabled=false", "--quiet"]


class FirstOrder(OneShotMethod):
    """Softmax alphas, one weight step and one first-order alpha step per batch pair."""

    @dataclass(frozen=True)
    class Options(OneShotMethod.Options):
        arch_lr: float = option(0.05, "Adam learning rate of the alphas", above=0)

    has_alphas = True

    def setup(self, supernet, steps_per_epoch):
        super().setup(supernet, steps_per_epoch)
        n, k = len(supernet.choice_points), len(supernet.choice_points[0].candidates)
        self.alpha = (1e-3 * torch.randn(n, k, generator=self.generator)).to(self.device).requires_grad_()
        self.a_opt = torch.optim.Adam([self.alpha], lr=self.opts.arch_lr)

    def weights(self):
        return list(F.softmax(self.alpha, dim=-1))

    def step(self, train, valid):
        self.a_opt.zero_grad()
        arch_loss = F.cross_entropy(self.supernet(valid[0], self.weights()), valid[1])
        arch_loss.backward()
        self.a_opt.step()
        return {"train_loss": self.weight_step(*train, [w.detach() for w in self.weights()]),
                "arch_loss": float(arch_loss.detach())}

    def eval_weights(self):
        return [w.detach() for w in self.weights()]

    def derive(self, score):
        return self.derive_from(self.eval_weights())

    def alphas(self):
        return [[float(v) for v in w] for w in self.eval_weights()]

    def state_dict(self):
        return {**super().state_dict(), "alpha": self.alpha.detach().clone(), "a_opt": self.a_opt.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.a_opt.load_state_dict(state["a_opt"])


@pytest.fixture
def first_order():
    ONESHOT.register("first_order_test")(FirstOrder)
    yield "first_order_test"
    ONESHOT._classes.pop("first_order_test")


def epochs_of(out):
    with sqlite3.connect(os.path.join(out, "journal.sqlite")) as db:
        return [json.loads(r[0]) for r in db.execute("SELECT record FROM epochs ORDER BY epoch")]


def test_search_journals_every_epoch_and_evaluates_the_derived_architecture(run_cli, tmp_path, first_order):
    out = str(tmp_path / "os")
    code, _, err = run_cli("search", *NB201_TINY, "--strategy", first_order, "--set", "strategy.epochs=2",
                           "--set", "strategy.batch_size=32", "--out", out)
    assert code == 0, err
    records = epochs_of(out)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert {"train_loss", "arch_loss", "valid_acc", "arch", "alphas", "param_free", "skips"} <= set(r)
        assert len(r["alphas"]) == 6 and all(abs(sum(row) - 1) < 1e-5 for row in r["alphas"])
    assert records[0]["alphas"] != records[1]["alphas"]  # the alphas learn
    with sqlite3.connect(os.path.join(out, "journal.sqlite")) as db:
        trials = db.execute("SELECT state, arch FROM trials").fetchall()
    assert trials == [("complete", records[-1]["arch"])]  # the last derived architecture, evaluated
    assert os.path.exists(os.path.join(out, CHECKPOINT))
    code, shown, _ = run_cli("show", out, "--json")
    data = json.loads(shown)
    assert [r["epoch"] for r in data["oneshot_epochs"]] == [1, 2]
    code, shown, _ = run_cli("show", out)
    assert code == 0 and "one-shot epochs" in shown


def _config_run(tmp_path, name, first_order, epochs=3, **extra):
    from archsearch.config import Config
    from archsearch.experiment import Experiment

    cfg = Config.from_dict({"space": {"name": "nb201", "channels": 4, "cells_per_stage": 1},
                            "strategy": {"name": first_order, "epochs": epochs, "batch_size": 32, **extra},
                            "fidelity": {"epochs": 1, "data_fraction": 0.3}, "final": {"enabled": False}})
    return Experiment.create(cfg, str(tmp_path / name), quiet=True)


def test_resume_after_an_interrupted_epoch_gives_the_uninterrupted_result(tmp_path, first_order, monkeypatch):
    straight = _config_run(tmp_path, "a", first_order)
    straight.run()
    straight.close()

    broken = _config_run(tmp_path, "b", first_order)
    real = OneShotSearch.run_epoch

    def crash_in_epoch_2(self):
        if self.epoch == 1:  # epoch 1 is checkpointed; die inside epoch 2 as a kill would
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(OneShotSearch, "run_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        broken.run()
    broken.close()
    assert [r["epoch"] for r in epochs_of(str(tmp_path / "b"))] == [1]
    monkeypatch.setattr(OneShotSearch, "run_epoch", real)
    from archsearch.experiment import Experiment

    resumed = Experiment.open(str(tmp_path / "b"), quiet=True)
    resumed.run()
    resumed.close()
    a, b = epochs_of(str(tmp_path / "a")), epochs_of(str(tmp_path / "b"))
    for ra, rb in zip(a, b):
        for key in ("train_loss", "arch_loss", "valid_acc", "alphas", "arch"):
            assert ra[key] == rb[key], key


def test_a_checkpoint_without_its_journal_record_is_recorded_on_resume(tmp_path, first_order):
    from archsearch.experiment import Experiment

    exp = _config_run(tmp_path, "c", first_order, epochs=1)
    exp.run()
    exp.close()
    out = str(tmp_path / "c")
    with sqlite3.connect(os.path.join(out, "journal.sqlite")) as db:  # as if killed after the checkpoint
        db.execute("DELETE FROM epochs")
        db.execute("DELETE FROM trials")
    resumed = Experiment.open(out, quiet=True)
    resumed.run()
    resumed.close()
    assert [r["epoch"] for r in epochs_of(out)] == [1]


def test_stop_skips_ends_the_search_early_and_says_why(tmp_path, first_order):
    from archsearch.config import Config
    from archsearch.experiment import Experiment

    # only skip and conv ops; a stop at 1 skip stops as soon as any edge derives skip_connect
    cfg = Config.from_dict({"space": {"name": "nb201", "channels": 4, "cells_per_stage": 1,
                                      "ops": ["skip_connect", "avg_pool_3x3"]},
                            "strategy": {"name": first_order, "epochs": 4, "batch_size": 32, "stop_skips": 1},
                            "fidelity": {"epochs": 1, "data_fraction": 0.3}, "final": {"enabled": False}})
    exp = Experiment.create(cfg, str(tmp_path / "s"), quiet=True)
    exp.run()
    stopped = exp.journal.get_meta("oneshot_stopped")
    exp.close()
    records = epochs_of(str(tmp_path / "s"))
    assert len(records) == 1 and records[0]["skips"] >= 1
    assert "stop_skips=1" in stopped


def test_max_skips_limits_the_derived_architecture(tmp_path, first_order):
    from archsearch.spaces import create_space

    space = create_space("nb201", channels=4, cells_per_stage=1)
    method = FirstOrder(space, 0, max_skips=1)
    method.setup(space.supernet(__import__("archsearch.core", fromlist=["Task"]).Task((1, 8, 8), 3)), 1)
    skip = space.ops.index("skip_connect")
    weights = [torch.full((len(space.ops),), 0.1) for _ in range(6)]
    for i, w in enumerate(weights):
        w[skip] = 0.5 + i / 100  # skip strongest everywhere; edge 5's skip the strongest
    arch = method.derive_from(weights)
    assert sum(op == "skip_connect" for op in arch.ops) == 1 and arch.ops[5] == "skip_connect"


def test_accuracy_uses_batch_statistics_and_leaves_running_stats_alone():
    from archsearch.core import Task
    from archsearch.spaces import create_space

    space = create_space("nb201", channels=4, cells_per_stage=1)
    net = space.supernet(Task((1, 8, 8), 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(9, 1, 8, 8), torch.randint(0, 3, (9,))
    acc = accuracy(net, net.path_weights(space.sample(__import__("numpy").random.default_rng(0))), x, y, 4)
    assert 0.0 <= acc <= 1.0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bad_one_shot_setups_are_one_line_errors(run_cli, tmp_path, first_order):
    code, _, err = run_cli("search", "--space", "chain", "--strategy", first_order, "--out", str(tmp_path / "x"))
    assert code == 2 and "needs a space with a supernet" in err and "nb201" in err
    assert "Traceback" not in err
    code, _, err = run_cli("search", *NB201_TINY, "--strategy", first_order, "--set", "strategy.epochs=0",
                           "--out", str(tmp_path / "y"))
    assert code == 2 and "strategy.epochs" in err
    code, _, err = run_cli("search", *NB201_TINY, "--strategy", first_order, "--set", "strategy.device=cuda:7",
                           "--out", str(tmp_path / "z"))
    assert code == 2 and "CUDA device" in err
    code, _, err = run_cli("search", "--strategy", "nonesuch", "--out", str(tmp_path / "w"))
    assert code == 2 and first_order in err and "evolution" in err  # both kinds listed


def test_a_damaged_checkpoint_is_a_clear_error_and_is_kept(run_cli, tmp_path, first_order):
    out = str(tmp_path / "d")
    code, _, err = run_cli("search", *NB201_TINY, "--strategy", first_order, "--set", "strategy.epochs=1",
                           "--set", "strategy.batch_size=32", "--out", out)
    assert code == 0, err
    with sqlite3.connect(os.path.join(out, "journal.sqlite")) as db:
        db.execute("DELETE FROM trials")  # the search is back in its supernet phase
    path = os.path.join(out, CHECKPOINT)
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    code, _, err = run_cli("resume", out)
    assert code == 2 and "one-shot checkpoint" in err and "Traceback" not in err
    assert open(path, "rb").read() == b"not a checkpoint"


def test_method_options_come_from_the_base_and_the_subclass(first_order):
    from archsearch import registries

    names = registries()["strategy"].option_names(first_order)
    assert "arch_lr" in names and "epochs" in names and "max_skips" in names
    with pytest.raises(ConfigError, match="strategy.max_skips"):
        from archsearch.spaces import create_space

        FirstOrder(create_space("nb201"), 0, max_skips=-1)


def test_progress_prints_each_epoch_with_the_derived_architecture(run_cli, tmp_path, first_order):
    args = [a for a in NB201_TINY if a != "--quiet"]
    code, _, err = run_cli("search", *args, "--strategy", first_order, "--set", "strategy.epochs=2",
                           "--set", "strategy.batch_size=32", "--out", str(tmp_path / "p"))
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("epoch")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    records = epochs_of(str(tmp_path / "p"))
    assert all(r["arch"] in line and "valid_acc" in line for r, line in zip(records, lines))
    assert "derived architecture (trial 0)" in err
