"""A folder of class sub-folders of images (optionally split into train/ and test/)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, ClassVar, Mapping, Optional

import numpy as np

from archsearch.data.base import ArraySource, RawData, register_dataset
from archsearch.data.files.common import _one_line, _require_dir
from archsearch.errors import DataError

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
class ImageFolder(ArraySource):
    """One sub-folder per class of png/jpg/jpeg/bmp/gif/webp images (sorted names -> labels 0..K-1).

    With ``train/`` and ``test/`` sub-folders (same class names) those are the train and test sets.
    Images are converted to RGB, or to grayscale (L) when every image is grayscale. Networks need
    one input size, so images whose size differs from the most common size are resized to it
    with a bilinear filter (ties go to the size seen first in sorted order).
    """

    small_options: ClassVar[Mapping[str, Any]] = {}  # with the ``path`` of data a suite makes

    def load_raw(self) -> RawData:
        path = _require_dir(self.opts.path)
        split = _split_folders(path)
        if split is None:
            classes, files, labels = _list_images(path)
            n_train = len(files)
        else:
            classes, files, labels = _list_images(split[0])
            test_classes, test_files, test_labels = _list_images(split[1])
            if test_classes != classes:
                diff = sorted(set(classes) ^ set(test_classes))
                raise DataError(f"{path}: train/ and test/ must have the same class folders; "
                                f"differing: {', '.join(diff)}")
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
