"""Code export: ``network_source`` writes a standalone model.py (torch only) that rebuilds the network.

Every registered space (so a new one is covered without edits here), DARTS with its auxiliary
head, the rnn_cell language model (tied and untied) and a network defined in this file are
written out, then rebuilt and run in ONE subprocess that cannot import archsearch; its outputs
must equal the original's. Classes defined in this test module count as custom code (anything
not from torch, the standard library or an installed third-party package is copied as source).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.deploy.codegen import network_source
from archsearch.errors import ArchsearchError, ExportError
from archsearch.spaces import SPACES, create_space
from archsearch.spaces import ops

IMAGE = Task((1, 8, 8), 10)
LANGUAGE = Task((35,), 50, "language_model")
BATCH = 5  # a batch size used nowhere else: shape bugs do not cancel out
SEEDS = (0, 1)  # two sampled architectures per space
# small networks so the whole file stays fast; a space missing here is built with its defaults
SMALL: dict[str, dict[str, Any]] = {
    "chain": {"layers": 4, "channels": (4, 8), "stem_channels": 4},
    "darts": {"channels": 4, "cells": 3},
    "hierarchical": {"channels": 4, "stages": 2, "motifs": 2, "motif_nodes": 3, "cell_nodes": 3},
    "hyperparams": {},
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "rnn_cell": {"leaves": 4, "hidden": 6},
    "skip_chain": {"layers": 4, "filters": (4, 8), "stem_channels": 4},
    "template": {"stages": 2, "stem_channels": 4, "depths": (1, 2), "se": True},
}


# -- a network written in this file: helpers, constants, a plain class, ties, buffers ----------
OFFSETS = (0.25, -0.5)


def _mix(a: torch.Tensor, b: torch.Tensor, weight: float = OFFSETS[0]) -> torch.Tensor:
    return a * weight + b * (1 - weight)


def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0


class _Crop:
    """A plain helper class the forward instantiates (copied whole)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.size, : self.size]


class _Opaque:
    pass


class Identity(nn.Module):  # the same name as archsearch.spaces.ops.Identity: one gets a suffix
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


class Gate(nn.Module):
    LIMIT = 3.0

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c))
        self.register_buffer("shift", torch.randn(c))
        self.register_buffer("mask", (torch.arange(c) % 2).float(), persistent=False)
        self.acts = [torch.tanh, _double]
        self.note = _Opaque()  # not read by any copied code: left out

    @property
    def scale(self) -> torch.Tensor:
        return self.weight.sigmoid()

    @staticmethod
    def clip(x: torch.Tensor, limit: float) -> torch.Tensor:
        return x.clamp(-limit, limit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale[:, None, None] + self.shift[:, None, None]
        y = _mix(y * self.mask[:, None, None], x)
        for act in self.acts:
            y = act(y)
        return self.clip(y, self.LIMIT)


class CustomNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.gate = Gate(4)
        self.again = self.gate  # a shared module
        self.blocks = nn.ModuleDict({"a": ops.Identity(4, 4, 1), "b": Identity(), "c": ops.Identity(4, 4, 2)})
        self.order = ("a", "b")
        self.square = nn.Linear(4, 4)
        self.tail = nn.Linear(4, 4, bias=False)
        self.tail.weight = self.square.weight  # a tied parameter
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.again(self.gate(self.conv(x)))
        for key in self.order:
            x = self.blocks[key](x)
        x = _Crop(6).apply(x).mean(dim=(2, 3))
        return self.head(self.tail(self.square(x))) + OFFSETS[1]


# -- the cases -------------------------------------------------------------------------------
def _space_case(name: str, options: dict[str, Any], task: Task, seed: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        space = create_space(name, **options)
        return space.build(space.sample(np.random.default_rng(seed)), task)
    return build


def _cases() -> dict[str, tuple[Callable[[], nn.Module], Task]]:
    out: dict[str, tuple[Callable[[], nn.Module], Task]] = {}
    for name in SPACES.names():
        for seed in SEEDS:
            out[f"{name}-{seed}"] = (_space_case(name, SMALL.get(name, {}), IMAGE, seed), IMAGE)
    out["darts-auxiliary"] = (_space_case("darts", {**SMALL["darts"], "auxiliary": True}, IMAGE, 0), IMAGE)
    for seed in SEEDS:
        out[f"rnn_cell-lm-{seed}"] = (_space_case("rnn_cell", SMALL["rnn_cell"], LANGUAGE, seed), LANGUAGE)
    out["rnn_cell-lm-tied"] = (_space_case("rnn_cell", {**SMALL["rnn_cell"], "tie_weights": True}, LANGUAGE, 0),
                               LANGUAGE)
    out["custom"] = (CustomNet, IMAGE)
    return out


CASES = _cases()


def _inputs(task: Task, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if task.kind == "language_model":
        return torch.randint(0, task.num_classes, (n, *task.input_shape), generator=g)
    return torch.randn(n, *task.input_shape, generator=g)


# Runs in a fresh interpreter that cannot import archsearch: builds each model.py, loads the saved
# weights strictly, runs the saved inputs in eval mode and saves the outputs (or the error).
RUNNER = r"""
import sys
sys.modules["archsearch"] = None  # the generated files may not need archsearch
import importlib.util, json, pathlib, traceback
import torch

for i, case in enumerate(json.loads(sys.argv[1])):
    folder = pathlib.Path(case)
    try:
        name = f"exported_model_{i}"
        spec = importlib.util.spec_from_file_location(name, folder / "model.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        model = module.build_model()
        model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True), strict=True)
        model.eval()
        with torch.no_grad():
            out = model(torch.load(folder / "inputs.pt", weights_only=True))
        torch.save(out, folder / "outputs.pt")
        if (folder / "train_inputs.pt").exists():  # training mode too (DARTS's auxiliary head)
            model.train()
            with torch.no_grad():
                out = model(torch.load(folder / "train_inputs.pt", weights_only=True))
            torch.save({"out": out, "aux": model.aux_logits}, folder / "train_outputs.pt")
        layout = [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
        shared = sorted(sorted(k for k, t in model.state_dict(keep_vars=True).items() if id(t) == id(v))
                        for v in model.state_dict(keep_vars=True).values())
        (folder / "layout.json").write_text(json.dumps({"layout": layout, "shared": shared}))
    except BaseException:
        (folder / "error.txt").write_text(traceback.format_exc())
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case generated here and run in one subprocess."""
    root = tmp_path_factory.mktemp("codegen")
    results: dict[str, dict[str, Any]] = {}
    for case, (build, task) in CASES.items():
        torch.manual_seed(0)
        model = build()
        with torch.no_grad():  # move BatchNorm statistics off their defaults
            model.train()
            model(_inputs(task, 7, 1))
        model.eval()
        x = _inputs(task, BATCH, 2)
        with torch.no_grad():
            expected = model(x)
        result: dict[str, Any] = {"expected": expected, "model": model, "folder": root / case}
        try:
            result["source"] = network_source(model, header=f"Exported network: {case}.")
        except ExportError as exc:
            result["error"] = f"ExportError: {exc}"
            results[case] = result
            continue
        folder = root / case
        folder.mkdir()
        (folder / "model.py").write_text(result["source"], encoding="utf-8")
        torch.save(model.state_dict(), folder / "weights.pt")
        torch.save(x, folder / "inputs.pt")
        if case == "darts-auxiliary":
            xt = _inputs(task, BATCH, 3)
            torch.save(xt, folder / "train_inputs.pt")
            model.train()
            with torch.no_grad():
                result["train_expected"] = {"out": model(xt), "aux": model.aux_logits}
            model.eval()
        results[case] = result
    runnable = [c for c, r in results.items() if "error" not in r]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(runnable)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    for case in runnable:
        folder = results[case]["folder"]
        if (folder / "error.txt").exists():
            results[case]["error"] = (folder / "error.txt").read_text()
        else:
            results[case]["outputs"] = torch.load(folder / "outputs.pt", weights_only=True)
            results[case]["layout"] = json.loads((folder / "layout.json").read_text())
            if (folder / "train_outputs.pt").exists():
                results[case]["train_outputs"] = torch.load(folder / "train_outputs.pt", weights_only=True)
    return results


def _check_case(result: dict[str, Any]) -> None:
    assert "error" not in result, result["error"]
    source, model = result["source"], result["model"]
    assert "archsearch" not in "\n".join(l for l in source.splitlines() if l.lstrip().startswith(("import", "from")))
    compile(source, "model.py", "exec")
    expected, got = result["expected"], result["outputs"]
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert torch.equal(got, expected) or (got - expected).abs().max().item() <= 1e-6
    layout = [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()]
    assert result["layout"]["layout"] == layout  # the same keys, in the same order, shapes and dtypes
    state = model.state_dict(keep_vars=True)
    shared = sorted(sorted(k for k, t in state.items() if id(t) == id(v)) for v in state.values())
    assert result["layout"]["shared"] == shared


@pytest.mark.parametrize("space", SPACES.names())
def test_every_space_exports_and_matches(exported: dict[str, dict[str, Any]], space: str) -> None:
    for seed in SEEDS:
        _check_case(exported[f"{space}-{seed}"])
    source = exported[f"{space}-0"]["source"]
    assert "def build_model() -> nn.Module:" in source and "class Module(nn.Module):" in source
    assert "def forward" in source or "return nn." in source


def test_chain_source_is_readable(exported: dict[str, dict[str, Any]]) -> None:
    source = exported["chain-0"]["source"]
    assert source.startswith('"""Exported network: chain-0."""')
    assert "class ChainNet(Module):" in source and "def forward(self, x: torch.Tensor)" in source
    assert "import torch\nimport torch.nn as nn\n" in source
    assert "stem=nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())" in source
    assert "__init__(self, arch" not in source  # the original constructor is not copied


def test_darts_auxiliary_head(exported: dict[str, dict[str, Any]]) -> None:
    result = exported["darts-auxiliary"]
    _check_case(result)
    expected, got = result["train_expected"], result["train_outputs"]
    assert expected["aux"] is not None and got["aux"].shape == expected["aux"].shape
    for key in ("out", "aux"):  # training mode: the auxiliary head runs
        assert torch.equal(got[key], expected[key]) or (got[key] - expected[key]).abs().max().item() <= 1e-6
    assert "auxiliary_head=AuxiliaryHead(" in result["source"] and "import torch.nn.functional as F" in result["source"]


@pytest.mark.parametrize("case", ["rnn_cell-lm-0", "rnn_cell-lm-1", "rnn_cell-lm-tied"])
def test_rnn_language_model(exported: dict[str, dict[str, Any]], case: str) -> None:
    result = exported[case]
    _check_case(result)
    source = result["source"]
    assert "class LanguageModel(Module):" in source and "def step(" in source
    assert "arch=" not in source  # the genotype object is not read by the copied code: left out
    tie = "model.decoder.weight = model.embedding.weight"
    assert (tie in source) == case.endswith("tied")


def test_custom_network(exported: dict[str, dict[str, Any]]) -> None:
    result = exported["custom"]
    _check_case(result)
    source = result["source"]
    assert "model.again = model.gate" in source and "model.tail.weight = model.square.weight" in source
    assert "def _mix(" in source and "def _double(" in source and "class _Crop:" in source
    assert "OFFSETS = (0.25, -0.5)" in source and "LIMIT = 3.0" in source
    assert 'non_persistent=("mask",)' in source and "note=" not in source
    assert "class Identity(Module):" in source and "class Identity_2(Module):" in source
    assert "@staticmethod" in source and "@property" in source


# -- what cannot be exported ---------------------------------------------------------------
class _Settings:
    def __init__(self) -> None:
        self.scale = 2.0


class ReadsSettings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.settings = _Settings()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.settings.scale


class UsesNumpy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(np.pi)


def _one_line_error(model: nn.Module) -> str:
    with pytest.raises(ExportError) as info:
        network_source(model)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_attribute_read_by_forward_that_cannot_be_written_raises() -> None:
    assert issubclass(ExportError, ArchsearchError)
    message = _one_line_error(ReadsSettings())
    assert "ReadsSettings.settings" in message and "_Settings object" in message


def test_global_module_outside_torch_raises() -> None:
    message = _one_line_error(UsesNumpy())
    assert "UsesNumpy.forward" in message and "np" in message and "numpy" in message


def test_builtin_with_extra_state_raises() -> None:
    linear = nn.Linear(2, 2)
    linear.note = 3  # not a constructor argument: the written call would lose it
    message = _one_line_error(nn.Sequential(linear))
    assert "Linear" in message


def test_builtin_hooks_raise() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].register_forward_hook(lambda m, i, o: o * 2)
    assert "Linear" in _one_line_error(model)
