"""What ``archsearch predict`` reads: image files and folders, ``.npz`` arrays, idx files, text files,
or a run's own test split, each turned into the raw form the found model takes.

Images from files are decoded as the ``image_folder`` source decodes them (grayscale or RGB to the
model's channels, bilinear resize to its input size) and, for a model trained on data of another
range than 0..255 (scikit-learn's digits: 0..16), mapped to that range. A folder whose sub-folders
are the model's class names gives labels too, so predictions can be scored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from archsearch.deploy.model import FoundModel
from archsearch.errors import DataError


@dataclass
class Inputs:
    names: list[str]
    x: Any  # a raw image batch (N, C, H, W), or a list of texts / token id sequences
    labels: Optional[np.ndarray] = None
    source: str = ""


def _image(file: str, model: FoundModel) -> np.ndarray:
    """One image file as the model's raw (C, H, W) input."""
    from PIL import Image

    c, h, w = model.input_shape
    try:
        with Image.open(file) as img:
            img = img.convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - unreadable or not an image
        raise DataError(f"{file}: unreadable image ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
    if c not in (1, 3):
        raise DataError(f"{file}: this model takes {c}-channel inputs; image files give 1 (grayscale) or 3 (RGB)")
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    spec = model.info.get("preprocess") or {}
    if spec.get("dtype", "uint8") != "uint8" and float(spec.get("scale", 255.0)) != 255.0:
        return arr.astype(np.float32) * (float(spec["scale"]) / 255.0)  # into the data's own range
    return arr


def _image_files(folder: str) -> list[str]:
    from archsearch.data.files import IMAGE_EXTENSIONS

    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files)
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    return found


def _folder(path: str, model: FoundModel) -> Inputs:
    files = _image_files(path)
    if not files:
        raise DataError(f"{path}: no image files (png, jpg, jpeg, bmp, gif, webp) in the folder or its sub-folders")
    x = np.stack([_image(f, model) for f in files])
    names = [os.path.relpath(f, path) for f in files]
    labels = None
    if model.class_names:  # <class>/<image> with the model's class names: score the predictions
        index = {n: i for i, n in enumerate(model.class_names)}
        parents = [os.path.basename(os.path.dirname(f)) for f in files]
        if all(p in index for p in parents):
            labels = np.asarray([index[p] for p in parents])
    return Inputs(names, x, labels, path)


def _npz(path: str) -> Inputs:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files:
                raise DataError(f"{path}: an .npz of inputs needs an array 'x', found {sorted(f.files)}")
            x = f["x"]
            y = f["y"] if "y" in f.files else None
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read {path} as .npz: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    names = [f"{os.path.basename(path)}[{i}]" for i in range(len(x))]
    labels = None if y is None else np.asarray(y).astype(np.int64).reshape(-1)
    if labels is not None and len(labels) != len(x):
        raise DataError(f"{path}: {len(x)} inputs but {len(labels)} labels in 'y'")
    return Inputs(names, x, labels, path)


def _idx(path: str) -> Inputs:
    from archsearch.data.files import read_idx

    x = read_idx(path, 3)[:, None]  # (N, 1, H, W) uint8
    labels = None
    sibling = path.replace("images-idx3", "labels-idx1")
    if sibling != path and os.path.isfile(sibling):
        labels = read_idx(sibling, 1).astype(np.int64)
        if len(labels) != len(x):
            labels = None
    return Inputs([f"{os.path.basename(path)}[{i}]" for i in range(len(x))], x, labels, path)


def _text(path: str) -> Inputs:
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as UTF-8 text: {exc}") from None
    if not lines:
        raise DataError(f"{path}: no text (every line is blank)")
    return Inputs([line if len(line) <= 40 else line[:37] + "..." for line in lines], lines, None, path)


def read_inputs(path: str, model: FoundModel) -> Inputs:
    """The inputs at ``path`` in the raw form ``model`` takes (see the module docstring)."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DataError(f"inputs not found: {path}")
    lower = path.lower()
    if model.is_language_model:
        if os.path.isdir(path) or lower.endswith((".npz",)):
            return _npz(path) if lower.endswith(".npz") else _text_folder_error(path)
        return _text(path)
    if os.path.isdir(path):
        return _folder(path, model)
    if lower.endswith(".npz"):
        return _npz(path)
    if "idx3" in lower or lower.endswith(("-ubyte", "-ubyte.gz")):
        return _idx(path)
    if lower.endswith(".txt"):
        raise DataError(f"{path}: text inputs need a language model; this model classifies images "
                        f"of shape {model.input_shape}")
    return Inputs([os.path.basename(path)], _image(path, model)[None], None, path)


def _text_folder_error(path: str) -> Inputs:
    raise DataError(f"{path}: a language model predicts from a text file (one input per line) or an .npz of "
                    "token ids 'x', not a folder")


def run_test_split(run_ckpt: dict[str, Any]) -> Inputs:
    """The run's own test split in raw form, found again from its config and seed (for checking a model
    against the accuracy the search reported)."""
    from archsearch.data import DATASETS

    config, data = run_ckpt.get("config") or {}, run_ckpt.get("data") or {}
    spec = dict(config.get("dataset") or {})
    if data.get("name") == "arrays" and not spec.get("path"):
        raise DataError("this run's data was passed in memory (Python API): give INPUTS to predict")
    if data.get("name") and spec.get("name") != data.get("name"):
        raise DataError(f"this run's data ({data.get('name')}) is not recorded in its config: give INPUTS to predict")
    source = DATASETS.create(spec.get("name", "digits"), **{k: v for k, v in spec.items() if k != "name"})
    x, y = source.raw_test(int(config.get("seed", 0)))
    return Inputs([f"test[{i}]" for i in range(len(x))], x, y, f"the run's test split ({spec.get('name')})")
