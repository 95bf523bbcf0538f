"""Which format a path holds (judged by the files present, nothing decoded) and the ``dataset``
section for ``--dataset VALUE``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from archsearch.data.files.cifar import _CIFAR10_LAYOUTS, _CIFAR100_LAYOUTS, _find_cifar
from archsearch.data.files.idx import FashionMnist, Mnist, _find_idx_folder
from archsearch.data.files.image_folder import _class_dirs, _has_image, _split_folders
from archsearch.errors import DataError

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
