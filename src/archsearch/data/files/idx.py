"""MNIST and Fashion-MNIST from their idx files (plain or .gz), as the archives or torchvision unpack them."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any, ClassVar, Mapping, Optional

import numpy as np

from archsearch.data.base import ArraySource, RawData, register_dataset
from archsearch.data.files.common import _one_line, _require_dir
from archsearch.errors import DataError

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(file: str, ndim: int) -> np.ndarray:
    """Parse a uint8 idx file (plain or ``.gz``): magic ``00 00 08 ndim``, big-endian uint32 dims, data.

    The header is checked against the file size so that a truncated download is an error,
    not a silently shorter dataset.
    """
    try:
        if file.endswith(".gz"):
            with gzip.open(file, "rb") as f:
                buf = f.read()
        else:
            with open(file, "rb") as f:
                buf = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{file}: cannot read ({_one_line(exc)})") from exc
    if len(buf) < 4:
        raise DataError(f"{file}: too short for an idx header ({len(buf)} bytes)")
    zero, dtype_code, dims = struct.unpack(">HBB", buf[:4])
    if zero != 0 or dtype_code != 0x08 or dims != ndim:
        raise DataError(
            f"{file}: bad idx magic number 0x{buf[:4].hex()} "
            f"(expected 0x000008{ndim:02x}: uint8 data, {ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{file}: truncated idx header ({len(buf)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(buf) - header != expected:
        what = "truncated" if len(buf) - header < expected else "has trailing bytes"
        raise DataError(f"{file}: {what}: header says {shape} = {expected} bytes of data, found {len(buf) - header}")
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(folder: str, name: str) -> Optional[str]:
    """``name`` in ``folder``, plain preferred over ``.gz``."""
    for candidate in (name, name + ".gz"):
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    return None


def _find_idx_folder(path: str, subdirs: tuple[str, ...]) -> Optional[str]:
    """The first of ``path`` and its ``subdirs`` holding any idx file of the set."""
    for sub in ("", *subdirs):
        folder = os.path.join(path, sub) if sub else path
        if any(_idx_file(folder, name) for name in _IDX_FILES.values()):
            return folder
    return None


class _IdxSource(ArraySource):
    """Shared MNIST-style loader; subclasses name torchvision's sub-folder."""

    subdirs: tuple[str, ...] = ("raw",)
    title = "MNIST"
    small_options: ClassVar[Mapping[str, Any]] = {}  # with the ``path`` of data a suite makes

    def load_raw(self) -> RawData:
        path = _require_dir(self.opts.path)
        folder = _find_idx_folder(path, self.subdirs)
        if folder is None:
            where = ", ".join(f"{s}/" for s in self.subdirs)
            raise DataError(
                f"{path}: no {self.title} idx files found; expected {', '.join(_IDX_FILES.values())} "
                f"(optionally .gz) in it or in {where}"
            )
        arrays: dict[str, np.ndarray] = {}
        for key, name in _IDX_FILES.items():
            file = _idx_file(folder, name)
            if file is None:
                raise DataError(f"{os.path.join(folder, name)}: missing {self.title} file (plain or .gz)")
            arrays[key] = read_idx(file, 3 if key.endswith("x") else 1)
        for split in ("train", "test"):
            n_x, n_y = len(arrays[f"{split}_x"]), len(arrays[f"{split}_y"])
            if n_x != n_y:
                raise DataError(
                    f"{folder}: {_IDX_FILES[split + '_x']} has {n_x} images "
                    f"but {_IDX_FILES[split + '_y']} has {n_y} labels"
                )
        return RawData(
            arrays["train_x"][:, None], arrays["train_y"].astype(np.int64),
            arrays["test_x"][:, None], arrays["test_y"].astype(np.int64),
            num_classes=10, scale=255.0,
        )


@register_dataset("mnist")
class Mnist(_IdxSource):
    """MNIST from the four idx files (plain or .gz) in ``path``, ``path/raw`` or ``path/MNIST/raw``.

    Image size comes from the idx header; the t10k files become the test split.
    """

    subdirs = ("raw", os.path.join("MNIST", "raw"))
    title = "MNIST"


@register_dataset("fashion_mnist")
class FashionMnist(_IdxSource):
    """Fashion-MNIST: same idx files as MNIST, in ``path``, ``path/raw`` or ``path/FashionMNIST/raw``."""

    subdirs = ("raw", os.path.join("FashionMNIST", "raw"))
    title = "Fashion-MNIST"
