"""``MODEL.md``: what the found model is, what it was trained and measured on, how it was found, and
how to load each exported format. Numbers come from the checkpoint, except the CPU latency, measured
here at batch 1 on the model with its preprocessing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from archsearch.deploy.model import FoundModel

if TYPE_CHECKING:
    from archsearch.deploy.export import ExportReport


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _load_snippets(model: FoundModel, report: "ExportReport") -> list[str]:
    formats = {e.format for e in report.exported}
    shape = ", ".join(map(str, model.input_shape))
    dtype = "np.int64" if model.is_language_model else "np.float32"
    lines = ["## How to load it", "", "With archsearch (raw inputs, class names, probabilities):", "", "```python",
             "import archsearch",
             "model = archsearch.load_model('RUN')            # the search directory or best_model.pt",
             f"preds = model.predict(x, top=3)                # x: raw inputs, (N, {shape})",
             "preds.classes, preds.names, preds.probs", "```", "",
             "```sh", "archsearch predict RUN INPUTS --top 3     # image file or folder, .npz, idx or text file", "```"]
    if "onnx" in formats:
        lines += ["", "ONNX Runtime (no torch needed):", "", "```python", "import numpy as np, onnxruntime as ort",
                  "session = ort.InferenceSession('model.onnx', providers=['CPUExecutionProvider'])",
                  f"logits = session.run(None, {{'input': x.astype({dtype})}})[0]   # x: (N, {shape}) raw", "```"]
    if "torchscript" in formats:
        lines += ["", "TorchScript (torch only):", "", "```python", "import torch",
                  "model = torch.jit.load('model.torchscript.pt')",
                  f"logits = model(torch.as_tensor(x))               # x: (N, {shape}) raw", "```"]
    if "code" in formats:
        lines += ["", "Plain PyTorch code (torch and safetensors only; read or change `model.py` freely):", "",
                  "```python", "import model                                      # model.py from this folder",
                  "net = model.load()                                # weights from model.safetensors",
                  f"logits = net(torch.as_tensor(x))                  # x: (N, {shape}) raw; model.CLASS_NAMES", "```"]
    return lines


def model_card(model: FoundModel, ckpt: dict[str, Any], report: "ExportReport") -> str:
    from archsearch.estimation.base import count_flops, count_params
    from archsearch.estimation.objectives import measure_latency

    task = ckpt.get("task", {})
    lm = model.is_language_model
    dtype = torch.long if lm else None
    latency = measure_latency(model, model.input_shape, (1,), repeats=20, warmup=3, dtype=dtype)[1]
    network_input = tuple(task.get("input_shape", model.input_shape))
    try:
        flops = f"{count_flops(model.network, network_input):,}"
    except Exception:  # noqa: BLE001 - a counter that cannot run this network leaves the field out
        flops = "n/a"
    spec = ckpt.get("preprocess") or {}
    search = ckpt.get("search") or {}
    data = ckpt.get("data") or {}
    metrics = ckpt.get("metrics") or {}
    names = ckpt.get("class_names")
    lines = [f"# Model card: a `{ckpt.get('space')}` network found by archsearch", "",
             "## What it is", "",
             f"- search space: `{ckpt.get('space')}`; architecture:", "", f"  ```\n  {ckpt.get('arch')}\n  ```", "",
             f"- task: {task.get('kind', 'classification')}, {task.get('num_classes')} classes",
             f"- parameters: {count_params(model.network):,}; FLOPs of one forward pass: {flops}",
             f"- CPU latency at batch 1 (with preprocessing, median of 20, {torch.get_num_threads()} threads): "
             f"{latency * 1000:.2f} ms",
             f"- input: raw, shape (N, {', '.join(map(str, model.input_shape))})"
             + (" token ids (int64)" if lm else f", as the data came ({spec.get('dtype', 'float32')})"),
             "", "## Data and preprocessing", "",
             f"- data: `{data.get('name', (ckpt.get('config') or {}).get('dataset', {}).get('name'))}`; "
             f"split sizes train {data.get('train', '?')}, valid {data.get('valid', '?')}, test {data.get('test', '?')}"
             + (" (final training on train + valid)" if data.get("train_on_valid") else "")]
    if spec.get("kind") == "image":
        lines += [f"- preprocessing (inside every exported format): x / {spec['scale']:g}, then per channel "
                  f"(x - mean) / std with the training split's mean {[round(v, 4) for v in spec['mean']]} "
                  f"and std {[round(v, 4) for v in spec['std']]}"
                  + (f", then bilinear resize to {spec['resolution']}x{spec['resolution']}" if spec.get("resolution")
                     else "")]
    elif spec.get("kind") == "tokens":
        lines += [f"- text: {spec.get('level')}-level tokens{' (lowercased)' if spec.get('lowercase') else ''}, "
                  f"vocabulary of {len(spec.get('vocab', []))} from the training file, unknown tokens read as "
                  f"`{spec.get('unk')}`; the exported formats take token ids, `archsearch predict` and "
                  "`model.predict` take text"]
    if names:
        shown = ", ".join(names[:20]) + (f", ... ({len(names)})" if len(names) > 20 else "")
        lines.append(f"- class names: {shown}")
    lines += ["", "## Metrics", "", "| metric | value | measured on |", "|---|---|---|"]
    for key in ("test_acc", "test_loss", "test_ppl", "valid_acc", "valid_loss", "valid_ppl", "latency_b1"):
        if key in metrics:
            split = key.split("_")[0]
            lines.append(f"| {key} | {_fmt(metrics[key])} | {split} split, final model |")
    for key, value in sorted((search.get("search_metrics") or {}).items()):
        if key.startswith("valid_"):
            lines.append(f"| search {key} | {_fmt(value)} | valid split, at the search fidelity |")
    lines += ["", "## How it was found", ""]
    if search:
        limits = ([f"{search['budget_trials']} trials"] if search.get("budget_trials") else []) + (
            [f"{_seconds(search['budget_time'])} for the whole job"] if search.get("budget_time") else [])
        budget = " or ".join(limits) or "unlimited"
        fid = search.get("search_fidelity") or {}
        lines += [f"- strategy `{search.get('strategy')}`, evaluator `{search.get('evaluator')}`, "
                  f"seed {search.get('seed')}",
                  f"- budget {budget}; {search.get('complete')} trials complete, {search.get('failed')} failed, "
                  f"{_seconds(float(search.get('elapsed', 0.0)))} of search; best: trial {search.get('best_trial')}",
                  f"- search fidelity: {fid.get('epochs')} epochs on {fid.get('data_fraction', 1.0):g} of the training "
                  f"data; final training: {search.get('final_epochs')} epochs from scratch"]
    else:
        lines.append("- (an old checkpoint: not recorded)")
    if report.exported:
        lines += ["", "## Exports and their checks", "", f"Each format was run right after export on {report.check} "
                  "and compared with the PyTorch model:", "",
                  "| format | files | same predictions | max abs logit difference |",
                  "|---|---|---|---|"]
        for e in report.exported:
            files = ", ".join(f"`{os.path.basename(f)}`" for f in e.files)
            lines.append(f"| {e.format} | {files} | {e.agree}/{e.total} | {e.max_diff:.2e} |")
        notes = [f"- {e.format}: {e.note}" for e in report.exported if e.note]
        lines += ([""] + notes) if notes else []
    lines += [""] + _load_snippets(model, report)
    versions = ckpt.get("versions") or {}
    lines += ["", f"Made with archsearch {versions.get('archsearch', '?')} and torch {versions.get('torch', '?')}.", ""]
    return "\n".join(lines)
