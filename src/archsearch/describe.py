"""What an architecture is: canonical string, size, cost and a layer summary (``archsearch describe``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.estimation.base import count_flops, count_params
from archsearch.spaces.base import Architecture, SearchSpace, count_params_without_aux


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``C,H,W`` (or ``C,L`` / ``D``) -> a tuple of positive ints."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) > 3:
        raise ConfigError(f"--input-shape expects positive integers C,H,W (e.g. 3,32,32), got {text!r}")
    return tuple(int(p) for p in parts)


def _rows(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children; a container of blocks (Sequential/ModuleList of modules with children) opens one level."""
    rows: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        blocks = isinstance(child, (nn.Sequential, nn.ModuleList)) and any(
            any(True for _ in c.children()) for c in child.children())
        if blocks:
            rows += [(f"{name}.{sub}", m) for sub, m in child.named_children()]
        else:
            rows.append((name, child))
    return rows


def layer_summary(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per top-level block: name, type, parameters and output shape at batch 1."""
    rows = _rows(model)
    shapes: dict[str, list[int]] = {}
    hooks = []
    for name, module in rows:
        def hook(_m: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
            if isinstance(out, torch.Tensor) and name not in shapes:
                shapes[name] = list(out.shape[1:])
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [{"name": name, "type": type(module).__name__, "params": count_params(module),
             "output_shape": shapes.get(name)} for name, module in rows]


def describe(space: SearchSpace, arch: Architecture, task: Task) -> dict[str, Any]:
    """Build ``arch`` for ``task`` (seeded, so repeated calls agree) and measure it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = space.build(arch, task)
    return {
        "space": space.name,
        "arch": str(arch),
        "id": arch.id,
        "input_shape": list(task.input_shape),
        "classes": task.num_classes,
        "params": count_params(model),
        "params_without_aux": count_params_without_aux(model),
        "flops": count_flops(model, task.input_shape),
        "layers": layer_summary(model, task.input_shape),
    }


def describe_text(info: dict[str, Any]) -> str:
    lines = [
        f"space   {info['space']}",
        f"arch    {info['arch']}",
        f"input   {'x'.join(map(str, info['input_shape']))}, {info['classes']} classes",
        f"params  {info['params']:,} ({info['params_without_aux']:,} without auxiliary heads)",
        f"FLOPs   {info['flops']:,} per example (forward, batch 1)",
        "",
        f"{'layer':<24} {'type':<22} {'params':>12}  output",
    ]
    for row in info["layers"]:
        shape = "x".join(map(str, row["output_shape"])) if row["output_shape"] else "-"
        lines.append(f"{row['name']:<24} {row['type']:<22} {row['params']:>12,}  {shape}")
    return "\n".join(lines)


def run_target(run: str) -> dict[str, Any]:
    """What ``describe RUN`` describes: the found model (its final space and network input) when the
    run trained one, else the best trial in the searched space, with the run's input shape and classes."""
    import os

    from archsearch import report
    from archsearch.deploy.checkpoint import FILENAME, read_checkpoint
    from archsearch.errors import JournalError
    from archsearch.storage.journal import Journal

    if os.path.isfile(os.path.join(run, FILENAME)) or os.path.isfile(run):
        ckpt = read_checkpoint(run)
        return {"space": ckpt["space"], "space_options": ckpt["space_options"], "arch": ckpt["arch"],
                "input_shape": ckpt["task"]["input_shape"], "num_classes": ckpt["task"]["num_classes"]}
    if not os.path.isfile(os.path.join(run, Journal.FILENAME)):
        raise JournalError(f"no search directory at {run} (no {Journal.FILENAME} or {FILENAME})")
    journal = Journal(os.path.join(run, Journal.FILENAME))
    try:
        data = report.summary(journal)
        info = journal.get_meta("data") or {}
    finally:
        journal.close()
    if data["best"] is None:
        raise JournalError(f"{run} has no complete trial yet: nothing to describe")
    space = dict(data["config"].get("space") or {"name": "chain"})
    if not info.get("input_shape"):
        raise JournalError(f"{run} does not record its input shape (an older search): give --input-shape and --classes")
    return {"space": space.pop("name"), "space_options": space, "arch": data["best"]["arch"],
            "input_shape": info["input_shape"], "num_classes": info["num_classes"]}
