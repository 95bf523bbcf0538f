"""``archsearch export``: the found model as ONNX, TorchScript and plain PyTorch code, each checked.

Every format carries the preprocessing (it takes raw inputs, as ``load_model`` does) and is verified
right after it is written, against the PyTorch model on the run's test split in raw form (or, when
the run's data is not on disk, on random inputs in the data's range):

* ``onnx``: torch's exporter (``torch.onnx.export``, dynamo), batch dimension dynamic; run with
  onnxruntime; the check reports the prediction agreement and the largest logit difference, which
  must be <= :data:`ONNX_TOLERANCE`;
* ``torchscript``: ``torch.jit.trace`` (loads with ``torch.jit.load``, no archsearch needed), with
  the class names and record in its extra file ``archsearch.json``;
* ``code``: ``model.py`` (only torch imports; deploy/codegen.py writes it) and ``model.safetensors``.

Language models take (N, T) token ids; ONNX and TorchScript unroll the recurrence over time steps,
so they take the trained window length only (a one-line note says so); ``model.py`` takes any length.
ONNX and the safetensors weights need the optional packages of ``archsearch[export]``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from archsearch.deploy.checkpoint import model_from_checkpoint, model_path, read_checkpoint
from archsearch.deploy.model import FoundModel
from archsearch.errors import ArchsearchError, ExportError

FORMATS = ("onnx", "torchscript", "code")
ONNX_TOLERANCE = 1e-4
EXACT_TOLERANCE = 1e-6
EXTRA = "pip install 'archsearch[export]'"
CHECK_BATCH = 256


@dataclass
class Exported:
    """One written format: its files, the seconds export took, and what the check measured."""

    format: str
    files: list[str]
    seconds: float
    agree: int = 0
    total: int = 0
    max_diff: float = 0.0
    note: str = ""

    def line(self) -> str:
        check = f"{self.agree}/{self.total} same predictions, max |logit diff| {self.max_diff:.2e}"
        return f"{self.format}: {', '.join(self.files)} ({self.seconds:.1f}s; {check})" + (
            f"\n  note: {self.note}" if self.note else "")


@dataclass
class CheckData:
    x: torch.Tensor  # raw inputs, as the model takes them
    reference: torch.Tensor  # the PyTorch model's logits
    what: str
    labels: Optional[np.ndarray] = None


@dataclass
class ExportReport:
    out_dir: str
    exported: list[Exported] = field(default_factory=list)
    check: str = ""
    card: str = ""


def require(*modules: str, what: str) -> None:
    """A one-line error naming the extra when an optional package is missing."""
    missing = [m for m in modules if _missing(m)]
    if missing:
        raise ExportError(f"{what} needs the optional package{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}: {EXTRA}")


def _missing(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None
    return importlib.util.find_spec(module) is None


# -- the inputs the checks run -----------------------------------------------------------------
def check_data(model: FoundModel, ckpt: dict[str, Any], limit: Optional[int] = None) -> CheckData:
    """The run's raw test split (from its config and seed), else random inputs in the data's range."""
    from archsearch.deploy.inputs import run_test_split

    try:
        inputs = run_test_split(ckpt)
        x = torch.as_tensor(np.asarray(inputs.x))
        x = x if model.is_language_model else model.as_batch(x)
        what = f"the run's test split ({len(x)} inputs)"
        labels = inputs.labels
    except ArchsearchError:  # data passed in memory, or moved since: check on random inputs
        generator = torch.Generator().manual_seed(0)
        if model.is_language_model:
            x = torch.randint(0, len(model.class_names or ()) or 2, (64, *model.input_shape), generator=generator)
        else:
            spec = model.info.get("preprocess") or {}
            scale = float(spec.get("scale", 1.0))
            x = torch.rand((64, *model.input_shape), generator=generator) * scale
            if spec.get("dtype") == "uint8":
                x = x.round().to(torch.uint8)
        what, labels = "64 random inputs (the run's test data is not on disk)", None
    if limit is not None and len(x) > limit:
        x, labels = x[:limit], None if labels is None else labels[:limit]
        what = f"the first {limit} of {what}"
    with torch.no_grad():
        reference = torch.cat([model(x[i : i + CHECK_BATCH]) for i in range(0, len(x), CHECK_BATCH)])
    return CheckData(x, reference, what, labels)


def _compare(fmt: str, got: torch.Tensor, data: CheckData, tolerance: float) -> tuple[int, float]:
    got = got.to(data.reference.dtype)
    if got.shape != data.reference.shape:
        raise ExportError(f"{fmt} check failed: outputs of shape {tuple(got.shape)}, the model gives "
                          f"{tuple(data.reference.shape)}")
    diff = float((got - data.reference).abs().max()) if got.numel() else 0.0
    agree = int((got.argmax(-1) == data.reference.argmax(-1)).all(-1).sum()) if got.dim() > 2 else \
        int((got.argmax(-1) == data.reference.argmax(-1)).sum())
    if not diff <= tolerance:
        raise ExportError(f"{fmt} check failed on {data.what}: max |logit diff| {diff:.3g} > {tolerance:g} "
                          f"({agree}/{len(got)} same predictions)")
    return agree, diff


def _batched(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return torch.cat([run(x[i : i + CHECK_BATCH]) for i in range(0, len(x), CHECK_BATCH)])


def _example(data: CheckData) -> torch.Tensor:
    """A small batch (>= 2: a batch of one would fix the exported batch size at 1)."""
    x = data.x[:4]
    return x if len(x) >= 2 else torch.cat([x, x])


def _sequence_note(model: FoundModel) -> str:
    if model.is_language_model:
        return (f"takes windows of {model.input_shape[0]} tokens only (the recurrence is unrolled over time steps); "
                "model.py takes any length")
    return ""


# -- the formats -----------------------------------------------------------------------------
def export_onnx(model: FoundModel, data: CheckData, path: str) -> Exported:
    require("onnx", "onnxscript", "onnxruntime", what="ONNX export")
    import onnx
    import onnxruntime as ort

    start = time.perf_counter()
    example = _example(data)
    batch = torch.export.Dim("batch", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["input"],
                                        output_names=["logits"], dynamic_shapes=({0: batch},), optimize=True)
            program.save(path)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter's own complaint, in one line
        raise ExportError(f"ONNX export failed: {_first_line(exc)}") from None
    onnx.checker.check_model(path)
    seconds = time.perf_counter() - start
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    dtype = np.int64 if model.is_language_model else np.float32
    got = _batched(lambda xb: torch.from_numpy(session.run(None, {name: xb.numpy().astype(dtype)})[0]), data.x)
    agree, diff = _compare("onnx", got, data, ONNX_TOLERANCE)
    return Exported("onnx", [path], seconds, agree, len(data.x), diff, _sequence_note(model))


def export_torchscript(model: FoundModel, data: CheckData, path: str, meta: dict[str, Any]) -> Exported:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (_example(data),), check_trace=False)
            torch.jit.save(traced, path, _extra_files={"archsearch.json": json.dumps(meta)})
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"TorchScript export failed: {_first_line(exc)}") from None
    seconds = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(path, map_location="cpu").eval()
    with torch.no_grad():
        got = _batched(loaded, data.x)
    agree, diff = _compare("torchscript", got, data, EXACT_TOLERANCE)
    return Exported("torchscript", [path], seconds, agree, len(data.x), diff, _sequence_note(model))


LOADER = '''

def load(weights: str = "") -> nn.Module:
    """The found model with its trained weights (default: model.safetensors beside this file), in eval mode."""
    import os

    from safetensors.torch import load_file

    model = build_model()
    model.load_state_dict(load_file(weights or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "model.safetensors")))
    return model.eval()


CLASS_NAMES = {class_names!r}
'''


def export_code(model: FoundModel, data: CheckData, out_dir: str, header: str) -> Exported:
    require("safetensors", what="code export (weights in safetensors)")
    from safetensors.torch import save_file

    from archsearch.deploy.codegen import network_source

    start = time.perf_counter()
    bare = FoundModel(model.network, model.preprocess, model.input_shape, model.class_names)  # no record, no tokenizer
    source = network_source(bare, header) + LOADER.format(class_names=list(model.class_names or []))
    code_path, weights_path = os.path.join(out_dir, "model.py"), os.path.join(out_dir, "model.safetensors")
    with open(code_path, "w", encoding="utf-8") as f:
        f.write(source)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in bare.state_dict().items()}
    save_file(state, weights_path, metadata={"format": "archsearch.model.py/1"})
    seconds = time.perf_counter() - start
    spec = importlib.util.spec_from_file_location("archsearch_exported_model", code_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded = module.load(weights_path)
    with torch.no_grad():
        got = _batched(loaded, data.x)
    agree, diff = _compare("code", got, data, EXACT_TOLERANCE)
    return Exported("code", [code_path, weights_path], seconds, agree, len(data.x), diff)


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]


# -- the command -----------------------------------------------------------------------------------
def parse_formats(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ExportError(f"no export format given (valid: {', '.join(FORMATS)}, all)")
    out: list[str] = []
    for name in names:
        if name == "all":
            out += [f for f in FORMATS if f not in out]
        elif name in FORMATS:
            out += [] if name in out else [name]
        else:
            raise ExportError(f"unknown export format {name!r} (valid: {', '.join(FORMATS)}, all)")
    return out


def export_run(run: str, formats: list[str], out_dir: Optional[str] = None, check_limit: Optional[int] = None,
               progress: Callable[[str], None] = lambda s: None) -> ExportReport:
    """Export the found model of ``run`` (a search directory or a ``best_model.pt``) in ``formats``
    into ``out_dir`` (default: RUN/export), each checked, and write the model card ``MODEL.md``."""
    from archsearch.deploy.card import model_card

    ckpt = read_checkpoint(run)
    for fmt in formats:  # missing packages are reported before anything is written
        if fmt == "onnx":
            require("onnx", "onnxscript", "onnxruntime", what="ONNX export")
        if fmt == "code":
            require("safetensors", what="code export (weights in safetensors)")
    if ckpt.get("preprocess") is None:
        raise ExportError(f"{model_path(run)} is an old checkpoint without preprocessing; an export would take "
                          "normalised inputs instead of raw data: search again to get one that does")
    model = model_from_checkpoint(ckpt)
    if out_dir is None:
        base = run if os.path.isdir(run) else os.path.dirname(os.path.abspath(run))
        out_dir = os.path.join(base, "export")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the output directory {out_dir}: {exc.strerror or exc}") from None
    data = check_data(model, ckpt, check_limit)
    report = ExportReport(out_dir, check=data.what)
    meta = {"arch": ckpt.get("arch"), "space": ckpt.get("space"), "class_names": ckpt.get("class_names"),
            "input_shape": ckpt.get("input_shape"), "metrics": ckpt.get("metrics"), "preprocess": {
                k: v for k, v in (ckpt.get("preprocess") or {}).items() if k != "vocab"}}
    header = f"The model archsearch found: {ckpt.get('space')} {ckpt.get('arch')}"
    for fmt in formats:
        progress(f"exporting {fmt}...")
        if fmt == "onnx":
            done = export_onnx(model, data, os.path.join(out_dir, "model.onnx"))
        elif fmt == "torchscript":
            done = export_torchscript(model, data, os.path.join(out_dir, "model.torchscript.pt"), meta)
        else:
            done = export_code(model, data, out_dir, header)
        report.exported.append(done)
        progress(done.line())
    card_path = os.path.join(out_dir, "MODEL.md")
    with open(card_path, "w", encoding="utf-8") as f:
        f.write(model_card(model, ckpt, report))
    report.card = card_path
    return report


__all__ = ["FORMATS", "ExportReport", "Exported", "check_data", "export_run", "parse_formats"]
