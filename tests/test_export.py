"""``archsearch export``: every registered space's found model as ONNX (checked with onnxruntime),
TorchScript and plain PyTorch code, the last two loaded where archsearch cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import archsearch
from archsearch.spaces import list_spaces
from test_spaces import space_args

pytestmark = pytest.mark.slow

# Runs the exported files with archsearch blocked: model.py + model.safetensors and the TorchScript file
# must give the saved reference logits on the saved raw inputs.
STANDALONE = r"""
import sys
sys.modules["archsearch"] = None  # any import of archsearch now fails
import importlib.util, json, os
import numpy as np, torch
export_dir = sys.argv[1]
x = torch.from_numpy(np.load(os.path.join(export_dir, "check_x.npy")))
ref = torch.from_numpy(np.load(os.path.join(export_dir, "check_ref.npy")))
spec = importlib.util.spec_from_file_location("model", os.path.join(export_dir, "model.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
net = module.load()
scripted = torch.jit.load(os.path.join(export_dir, "model.torchscript.pt"))
with torch.no_grad():
    code_diff = float((net(x) - ref).abs().max())
    script_diff = float((scripted(x) - ref).abs().max())
print(json.dumps({"code": code_diff, "torchscript": script_diff, "class_names": module.CLASS_NAMES,
                  "training": net.training}))
"""


def export_and_check(run_cli, run: str, out: str) -> tuple[dict, str]:
    code, stdout, err = run_cli("export", run, "--format", "all", "--out", out)
    assert code == 0, err
    for name in ("model.onnx", "model.torchscript.pt", "model.py", "model.safetensors", "MODEL.md"):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "model.py"), encoding="utf-8") as f:
        source = f.read()
    assert "archsearch" not in source.split('"""', 2)[-1].split("def build_model")[0].replace("found by", "")
    model = archsearch.load_model(run)
    from archsearch.deploy.export import check_data

    data = check_data(model, model.info)
    x = data.x[:7]  # a batch size no export used
    np.save(os.path.join(out, "check_x.npy"), x.numpy())
    np.save(os.path.join(out, "check_ref.npy"), data.reference[:7].numpy())
    proc = subprocess.run([sys.executable, "-c", STANDALONE, out], capture_output=True, text=True, timeout=300,
                          cwd=out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] <= 1e-6 and result["torchscript"] <= 1e-6 and result["training"] is False
    return result, err


def onnx_line(err: str) -> tuple[int, int, float]:
    line = next(line for line in err.splitlines() if line.startswith("onnx:"))
    agree, total = line.split("; ")[1].split(" same")[0].split("/")
    diff = float(line.split("max |logit diff| ")[1].rstrip(")"))
    return int(agree), int(total), diff


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_exports_in_all_three_formats(run_cli, tmp_path, name):
    run = str(tmp_path / "run")
    code, _, err = run_cli("search", *space_args(name), "--budget", "1", "--epochs", "1", "--data-fraction", "0.3",
                           "--set", "final.epochs=1", "--seed", "2", "--out", run, "--quiet")
    assert code == 0, err
    result, err = export_and_check(run_cli, run, str(tmp_path / "export"))
    agree, total, diff = onnx_line(err)
    assert total == 359 and agree == total and diff <= 1e-4  # the run's whole digits test split
    card = (tmp_path / "export" / "MODEL.md").read_text()
    for part in ("## What it is", "parameters:", "CPU latency at batch 1", "x / 16", "test_acc", "strategy `evolution`",
                 "onnxruntime", "torch.jit.load", "model.load()"):
        assert part in card, part


def test_the_language_model_exports_and_says_what_its_formats_cannot(run_cli, tmp_path):
    from test_text_lm import LM_ARGS, write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    run = str(tmp_path / "run")
    code, _, err = run_cli("search", "--space", "rnn_cell", "--dataset", f"text:{corpus}", "--budget", "1",
                           "--out", run, "--set", "final.enabled=true", "--set", "final.epochs=1",
                           "--set", "space.tie_weights=true", *LM_ARGS)
    assert code == 0, err
    result, err = export_and_check(run_cli, run, str(tmp_path / "export"))
    assert result["class_names"][:2] == ["<unk>", "<eos>"]  # the vocabulary travels with model.py
    assert "note: takes windows of 8 tokens only (the recurrence is unrolled over time steps); model.py takes any length" in err
    agree, total, diff = onnx_line(err)
    assert agree == total > 0 and diff <= 1e-4
    # predict reads text: the next token after each line
    lines = tmp_path / "lines.txt"
    lines.write_text("the cat\nzzz unknown words\n")
    code, out, err = run_cli("predict", run, str(lines), "--top", "2")
    assert code == 0, err
    assert "2 inputs" in " ".join(out.split())


def test_export_of_in_memory_data_checks_on_random_inputs(tmp_path):
    from archsearch.deploy.export import export_run
    from conftest import synthetic_images, tiny_config

    x, y = synthetic_images(90, classes=3)
    splits = archsearch.from_arrays((x * 40 + 100).clip(0, 255).astype(np.uint8), y)
    run = str(tmp_path / "run")
    archsearch.run_search(tiny_config(final={"enabled": True, "epochs": 2}, budget={"trials": 1}), run, data=splits,
                          quiet=True)
    report = export_run(run, ["torchscript"], str(tmp_path / "export"))
    assert report.check.startswith("64 random inputs") and report.exported[0].agree == 64
    assert torch.load(os.path.join(run, "best_model.pt"), weights_only=True)["preprocess"]["dtype"] == "uint8"
