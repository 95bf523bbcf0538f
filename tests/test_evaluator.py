from __future__ import annotations

import pytest
import torch

from archsearch.core import Fidelity, TrialState
from archsearch.data import from_arrays
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.spaces import create_space
from archsearch.spaces.capabilities import AuxiliaryClassifier
from conftest import synthetic_images

ARCH = "conv:3:32:relu|conv:3:32:relu"


@pytest.fixture
def space():
    return create_space("chain", layers=2, channels=[16, 32], stem_channels=16)


def test_training_reports_metrics_and_curve_and_is_deterministic(space):
    ev = TrainingEvaluator({"name": "digits"})
    arch = space.parse(ARCH)
    r1 = run_trial(ev, space, arch, Fidelity(epochs=2, data_fraction=0.5), seed=1)
    r2 = run_trial(ev, space, arch, Fidelity(epochs=2, data_fraction=0.5), seed=1)
    assert r1.status is TrialState.COMPLETE, r1.error
    assert 0.25 < r1.metrics["valid_acc"] <= 1.0  # well above chance (0.1) after 2 short epochs
    assert r1.metrics["params"] == sum(p.numel() for p in space.build(arch, ev.task()).parameters())
    assert r1.metrics["flops"] > 0 and r1.cost > 0 and r1.metrics["train_time"] > 0
    assert [p["epoch"] for p in r1.curve] == [1.0, 2.0] and "valid_acc" in r1.curve[0]
    assert r1.metrics["valid_acc"] == r2.metrics["valid_acc"]
    assert r1.metrics["train_loss"] == r2.metrics["train_loss"]


def test_fidelity_data_fraction_and_resolution_are_honoured(space, monkeypatch):
    import archsearch.estimation.training as training

    seen = {}
    real = training.train_model

    def spy(model, train, epochs, **kw):
        seen["n"], seen["shape"], seen["epochs"] = len(train), tuple(train.x.shape[1:]), epochs
        return real(model, train, epochs, **kw)

    monkeypatch.setattr(training, "train_model", spy)
    ev = TrainingEvaluator({"name": "digits"})
    full = len(ev.splits().train)
    r = ev.evaluate(space, space.parse(ARCH), Fidelity(epochs=1, data_fraction=0.25, resolution=16), seed=0)
    assert seen == {"n": round(full * 0.25), "shape": (1, 16, 16), "epochs": 1}
    assert r.metrics["epochs"] == 1.0


def test_nan_loss_is_a_failed_trial_with_its_reason(space):
    x, y = synthetic_images()
    ev = TrainingEvaluator(from_arrays(x, y), lr=1e30, optimizer="sgd")
    r = run_trial(ev, space, space.parse(ARCH), Fidelity(epochs=3), seed=0)
    assert r.status is TrialState.FAILED
    assert "not finite" in r.error


def test_timeout_is_a_failed_trial(space):
    ev = TrainingEvaluator({"name": "digits"}, timeout=0.01, batch_size=8)
    r = run_trial(ev, space, space.parse(ARCH), Fidelity(epochs=50), seed=0)
    assert r.status is TrialState.FAILED and r.error.startswith("timeout")


def test_out_of_memory_and_crashes_are_failed_trials(space, monkeypatch):
    ev = TrainingEvaluator({"name": "digits"})

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(space, "build", oom)
    r = run_trial(ev, space, space.parse(ARCH), Fidelity(epochs=1), seed=0)
    assert r.status is TrialState.FAILED and r.error.startswith("oom: out of memory") and r.reason == "oom"

    def bug(*a, **k):
        raise ValueError("shapes do not match")

    monkeypatch.setattr(space, "build", bug)
    r = run_trial(ev, space, space.parse(ARCH), Fidelity(epochs=1), seed=0)
    assert r.error.startswith("ValueError: shapes do not match") and "Traceback" in r.error


def test_final_training_reports_test_accuracy_and_returns_the_model(space):
    ev = TrainingEvaluator({"name": "digits"})
    fin = ev.final(space, space.parse(ARCH), Fidelity(epochs=2), seed=0)
    splits = ev.splits()
    assert fin.result.metrics["train_samples"] == len(splits.train) + len(splits.valid)
    from archsearch.estimation import evaluate_model

    acc, _ = evaluate_model(fin.model, splits.test, torch.device("cpu"))
    assert acc == fin.result.metrics["test_acc"] > 0.5


def test_evaluator_options_are_validated():
    with pytest.raises(ConfigError, match="optimizer must be one of: adamw, sgd"):
        TrainingEvaluator(optimizer="adam")
    with pytest.raises(ConfigError, match="batch_size"):
        TrainingEvaluator(batch_size=0)
    with pytest.raises(ConfigError, match="device"):
        TrainingEvaluator(device="tpu")


class _WithAuxHead(torch.nn.Module, AuxiliaryClassifier):
    """A linear classifier whose auxiliary head only the auxiliary loss trains."""

    def __init__(self, declares: bool = True) -> None:
        super().__init__()
        self.main, self.aux = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
        self.declares, self._aux_logits = declares, None

    def forward(self, x):
        self._aux_logits = self.aux(x) if self.training else None
        return self.main(x)

    def auxiliary_logits(self):
        return self._aux_logits if self.declares else None


def test_a_network_with_an_auxiliary_classifier_trains_its_head_through_the_auxiliary_loss():
    from archsearch.data.base import Split
    from archsearch.estimation.loop import train_model

    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    for declares in (True, False):
        torch.manual_seed(0)
        model = _WithAuxHead(declares)
        before = model.aux.weight.detach().clone()
        train_model(model, Split(x, y), 1, batch_size=8, lr=0.1, weight_decay=0.0, optimizer="sgd",
                    label_smoothing=0.0, generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
        assert torch.equal(model.aux.weight, before) is not declares  # trained only through the aux loss


def test_options_are_typed_and_grouped_by_role():
    from archsearch.estimation.base import EVALUATORS

    names = [d.name for d in EVALUATORS.options("train")]
    assert names[:5] == ["lr", "weight_decay", "batch_size", "optimizer", "label_smoothing"]
    assert {"latency", "reward", "constraints", "inherit", "inherit_epochs", "early_stop"} <= set(names)
    ev = TrainingEvaluator(lr=0.01, inherit=True)
    assert ev.opts.lr == 0.01 and ev.inherits() and not ev.stops_early()
    with pytest.raises(ConfigError, match=r"evaluator.lr must be a positive number, got -1"):
        TrainingEvaluator(lr=-1)
    with pytest.raises(ConfigError, match=r"unknown option 'lrate' for evaluator 'train'"):
        TrainingEvaluator(lrate=0.1)
