"""``best_model.pt``: the found network's weights with everything needed to use it.

Format ``archsearch.checkpoint/2`` (a plain dict, loadable with ``torch.load(weights_only=True)``):
``space``, ``space_options``, ``arch``, ``arch_json``, ``task`` (the network's input), ``state_dict``,
``metrics``, ``config``, and since version 2 ``preprocess`` (data/base.py ``image_preprocessing`` or
the text vocabulary, plus the trained ``resolution``), ``input_shape`` (one raw input),
``class_names``, ``data`` (name and split sizes), ``search`` (strategy, trials, time) and
``versions`` (archsearch, torch). Version-1 checkpoints load; having no preprocessing, their model
takes inputs already normalised as during the search, which :func:`load_model` warns about.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Optional

import torch
import torch.nn as nn

from archsearch.core import Task
from archsearch.deploy.model import FoundModel
from archsearch.deploy.preprocess import build_preprocess, build_tokenizer
from archsearch.errors import ArchsearchError
from archsearch.spaces.base import create_space

FORMAT = "archsearch.checkpoint/2"
FORMATS = ("archsearch.checkpoint/1", FORMAT)
FILENAME = "best_model.pt"


class NoPreprocessingWarning(UserWarning):
    """An old checkpoint: its model takes normalised inputs, not raw ones."""


def make_checkpoint(*, space_name: str, space_options: dict[str, Any], arch: Any, task: Task,
                    model: nn.Module, metrics: dict[str, float], config: dict[str, Any],
                    preprocess: Optional[dict[str, Any]], class_names: Optional[tuple[str, ...]],
                    data: dict[str, Any], search: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint dict of a final model (see the module docstring)."""
    from archsearch.version import __version__

    if preprocess is not None and preprocess.get("kind") == "image":
        input_shape = list(preprocess["input_shape"])
    else:
        input_shape = list(task.input_shape)
    return {
        "format": FORMAT,
        "space": space_name, "space_options": space_options,
        "arch": str(arch), "arch_json": arch.to_dict(),
        "task": task.to_dict(), "input_shape": input_shape,
        "preprocess": preprocess, "class_names": list(class_names) if class_names else None,
        "config": config, "metrics": metrics, "data": data, "search": search,
        "versions": {"archsearch": __version__, "torch": str(torch.__version__)},
        "created_at": time.time(),
        "state_dict": model.state_dict(),
    }


def model_path(path: str) -> str:
    """``path`` itself (a checkpoint file) or the ``best_model.pt`` of a search directory."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        file = os.path.join(path, FILENAME)
        if not os.path.isfile(file):
            raise ArchsearchError(f"no {FILENAME} in {path}: not a finished search directory, or one run with "
                                  "final.enabled=false (no model was trained)")
        return file
    if not os.path.exists(path):
        raise ArchsearchError(f"checkpoint not found: {path}")
    return path


def read_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (a file or a search directory), checked, never unpickling code."""
    file = model_path(path)
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArchsearchError(f"cannot load checkpoint {file}: {first[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in FORMATS:
        raise ArchsearchError(f"{file} is not an archsearch checkpoint (no 'format' in {', '.join(FORMATS)})")
    missing = [k for k in ("space", "space_options", "arch_json", "task", "state_dict") if k not in ckpt]
    if missing:
        raise ArchsearchError(f"{file}: damaged archsearch checkpoint, missing {', '.join(missing)}")
    return ckpt


def build_network(ckpt: dict[str, Any]) -> nn.Module:
    """The network of a checkpoint dict, with its weights, in eval mode."""
    try:
        space = create_space(ckpt["space"], **ckpt["space_options"])
        arch = space.from_dict(ckpt["arch_json"])
        network = space.build(arch, Task.from_dict(ckpt["task"]))
        network.load_state_dict(ckpt["state_dict"])
    except ArchsearchError:
        raise
    except Exception as exc:  # noqa: BLE001 - weights that do not fit the architecture
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArchsearchError(f"checkpoint does not rebuild: {first[:200]}") from None
    return network.eval()


def load_checkpoint(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """The bare network (no preprocessing) and the checkpoint dict: the pre-0.2 API, kept for old code."""
    ckpt = read_checkpoint(path)
    return build_network(ckpt), ckpt


def load_model(path: str, device: str = "cpu") -> FoundModel:
    """The found model of ``path`` (a ``best_model.pt`` or a search directory), ready in eval mode:
    raw inputs in, logits out (see :class:`FoundModel`)."""
    ckpt = read_checkpoint(path)
    if ckpt.get("preprocess") is None:
        warnings.warn(f"{model_path(path)} is an old checkpoint without preprocessing: the model takes inputs "
                      "scaled and normalised as during the search, not raw data (search again to get one that does)",
                      NoPreprocessingWarning, stacklevel=2)
    return model_from_checkpoint(ckpt).to(device).eval()


def model_from_checkpoint(ckpt: dict[str, Any]) -> FoundModel:
    """The :class:`FoundModel` of a checkpoint dict already read (:func:`read_checkpoint`), in eval mode."""
    spec = ckpt.get("preprocess")
    info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    input_shape = ckpt.get("input_shape") or ckpt["task"]["input_shape"]
    model = FoundModel(build_network(ckpt), build_preprocess(spec), input_shape, ckpt.get("class_names"), info,
                       build_tokenizer(spec))
    return model.eval()
