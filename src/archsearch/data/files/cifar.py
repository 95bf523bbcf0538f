"""CIFAR-10/100 from the official archives' folders, python (pickled) or binary version."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional

import numpy as np

from archsearch.data.base import ArraySource, RawData, register_dataset
from archsearch.data.files.common import _one_line, _require_dir
from archsearch.data.files.pickles import safe_unpickle
from archsearch.errors import DataError

_CIFAR_PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class _CifarLayout:
    """One on-disk variant of a CIFAR archive: its folder name and its files."""

    subdir: str
    train: tuple[str, ...]
    test: str
    binary: bool

    def describe(self) -> str:
        train = self.train[0] if len(self.train) == 1 else f"{self.train[0]}..{self.train[-1]}"
        return f"{train} and {self.test}"


_CIFAR10_LAYOUTS = (
    _CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", False),
    _CifarLayout("cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin", True),
)
_CIFAR100_LAYOUTS = (
    _CifarLayout("cifar-100-python", ("train",), "test", False),
    _CifarLayout("cifar-100-binary", ("train.bin",), "test.bin", True),
)


def _find_cifar(path: str, layouts: tuple[_CifarLayout, ...]) -> Optional[tuple[str, _CifarLayout]]:
    """The folder and layout holding any of the layout's files: ``path`` itself or its archive sub-folder."""
    for folder_of in (lambda lay: path, lambda lay: os.path.join(path, lay.subdir)):
        for layout in layouts:
            folder = folder_of(layout)
            if any(os.path.isfile(os.path.join(folder, f)) for f in (*layout.train, layout.test)):
                return folder, layout
    return None


def _cifar_pickle_batch(file: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(file)
    if not isinstance(batch, dict):
        raise DataError(f"{file}: expected a pickled dict, got {type(batch).__name__}")

    def get(key: str) -> Any:
        for k in (key.encode(), key):
            if k in batch:
                return batch[k]
        raise DataError(f"{file}: no {key!r} entry in the batch (found {sorted(map(str, batch))})")

    data, labels = get("data"), get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        desc = f"{data.dtype} array {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{file}: 'data' must be a uint8 array of shape (N, {_CIFAR_PIXELS}), got {desc}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{file}: {label_key!r} must be a list of integers ({_one_line(exc)})") from exc
    if y.shape != (data.shape[0],):
        raise DataError(f"{file}: {data.shape[0]} images but {label_key!r} has shape {y.shape}")
    return data.reshape(-1, 3, 32, 32), y


def _cifar_binary_batch(file: str, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Records of ``label_bytes`` label bytes then 3072 pixel bytes; the last label byte is the class."""
    record = label_bytes + _CIFAR_PIXELS
    try:
        buf = np.fromfile(file, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({_one_line(exc)})") from exc
    if buf.size == 0 or buf.size % record:
        raise DataError(f"{file}: size {buf.size} bytes is not a whole number of {record}-byte CIFAR records")
    rows = buf.reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), rows[:, label_bytes - 1].astype(np.int64)


class _CifarSource(ArraySource):
    """Shared CIFAR loader; subclasses name the layouts, the label key and the class count."""

    layouts: tuple[_CifarLayout, ...] = ()
    label_key = "labels"
    label_bytes = 1
    num_classes = 10
    title = "CIFAR"
    small_options: ClassVar[Mapping[str, Any]] = {}  # with the ``path`` of data a suite makes

    def load_raw(self) -> RawData:
        path = _require_dir(self.opts.path)
        found = _find_cifar(path, self.layouts)
        if found is None:
            wanted = " or ".join(f"{lay.describe()} (in it or in {lay.subdir}/)" for lay in self.layouts)
            raise DataError(f"{path}: no {self.title} files found; expected {wanted}")
        folder, layout = found
        for name in (*layout.train, layout.test):
            if not os.path.isfile(os.path.join(folder, name)):
                raise DataError(f"{os.path.join(folder, name)}: missing {self.title} file (needs {layout.describe()})")

        def read(name: str) -> tuple[np.ndarray, np.ndarray]:
            file = os.path.join(folder, name)
            if layout.binary:
                return _cifar_binary_batch(file, self.label_bytes)
            return _cifar_pickle_batch(file, self.label_key)

        train = [read(name) for name in layout.train]
        x_test, y_test = read(layout.test)
        x, y = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
        return RawData(x, y, x_test, y_test, num_classes=self.num_classes, scale=255.0)


@register_dataset("cifar10")
class Cifar10(_CifarSource):
    """CIFAR-10 from a local folder: python batches (data_batch_1..5, test_batch) or the .bin version.

    ``path`` is that folder or a parent holding ``cifar-10-batches-py``/``cifar-10-batches-bin``;
    the archive's own test batch becomes the test split.
    """

    layouts = _CIFAR10_LAYOUTS
    label_key = "labels"
    label_bytes = 1
    num_classes = 10
    title = "CIFAR-10"


@register_dataset("cifar100")
class Cifar100(_CifarSource):
    """CIFAR-100 (fine labels) from a local folder: python ``train``/``test`` or ``train.bin``/``test.bin``.

    ``path`` is that folder or a parent holding ``cifar-100-python``/``cifar-100-binary``.
    """

    layouts = _CIFAR100_LAYOUTS
    label_key = "fine_labels"
    label_bytes = 2  # coarse then fine
    num_classes = 100
    title = "CIFAR-100"
