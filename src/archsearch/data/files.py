"""Dataset sources read from local files: CIFAR-10/100, MNIST-style idx files, image folders.

Nothing is downloaded: each source reads the files exactly as the official archives (or
torchvision) unpack them. Every problem with a file becomes a one-line :class:`DataError`
that names the file, so a user can fix the data without reading a traceback.

CIFAR's "python version" batches are pickles. They are read with a restricted unpickler
that can rebuild plain numpy arrays and nothing else, because ``pickle.load`` on a file a
user downloaded from anywhere would run whatever code the file names.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import IO, Any, Callable, Optional

import numpy as np

from archsearch.data.base import DatasetSource, RawData, register_dataset
from archsearch.errors import DataError

__all__ = [
    "Cifar10",
    "Cifar100",
    "FashionMnist",
    "ImageFolder",
    "Mnist",
    "IMAGE_EXTENSIONS",
    "dataset_spec",
    "detect_format",
    "read_idx",
    "safe_unpickle",
]


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (some library messages span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _require_dir(path: Optional[str]) -> str:
    """The expanded folder path, or a DataError if it is missing or is a file."""
    assert path is not None  # DatasetSource.__init__ enforces a path
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DataError(f"data folder not found: {path}")
    if not os.path.isdir(path):
        raise DataError(f"{path}: expected a data folder, got a file")
    return path


# --------------------------------------------------------------------------- safe unpickling


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for bytes, limited to latin-1.

    Other codecs (zlib, base64...) have no place in a data batch, so they are refused.
    """
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The globals numpy's pickles need to rebuild a plain ndarray, under old and new module names."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):  # pickle protocol 5
            table[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler whose only reachable globals are the numpy array constructors."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: refusing to unpickle global {module}.{name} "
                "(only numpy arrays are allowed in a data batch)"
            ) from None


def safe_unpickle(path: str) -> Any:
    """Load a pickle that may hold only dicts, lists, numbers, bytes, str and numpy arrays."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... from a bad file
        raise DataError(f"{path}: not a readable pickle ({_one_line(exc)})") from exc


# --------------------------------------------------------------------------- CIFAR

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


class _CifarSource(DatasetSource):
    """Shared CIFAR loader; subclasses name the layouts, the label key and the class count."""

    layouts: tuple[_CifarLayout, ...] = ()
    label_key = "labels"
    label_bytes = 1
    num_classes = 10
    title = "CIFAR"

    def load_raw(self) -> RawData:
        path = _require_dir(self.path)
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


# --------------------------------------------------------------------------- MNIST idx

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
            f"{file}: bad idx magic number 0x{buf[:4].hex()} (expected 0x000008{ndim:02x}: uint8 data, {ndim} dimensions)"
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


class _IdxSource(DatasetSource):
    """Shared MNIST-style loader; subclasses name torchvision's sub-folder."""

    subdirs: tuple[str, ...] = ("raw",)
    title = "MNIST"

    def load_raw(self) -> RawData:
        path = _require_dir(self.path)
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
                    f"{folder}: {_IDX_FILES[split + '_x']} has {n_x} images but {_IDX_FILES[split + '_y']} has {n_y} labels"
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


# --------------------------------------------------------------------------- image folders

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
_GRAY_MODES = frozenset({"1", "L", "LA"})


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _entries(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as exc:
        raise DataError(f"{folder}: cannot list folder ({_one_line(exc)})") from exc


def _class_dirs(folder: str) -> list[str]:
    """Sorted names of the visible sub-folders: the class names, labels 0..K-1 in this order."""
    return sorted(e.name for e in _entries(folder) if e.is_dir() and not e.name.startswith("."))


def _has_image(folder: str) -> bool:
    return any(e.is_file() and _is_image(e.name) for e in _entries(folder))


def _split_folders(path: str) -> Optional[tuple[str, str]]:
    """``(path/train, path/test)`` when both exist and hold class sub-folders, else None."""
    train, test = os.path.join(path, "train"), os.path.join(path, "test")
    if os.path.isdir(train) and os.path.isdir(test) and _class_dirs(train) and _class_dirs(test):
        return train, test
    return None


def _list_images(folder: str) -> tuple[list[str], list[str], list[int]]:
    """Class names, image files and labels of one ``folder/<class>/<image>`` tree."""
    classes = _class_dirs(folder)
    if not classes:
        raise DataError(f"{folder}: no class sub-folders (expected {folder}/<class>/<image>)")
    files: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        cls_dir = os.path.join(folder, cls)
        names = sorted(e.name for e in _entries(cls_dir) if e.is_file() and _is_image(e.name))
        if not names:
            hint = " (it holds sub-folders, not images)" if _class_dirs(cls_dir) else ""
            exts = "/".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
            raise DataError(f"{cls_dir}: class folder has no {exts} images{hint}")
        files.extend(os.path.join(cls_dir, n) for n in names)
        labels.extend([label] * len(names))
    return classes, files, labels


def _probe(file: str) -> tuple[tuple[int, int], str]:
    """Size and mode from the image header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            return img.size, img.mode
    except Exception as exc:  # UnidentifiedImageError, OSError, DecompressionBombError
        raise DataError(f"{file}: unreadable image ({_one_line(exc)})") from exc


def _decode(file: str, mode: str, size: tuple[int, int]) -> np.ndarray:
    """The image as uint8 (H, W, C) in ``mode``, resized bilinearly to ``size`` when it differs."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            img = img.convert(mode)
            if img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # truncated or corrupt pixel data shows up only here
        raise DataError(f"{file}: unreadable image ({_one_line(exc)})") from exc
    return arr[:, :, None] if arr.ndim == 2 else arr


@register_dataset("image_folder")
class ImageFolder(DatasetSource):
    """One sub-folder per class of png/jpg/jpeg/bmp/gif/webp images (sorted names -> labels 0..K-1).

    With ``train/`` and ``test/`` sub-folders (same class names) those are the train and test sets.
    Images are converted to RGB, or to grayscale (L) when every image is grayscale. Networks need
    one input size, so images whose size differs from the most common size are resized to it
    with a bilinear filter (ties go to the size seen first in sorted order).
    """

    def load_raw(self) -> RawData:
        path = _require_dir(self.path)
        split = _split_folders(path)
        if split is None:
            classes, files, labels = _list_images(path)
            n_train = len(files)
        else:
            classes, files, labels = _list_images(split[0])
            test_classes, test_files, test_labels = _list_images(split[1])
            if test_classes != classes:
                diff = sorted(set(classes) ^ set(test_classes))
                raise DataError(f"{path}: train/ and test/ must have the same class folders; differing: {', '.join(diff)}")
            n_train = len(files)
            files, labels = files + test_files, labels + test_labels

        probes = [_probe(f) for f in files]
        mode = "L" if all(m in _GRAY_MODES for _, m in probes) else "RGB"
        size = Counter(s for s, _ in probes).most_common(1)[0][0]  # (width, height)
        channels = 1 if mode == "L" else 3
        x = np.empty((len(files), size[1], size[0], channels), dtype=np.uint8)
        for i, f in enumerate(files):
            x[i] = _decode(f, mode, size)
        x = x.transpose(0, 3, 1, 2)
        y = np.asarray(labels, dtype=np.int64)
        if split is None:
            return RawData(x, y, num_classes=len(classes), scale=255.0, class_names=tuple(classes))
        return RawData(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=len(classes), scale=255.0,
                       class_names=tuple(classes))


# --------------------------------------------------------------------------- detection

_EXPECTED = (
    "expected CIFAR-10/100 batches (python or binary version), MNIST idx files, "
    "a folder of class sub-folders with images, a folder of train/valid/test .txt files, or an .npz file"
)


def _looks_like_text(path: str) -> bool:
    from archsearch.data.text import find_split_files  # text registers itself; imported late to keep this module light

    try:
        find_split_files(path)
    except DataError:
        return False
    return True


def _looks_like_image_folder(path: str) -> bool:
    split = _split_folders(path)
    root = split[0] if split else path
    return any(_has_image(os.path.join(root, c)) for c in _class_dirs(root))


def detect_format(path: str) -> str:
    """The registered dataset name for ``path``, judged by which files exist (nothing is decoded).

    Idx files are reported as ``mnist`` since Fashion-MNIST uses the same names, except under
    torchvision's ``FashionMNIST/raw`` folder, whose name settles it.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DataError(f"cannot tell the data format of {path}: it does not exist")
    if os.path.isfile(path):
        if path.lower().endswith(".npz"):
            return "arrays"
        raise DataError(f"cannot tell the data format of {path}: {_EXPECTED}")
    checks: tuple[tuple[str, Callable[[str], bool]], ...] = (
        ("cifar10", lambda p: _find_cifar(p, _CIFAR10_LAYOUTS) is not None),
        ("cifar100", lambda p: _find_cifar(p, _CIFAR100_LAYOUTS) is not None),
        ("mnist", lambda p: _find_idx_folder(p, Mnist.subdirs) is not None),
        ("fashion_mnist", lambda p: _find_idx_folder(p, FashionMnist.subdirs) is not None),
        ("text", _looks_like_text),
        ("image_folder", _looks_like_image_folder),
    )
    for name, matches in checks:
        if matches(path):
            return name
    raise DataError(f"cannot tell the data format of {path}: {_EXPECTED}")


def dataset_spec(value: str) -> dict[str, Any]:
    """The ``dataset`` config section for ``--dataset VALUE``: a registered name, ``NAME:PATH``, or a
    path whose format is detected."""
    from archsearch.data.base import DATASETS
    from archsearch.errors import ConfigError

    if value in DATASETS:
        return {"name": value}
    name, sep, path = value.partition(":")
    if sep and name in DATASETS:
        return {"name": name, "path": path}
    if os.path.exists(value):
        return {"name": detect_format(value), "path": value}
    raise ConfigError(f"unknown dataset {value!r} (valid: {', '.join(DATASETS.names())}; "
                      "or a path to a data folder or .npz file, or NAME:PATH)")
