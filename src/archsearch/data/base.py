"""Datasets: load raw arrays, validate them, split them with a seeded generator, normalise.

A dataset source is registered by name and turns its options (a path, split fractions)
into :class:`Splits`: train/valid/test tensors in (N, C, H, W) float32 with int64 labels.
Every source shares :func:`make_splits`, so every format gets the same checks.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional

import numpy as np
import torch

from archsearch.core import Task
from archsearch.errors import ConfigError, DataError
from archsearch.options import Configurable, Options, invalid, option
from archsearch.registry import Registry


@dataclass
class Split:
    x: torch.Tensor  # (N, C, H, W) float32, normalised; (N, T) int64 token ids for text
    y: torch.Tensor  # (N,) int64; (N, T) int64 next-token targets for text

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Splits:
    train: Split
    valid: Split
    test: Split
    num_classes: int
    name: str = "arrays"
    kind: str = "classification"  # the Task kind: "language_model" for token windows (data/text.py)
    # what turns a raw input (as the source read it) into ``x`` (see :func:`image_preprocessing`), and
    # the class names when the data has them (image_folder's folder names); the found model keeps both
    preprocess: Optional[dict[str, Any]] = None
    class_names: Optional[tuple[str, ...]] = None

    @property
    def task(self) -> Task:
        return Task(tuple(self.train.x.shape[1:]), self.num_classes, self.kind)


@dataclass
class RawData:
    """What a format loader returns: arrays in (N, C, H, W) layout, uint8 or float.

    ``x_test``/``y_test`` are given when the format ships its own test set.
    """

    x: np.ndarray
    y: np.ndarray
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    num_classes: Optional[int] = None
    scale: Optional[float] = None  # divide by this before normalising (255 for uint8 images)
    class_names: Optional[tuple[str, ...]] = None  # name of each label, where the format has them


DATASETS: Registry["DatasetSource"] = Registry("dataset", package="archsearch.data", group="archsearch.datasets")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return DATASETS.names()


class DatasetSource(Configurable, ABC):
    """A named data source: its options (a path and what the format needs) become :class:`Splits`.

    What the rest of archsearch calls, and the rules a source keeps:

    * construction (``DATASETS.create(name, **options)``) checks the options only, never the data:
      a bad option is a :class:`ConfigError` naming ``dataset.OPTION``; a source whose
      ``needs_path`` is true refuses a missing ``path``;
    * :meth:`load` reads the data and returns the splits; the same seed gives the same splits;
    * :meth:`raw_test` returns the test split as the source reads it, before any scaling (what a
      user's own inputs to the found model look like: ``archsearch predict`` and the deployment
      checks feed it to the saved preprocessing);
    * anything wrong with the data itself is one :class:`DataError` line naming the file or folder.

    Image-like formats derive from :class:`ArraySource`, which implements both from ``load_raw``.
    """

    @dataclass(frozen=True)
    class Options(Options):
        path: Optional[str] = option(None, "the data file or folder (also: --dataset NAME:PATH)")

    needs_path: ClassVar[bool] = True  # a missing ``path`` is refused
    path_is: ClassVar[str] = "a path"  # how the refusal names it ("a folder" for a folder of files)
    opts: Options

    def __init__(self, **options: Any) -> None:
        self.configure(options)
        if self.needs_path and not self.opts.path:
            raise ConfigError(f"dataset {self.name!r} needs {self.path_is} "
                              f"(dataset.path or --dataset {self.name}:PATH)")

    @abstractmethod
    def load(self, seed: int = 0) -> Splits:
        """The train/valid/test splits (read from the data now, not at construction)."""

    @abstractmethod
    def raw_test(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, labels)`` of the test split before scaling and normalising, as :meth:`load`
        splits them with the same ``seed``."""


class ArraySource(DatasetSource):
    """A source of (N, C, H, W) images and integer labels. Subclasses implement :meth:`load_raw`;
    validating, splitting (a seeded permutation, unless the format ships its own test set) and
    normalising are shared (:func:`make_splits`), so every format gets the same checks."""

    @dataclass(frozen=True)
    class Options(DatasetSource.Options):
        valid_fraction: float = option(0.2, "share of the data held out for validation", above=0, below=1)
        test_fraction: float = option(0.2, "share held out for testing (unless the format ships a test set)",
                                      above=0, below=1)

        def __post_init__(self) -> None:
            if self.valid_fraction + self.test_fraction >= 1.0:
                raise invalid("valid_fraction", f"+ dataset.test_fraction must be below 1, "
                                                f"got {self.valid_fraction:g} + {self.test_fraction:g}")

    opts: Options

    @abstractmethod
    def load_raw(self) -> RawData:
        """The arrays as the files hold them (see :class:`RawData`)."""

    def load(self, seed: int = 0) -> Splits:
        raw = self.load_raw()
        return make_splits(raw, self.opts.valid_fraction, self.opts.test_fraction, seed, name=self.name)

    def raw_test(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        raw = self.load_raw()
        if raw.x_test is not None:
            return np.asarray(raw.x_test), np.asarray(raw.y_test).astype(np.int64)
        _, _, test = split_indices(len(raw.y), False, self.opts.valid_fraction, self.opts.test_fraction, seed,
                                   self.name)
        return np.asarray(raw.x)[test], np.asarray(raw.y)[test].astype(np.int64)


def _check_arrays(x: np.ndarray, y: np.ndarray, what: str, num_classes: Optional[int]) -> None:
    if x.ndim != 4:
        raise DataError(f"{what}: images must have shape (N, C, H, W), got {tuple(x.shape)}")
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be one-dimensional, got shape {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{what}: {x.shape[0]} images but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise DataError(f"{what}: no samples")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{what}: images contain NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all():
            return
        raise DataError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0, found {int(y.min())}")
    if num_classes is not None and y.max() >= num_classes:
        raise DataError(f"{what}: label {int(y.max())} out of range for {num_classes} classes")


def make_splits(
    raw: RawData,
    valid_fraction: float,
    test_fraction: float,
    seed: int,
    name: str = "arrays",
) -> Splits:
    """Validate, split (stratification-free, seeded permutation) and normalise per channel."""
    x, y = np.asarray(raw.x), np.asarray(raw.y)
    _check_arrays(x, y, name, raw.num_classes)
    y = y.astype(np.int64)
    num_classes = raw.num_classes or int(y.max()) + 1
    if raw.x_test is not None:
        xt, yt = np.asarray(raw.x_test), np.asarray(raw.y_test)
        _check_arrays(xt, yt, f"{name} (test set)", num_classes)
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(f"{name}: test images have shape {xt.shape[1:]}, train images {x.shape[1:]}")
        yt = yt.astype(np.int64)
        if int(yt.max()) >= num_classes:
            raise DataError(f"{name}: test label {int(yt.max())} out of range for {num_classes} classes")
    if num_classes < 2:
        raise DataError(f"{name}: need at least 2 classes, found {num_classes}")

    train_idx, valid_idx, test_idx = split_indices(len(y), raw.x_test is not None, valid_fraction, test_fraction,
                                                   seed, name)
    if raw.x_test is None:
        xt, yt = x[test_idx], y[test_idx]

    scale = raw.scale or (255.0 if x.dtype == np.uint8 else 1.0)
    xtr = torch.from_numpy(np.ascontiguousarray(x[train_idx], dtype=np.float32)) / scale
    mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = xtr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

    def prep(xs: np.ndarray, ys: np.ndarray) -> Split:
        t = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32)) / scale
        return Split(((t - mean) / std).contiguous(), torch.from_numpy(np.ascontiguousarray(ys)))

    return Splits(
        train=prep(x[train_idx], y[train_idx]),
        valid=prep(x[valid_idx], y[valid_idx]),
        test=prep(xt, yt),
        num_classes=num_classes,
        name=name,
        preprocess=image_preprocessing(x, scale, mean, std),
        class_names=tuple(raw.class_names) if raw.class_names else None,
    )


def split_indices(n: int, own_test: bool, valid_fraction: float, test_fraction: float, seed: int,
                  name: str = "arrays") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, valid, test)`` indices of ``n`` samples by one seeded permutation (test empty when the
    format ships its own test set). Shared by :func:`make_splits` and ``archsearch predict``, which
    finds a run's raw test images again with it."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid = max(1, int(round(n * valid_fraction)))
    if own_test:
        valid_idx, train_idx, test_idx = order[:n_valid], order[n_valid:], order[:0]
    else:
        n_test = max(1, int(round(n * test_fraction)))
        test_idx, valid_idx, train_idx = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    if len(train_idx) < 2:
        raise DataError(f"{name}: only {n} samples, too few to split into train/valid/test")
    return train_idx, valid_idx, test_idx


def image_preprocessing(x: np.ndarray, scale: float, mean: torch.Tensor, std: torch.Tensor) -> dict[str, Any]:
    """The record of what :func:`make_splits` does to raw images: divide by ``scale``, then subtract
    the training split's per-channel ``mean`` and divide by its ``std`` (float32, as stored).
    ``input_shape`` and ``dtype`` are the raw images' as the source read them."""
    return {"kind": "image", "scale": float(scale), "mean": mean.flatten().tolist(), "std": std.flatten().tolist(),
            "input_shape": list(x.shape[1:]), "dtype": str(x.dtype)}


def from_arrays(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    x_test: np.ndarray | torch.Tensor | None = None,
    y_test: np.ndarray | torch.Tensor | None = None,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    num_classes: Optional[int] = None,
) -> Splits:
    """Python API: images as (N, C, H, W) or (N, H, W) arrays and integer labels."""

    def arr(a: Any) -> np.ndarray:
        out: np.ndarray = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        return out[:, None] if out.ndim == 3 else out

    raw = RawData(
        arr(x), np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y),
        None if x_test is None else arr(x_test),
        None if y_test is None else np.asarray(y_test.cpu() if isinstance(y_test, torch.Tensor) else y_test),
        num_classes,
    )
    return make_splits(raw, valid_fraction, test_fraction, seed)


def from_torch_dataset(dataset: torch.utils.data.Dataset[Any], **kwargs: Any) -> Splits:
    """Python API: any map-style dataset of (image tensor, int label) pairs."""
    xs, ys = [], []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        img, label = dataset[i]
        xs.append(np.asarray(img, dtype=np.float32))
        ys.append(int(label))
    if not xs:
        raise DataError("dataset is empty")
    return from_arrays(np.stack(xs), np.asarray(ys), **kwargs)


@register_dataset("digits")
class Digits(ArraySource):
    """scikit-learn's 8x8 handwritten digits (1,797 images, ships with scikit-learn; no download)."""

    needs_path = False
    small_options: ClassVar[Mapping[str, Any]] = {}

    def load_raw(self) -> RawData:
        from sklearn.datasets import load_digits

        d = load_digits()
        return RawData(d.images[:, None].astype(np.float32), d.target.astype(np.int64), num_classes=10, scale=16.0)


@register_dataset("arrays")
class NpzArrays(ArraySource):
    """An ``.npz`` file with ``x`` (N, C, H, W) or (N, H, W) and ``y``; optional ``x_test``/``y_test``.

    Loaded with ``allow_pickle=False``: object arrays are refused, never unpickled.
    """

    small_options: ClassVar[Mapping[str, Any]] = {}  # with the ``path`` of data a suite makes

    def load_raw(self) -> RawData:
        import os

        path = self.opts.path
        assert path is not None  # needs_path
        if not os.path.isfile(path):
            raise DataError(f"data file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                files = set(f.files)
                if not {"x", "y"} <= files:
                    raise DataError(f"{path}: an .npz dataset needs arrays 'x' and 'y', found {sorted(files)}")
                x, y = np.asarray(f["x"]), np.asarray(f["y"])
                xt = np.asarray(f["x_test"]) if "x_test" in files else None
                yt = np.asarray(f["y_test"]) if "y_test" in files else None
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read {path} as .npz: {_one_line(exc)}") from None
        x = x[:, None] if x.ndim == 3 else x
        if xt is not None and xt.ndim == 3:
            xt = xt[:, None]
        return RawData(x, y, xt, yt)


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (some library messages span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def dataset_key(spec: dict[str, Any], seed: int) -> str:
    return json.dumps({"spec": spec, "seed": seed}, sort_keys=True, default=str)


_CACHE: dict[str, Splits] = {}


def load_splits(spec: dict[str, Any], seed: int = 0) -> Splits:
    """Load a dataset from ``{"name": ..., **options}``, cached per process (workers load once)."""
    key = dataset_key(spec, seed)
    if key not in _CACHE:
        options = {k: v for k, v in spec.items() if k != "name"}
        source = DATASETS.create(spec.get("name", "digits"), **options)
        _CACHE.clear()  # keep at most one dataset in memory per process
        _CACHE[key] = source.load(seed)
    return _CACHE[key]
