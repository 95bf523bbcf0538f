"""The ``hyperparams`` space (plain HPO and joint search) and the evaluator's hyper-parameter hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import archsearch.spaces.hyperparams  # noqa: F401 - registers the space
import archsearch.strategies.tpe  # noqa: F401 - registers the strategy
from archsearch.core import Fidelity, Task, TrialState
from archsearch.data import from_arrays
from archsearch.errors import ConfigError, ParseError
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.estimation.settings import TRAINING_KEYS, training_overrides
from archsearch.spaces.capabilities import CarriesTrainingOverrides
from archsearch.experiment import load_checkpoint, run_search
from archsearch.spaces import create_space
from archsearch.spaces.hyperparams import DEFAULT_ARCH, HyperArch
from archsearch.config import Config
from conftest import TINY, synthetic_images

TINY_CHAIN = {"name": "chain", "layers": 2, "channels": [4, 8], "stem_channels": 4}
PARAMS = {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "steps": 3},
          "batch_size": [16, 32]}


def test_default_is_plain_hpo_on_a_fixed_chain_with_a_readable_string_form():
    space = create_space("hyperparams")
    assert not space.joint and str(space.fixed) == DEFAULT_ARCH
    assert [d.name for d in space.decisions()] == ["hp.batch_size", "hp.lr", "hp.optimizer", "hp.weight_decay"]
    arch = space.parse(f"{DEFAULT_ARCH} @ lr=1e-3, optimizer=sgd,batch_size=64,weight_decay=0.0001")
    assert str(arch) == f"{DEFAULT_ARCH} @ batch_size=64,lr=0.001,optimizer=sgd,weight_decay=0.0001"
    assert arch.training_overrides() == {"batch_size": 64, "lr": 0.001, "optimizer": "sgd", "weight_decay": 1e-4}
    assert space.from_dict(json.loads(arch.to_json())) == arch
    assert space.size() == 4 * 16 * 2 * 9
    task = Task((1, 8, 8), 10)
    torch.manual_seed(0)
    model = space.build(arch, task)
    torch.manual_seed(0)
    same = space.inner.build(space.fixed, task)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))


def test_grids_floats_log_and_linear_ints_and_categoricals():
    space = create_space("hyperparams", params={
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True, "steps": 4},
        "weight_decay": {"type": "float", "low": 0, "high": 1e-3, "steps": 3},
        "epochs": {"type": "int", "low": 2, "high": 5},
        "batch_size": {"type": "int", "low": 16, "high": 256, "log": True, "steps": 5},
        "optimizer": ["sgd", "adamw"],
        "label_smoothing": {"type": "categorical", "choices": [0, 0.1]},
    })
    assert space.grids == {
        "batch_size": (16, 32, 64, 128, 256), "epochs": (2, 3, 4, 5), "label_smoothing": (0, 0.1),
        "lr": (1e-4, 1e-3, 1e-2, 1e-1), "optimizer": ("sgd", "adamw"), "weight_decay": (0.0, 5e-4, 1e-3),
    }
    odd = create_space("hyperparams", params={"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    assert len(odd.grids["lr"]) == 16 and odd.grids["lr"][1] == 0.0001585  # 4 significant digits
    arch = odd.decode([1])
    assert odd.parse(str(arch)) == arch and str(arch).endswith("@ lr=0.0001585")


@pytest.mark.parametrize("options, message", [
    ({"params": {"dropout": [0.1]}}, r"unknown hyper-parameter 'dropout' \(valid: lr, weight_decay, batch_size"),
    ({"params": {"lr": {"type": "float", "low": 0, "high": 0.1}}}, r"space.params.lr must be a positive number"),
    ({"params": {"batch_size": {"type": "float", "low": 16, "high": 64}}}, r"params.batch_size must be an integer"),
    ({"params": {"optimizer": ["adam"]}}, r"space.params.optimizer must be one of: adamw, sgd"),
    ({"params": {"lr": {"type": "float", "low": 1e-3, "high": 1, "lg": True}}}, r"space.params.lr: unknown key 'lg'"),
    ({"params": {"lr": {"type": "gaussian"}}}, r"space.params.lr.type must be one of: float, int, categorical"),
    ({"params": {"lr": {"type": "float", "low": 0.1, "high": 0.01}}}, r"space.params.lr: low must be <= high"),
    ({"params": {"weight_decay": {"type": "float", "low": 0, "high": 1, "log": True}}}, r"log: true needs low > 0"),
    ({"params": {"epochs": {"type": "int", "low": 1, "high": 1000}}}, r"space.params.epochs: 1000 integers"),
    ({"params": {"batch_size": [16, 16]}}, r"space.params.batch_size.choices lists a value twice"),
    ({"params": {}}, r"space.params must be a non-empty mapping"),
    ({"arch": "conv:3:32:relu|bogus:3:32:relu"}, r"space.arch 'conv:3:32:relu\|bogus:3:32:relu' is not in the chain"),
    ({"space": {"name": "chain", "layers": 0}}, r"space.space \(chain\): space.layers must be an integer"),
    ({"space": {"layers": 2}}, r"space.space must be a mapping with the architecture space's name"),
    ({"space": {"name": "hyperparams"}}, r"cannot join another hyperparams space"),
])
def test_options_are_validated_naming_the_parameter(options, message):
    with pytest.raises(ConfigError, match=message):
        create_space("hyperparams", **options)


def test_parse_errors_are_one_line():
    space = create_space("hyperparams", params=PARAMS)
    base = DEFAULT_ARCH
    for text, message in [
        (base, r"expected 'ARCHITECTURE @ name=value"),
        (f"{base} @ lr=0.01", r"missing hyper-parameter\(s\): batch_size"),
        (f"{base} @ lr=0.05,batch_size=16", r"lr=0.05 is not in the space \(valid: 0.001, 0.01, 0.1\)"),
        (f"{base} @ lr=0.01,batch_size=16,lr=0.1", r"'lr' given twice"),
        (f"{base} @ lr=0.01,batch_size=16,momentum=0.9", r"unknown hyper-parameter 'momentum'"),
        (f"{base} @ lr=0.01,batch_size", r"'batch_size': expected name=value"),
        ("conv:3:32:relu|conv:5:32:relu|conv:3:32:relu @ lr=0.01,batch_size=16", r"architecture is fixed"),
    ]:
        with pytest.raises(ParseError, match=message) as info:
            space.parse(text)
        assert "\n" not in str(info.value)
    with pytest.raises(ParseError, match="read by its space"):
        HyperArch.parse(f"{base} @ lr=0.01,batch_size=16")


def test_joint_search_puts_the_architecture_decisions_first_and_extends_features_and_diagram():
    space = create_space("hyperparams", space={"name": "nb201", "channels": 4, "cells_per_stage": 1}, params=PARAMS)
    inner = space.inner
    assert space.joint and space.decisions() == inner.decisions() + space.decisions()[-2:]
    assert space.size() == inner.size() * 6
    assert space.feature_kinds() == inner.feature_kinds() == ("onehot", "path")
    cell = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|"
    arch = space.parse(f"{cell} @ lr=0.01,batch_size=32")
    hp = np.array([0, 1, 0, 1, 0], dtype=np.float32)  # batch_size 32 (of 16, 32), lr 0.01 (of 0.001, 0.01, 0.1)
    for kind in ("onehot", "path"):
        np.testing.assert_array_equal(space.features(arch, kind), np.concatenate([inner.features(arch.arch, kind), hp]))
    d = space.diagram(arch)
    assert ("hyperparams", "train: batch_size=32, lr=0.01") in d.nodes
    assert any(e[0] == "hyperparams" for e in d.edges)
    rng = np.random.default_rng(0)
    moved = {"arch": 0, "hp": 0}
    for _ in range(60):
        child = space.mutate(arch, rng)
        moved["arch" if child.arch != arch.arch else "hp"] += 1
    assert moved["arch"] > moved["hp"] > 0  # 6 architecture decisions, 2 hyper-parameters


def test_final_space_wraps_the_architecture_space_final_space():
    space = create_space("hyperparams", space={"name": "darts", "channels": 4, "cells": 3, "nodes": 2,
                                               "final_channels": 8, "final_cells": 4}, params=PARAMS)
    final = space.final_space()
    assert final.inner.channels == 8 and final.inner.cells == 4 and final.grids == space.grids
    arch = space.sample(np.random.default_rng(0))
    assert final.parse(str(arch)) == arch
    plain = create_space("hyperparams", params=PARAMS)
    assert plain.final_space() is plain


# -- the evaluator hook ------------------------------------------------------------------
def test_training_overrides_are_validated_with_the_evaluator_rules():
    class Fake(CarriesTrainingOverrides):
        def __init__(self, **hp):
            self.hp = hp

        def training_overrides(self):
            return self.hp

    assert training_overrides(object()) == {}

    class Undeclared:
        def training_overrides(self):
            return {"lr": 0.1}

    assert training_overrides(Undeclared()) == {}
    assert training_overrides(Fake(lr=0.1, epochs=3)) == {"lr": 0.1, "epochs": 3}
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        training_overrides(Fake(lr=-1.0))
    with pytest.raises(ConfigError, match=r"unknown training setting 'momentum' \(valid: " + ", ".join(TRAINING_KEYS)):
        training_overrides(Fake(momentum=0.9))


def test_evaluation_and_final_training_use_the_architecture_hyperparameters(monkeypatch):
    import archsearch.estimation.training as training

    x, y = synthetic_images(n=120)
    ev = TrainingEvaluator(from_arrays(x, y), lr=3e-3, batch_size=64, optimizer="adamw")
    space = create_space("hyperparams", space=TINY_CHAIN, params={
        "lr": [0.05, 0.2], "batch_size": [16, 32], "optimizer": ["adamw", "sgd"], "epochs": [1, 2]})
    arch = space.parse("conv:3:4:relu|conv:3:8:relu @ lr=0.05,batch_size=16,optimizer=sgd,epochs=2")

    steps = []  # what the real optimiser did
    real_sgd = torch.optim.SGD

    class CountingSGD(real_sgd):  # type: ignore[misc, valid-type]
        def step(self, closure=None):
            steps.append(self.param_groups[0]["initial_lr"])
            return super().step(closure)

    monkeypatch.setattr(training.torch.optim, "SGD", CountingSGD)
    n_train = len(ev.splits().train)
    r = run_trial(ev, space, arch, Fidelity(epochs=5), seed=0)
    assert r.status is TrialState.COMPLETE, r.error
    batches = -(-n_train // 16) - (n_train % 16 == 1)  # a last batch of 1 is skipped
    assert len(steps) == 2 * batches and set(steps) == {0.05}  # 2 epochs (not the fidelity's 5) of batch 16
    assert r.metrics["epochs"] == 2.0 and len(r.curve) == 2

    seen = []
    real_train = training.train_model

    def spy(model, train, epochs, **kw):
        seen.append((epochs, kw["lr"], kw["batch_size"], kw["optimizer"], kw["weight_decay"]))
        return real_train(model, train, epochs, **kw)

    monkeypatch.setattr(training, "train_model", spy)
    fin = ev.final(space, arch, Fidelity(epochs=3), seed=0)
    assert seen == [(2, 0.05, 16, "sgd", ev.opts.weight_decay)]  # unsearched settings stay the evaluator's
    assert fin.result.metrics["epochs"] == 2.0
    plain = create_space("chain", **{k: v for k, v in TINY_CHAIN.items() if k != "name"})
    ev.evaluate(plain, arch.arch, Fidelity(epochs=1), seed=0)  # no hyper-parameters: the evaluator's own
    assert seen[-1] == (1, 3e-3, 64, "adamw", ev.opts.weight_decay)


@pytest.mark.parametrize("kind, strategy", [("plain", "random"), ("joint", "tpe")])
def test_plain_hpo_and_joint_search_run_end_to_end(tmp_path, kind, strategy):
    fixed = "conv:3:16:relu|max_pool:3:16:relu"  # in a 2-layer chain space, inferred from the string
    plain = {"name": "hyperparams", "arch": fixed, "params": {"lr": [0.003, 0.01], "batch_size": [32, 64]}}
    joint = {"name": "hyperparams", "space": TINY_CHAIN, "params": {"lr": [0.003, 0.01]}}
    space = plain if kind == "plain" else joint
    final = {"enabled": kind == "joint", "epochs": 1}
    config = Config.from_dict({**TINY, "space": space, "strategy": {"name": strategy}, "budget": {"trials": 3},
                               "final": final})
    summary = run_search(config, str(tmp_path / kind), quiet=True)
    assert summary.complete == 3 and summary.failed == 0
    best = json.loads((tmp_path / kind / "best.json").read_text())
    assert " @ " in best["arch"] and "lr=" in best["arch"]
    assert best["arch"].startswith(fixed + " @ ") == (kind == "plain")
    if kind == "joint":  # the checkpoint rebuilds through the hyperparams space
        model, ckpt = load_checkpoint(str(tmp_path / kind / "best_model.pt"))
        assert ckpt["space"] == "hyperparams" and ckpt["arch"] == best["arch"]
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
