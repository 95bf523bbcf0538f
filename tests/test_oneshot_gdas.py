"""GDAS: one sampled candidate runs, every logit learns, the temperature anneals, resume is exact."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.oneshot.base import create_oneshot
from archsearch.oneshot.gdas import GDAS
from archsearch.spaces.supernet import ChoicePoint, Supernet, mix
from archsearch.spaces.base import SearchSpace, create_space
from conftest import TINY_SUPERNET_SPACES, make_oneshot, oneshot_batches

TASK = Task((3, 8, 8), 3)
SPACES = TINY_SUPERNET_SPACES


pytestmark = pytest.mark.usefixtures("one_thread")


def make(space_name: str = "nb201", seed: int = 0, net_seed: int = 0, **options: Any) -> tuple[GDAS, Supernet]:
    return make_oneshot("gdas", space_name, seed, net_seed, task=TASK, **options)


def batches(seed: int, n: int, size: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return oneshot_batches(seed, n, size, TASK.input_shape)


def test_only_the_sampled_candidate_runs() -> None:
    method, net = make("nb201")
    calls: list[tuple[int, int, int]] = []  # (cell, edge, candidate)
    cells = [m for m in net.modules() if type(m).__name__ == "MixedCell"]
    for c, cell in enumerate(cells):
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge):
                op.register_forward_hook(lambda *_, key=(c, e, k): calls.append(key))
    weights = method.sample()
    for w in weights:
        assert int(w.ne(0).sum()) == 1 and w.requires_grad  # one-hot in value, differentiable
    net(torch.randn(2, *TASK.input_shape), weights)
    expected = {(c, e, int(w.argmax())) for c in range(len(cells)) for e, w in enumerate(weights)}
    assert set(calls) == expected and len(calls) == len(expected)


def test_every_logit_gets_gradient_and_weight_step_leaves_alphas() -> None:
    method, net = make("nb201")
    (x, y), = batches(1, 1)
    loss = nn.functional.cross_entropy(net(x, method.sample()), y)
    loss.backward()
    for a in method.arch_params:
        assert a.grad is not None and bool(torch.isfinite(a.grad).all())
        assert bool(a.grad.ne(0).all()), "non-sampled candidates must get gradient through the softmax"
    # a step: the weight step must not move the alphas, the architecture step must
    method, net = make("nb201")
    before = [a.detach().clone() for a in method.arch_params]
    method.a_optimizer.step = lambda *args, **kw: None  # type: ignore[method-assign]  # arch step disabled
    params = [p.detach().clone() for p in net.parameters()]
    out = method.step(*batches(2, 2))
    assert set(out) == {"train_loss", "arch_loss"}
    assert all(torch.equal(a, b) for a, b in zip(method.arch_params, before))
    assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), params))
    method, net = make("nb201")
    method.step(*batches(2, 2))
    assert any(not torch.equal(a, b) for a, b in zip(method.arch_params, before))


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # end_epoch without steps
def test_tau_anneals_linearly_per_epoch() -> None:
    method, _ = make("nb201", epochs=5, tau_max=10.0, tau_min=0.1)
    assert method.tau == 10.0
    used = [method.end_epoch(e)["tau"] for e in range(1, 6)]
    assert used == pytest.approx([10.0, 7.525, 5.05, 2.575, 0.1])
    one, _ = make("nb201", epochs=1, tau_max=3.0, tau_min=0.5)
    assert one.end_epoch(1)["tau"] == 3.0
    # the sample uses the current temperature: near 0 the softmax saturates and the gradient vanishes
    cold, _ = make("nb201", epochs=2, tau_max=1.0, tau_min=1e-4)

    def grad_norm() -> float:
        cold.a_optimizer.zero_grad()
        sum(w.max() for w in cold.sample()).backward()
        return sum(float(a.grad.abs().sum()) for a in cold.arch_params)

    assert grad_norm() > 1e-2
    cold.end_epoch(1)
    assert cold.tau == 1e-4 and grad_norm() < 1e-6


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


class Toy(Supernet):
    """One choice point: two ops that erase the input and one that passes it to the classifier."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.choice_points = [ChoicePoint("op", ("zero", "identity", "zero2"))]
        self.ops = nn.ModuleList([Zero(), nn.Identity(), Zero()])
        self.head = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor, weights: Any) -> torch.Tensor:
        return self.head(mix(self.ops, x, weights[0]))

    def derive(self, weights: Any) -> Any:
        raise NotImplementedError

    def path(self, arch: Any) -> list[int]:
        raise NotImplementedError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_helpful_op_wins(seed: int) -> None:
    space = create_space("nb201", **SPACES["nb201"])
    method = GDAS(space, seed, epochs=1, device="cpu", lr=0.1, arch_lr=0.05, tau_max=1.0, tau_min=1.0)
    torch.manual_seed(seed)
    method.setup(Toy(6, 3), 1)
    g = torch.Generator().manual_seed(seed)
    for _ in range(100):
        x, xv = torch.randn(16, 6, generator=g), torch.randn(16, 6, generator=g)
        method.step((x, x[:, :3].argmax(1)), (xv, xv[:, :3].argmax(1)))  # the label is in the input
    probs = method.alphas()[0]
    assert probs[1] > 0.6 and probs[1] == max(probs)


def run_epoch(method: GDAS, epoch: int) -> None:
    for train, valid in zip(batches(10 * epoch, 3), batches(10 * epoch + 5, 3)):
        method.step(train, valid)
    method.end_epoch(epoch)
    method.derive(lambda w: 0.0)


def test_resume_is_exact() -> None:
    straight, net_a = make("nb201", epochs=2)
    run_epoch(straight, 1)
    run_epoch(straight, 2)

    first, net_b = make("nb201", epochs=2)
    run_epoch(first, 1)
    buffer = io.BytesIO()
    torch.save({"state": first.state_dict(), "net": net_b.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # checkpoints load this way
    resumed, net_c = make("nb201", epochs=2, net_seed=7)  # a different init: the load must override it
    resumed.load_state_dict(saved["state"])
    net_c.load_state_dict(saved["net"])
    run_epoch(resumed, 2)

    assert all(torch.equal(a, b) for a, b in zip(straight.arch_params, resumed.arch_params))
    assert all(torch.equal(p, q) for p, q in zip(net_a.state_dict().values(), net_c.state_dict().values()))
    assert straight.derive(lambda w: 0.0) == resumed.derive(lambda w: 0.0)
    assert straight.tau == resumed.tau
    assert straight.alphas() == resumed.alphas()


@pytest.mark.parametrize("options, key", [
    ({"tau_max": 0}, "tau_max"), ({"tau_max": "hot"}, "tau_max"), ({"tau_min": 0.0}, "tau_min"),
    ({"tau_min": 20.0}, "tau_min"), ({"arch_lr": 0}, "arch_lr"), ({"arch_weight_decay": -1e-3}, "arch_weight_decay"),
    ({"epochs": 0}, "epochs"),
])
def test_option_errors(options: dict[str, Any], key: str) -> None:
    space = create_space("nb201", **SPACES["nb201"])
    with pytest.raises(ConfigError, match=f"strategy.{key} "):
        create_oneshot("gdas", space, 0, device="cpu", **options)


def test_needs_a_supernet_space() -> None:
    with pytest.raises(ConfigError, match="needs a space with a supernet"):
        create_oneshot("gdas", create_space("chain"), 0, device="cpu")


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_derived_architecture_validates(space_name: str) -> None:
    method, net = make(space_name, max_skips=1 if space_name == "darts" else None)
    method.step(*batches(3, 2))
    space: SearchSpace = method.space
    arch = space.validate(method.derive(lambda w: 0.0))
    weights = method.eval_weights()
    assert [int(w.argmax()) for w in weights] == net.path(arch)
    assert all(float(w.sum()) == 1.0 for w in weights)
    alphas = method.alphas()
    assert len(alphas) == len(net.choice_points)
    assert all(len(row) == len(cp.candidates) and abs(sum(row) - 1) < 1e-5
               for row, cp in zip(alphas, net.choice_points))
    if space_name == "darts":
        names = [cp.candidates[k] for cp, k in zip(net.choice_points, net.path(arch))]
        assert sum("skip" in n for n in names) <= 1
