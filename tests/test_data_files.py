"""Local-file dataset sources: CIFAR (python + binary), idx (MNIST), image folders, detection.

Every dataset here is a tiny synthetic one written by the test in the real on-disk layout.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import archsearch.data  # noqa: F401  (registers the sources)
from archsearch.data import files
from archsearch.data.base import DATASETS, RawData, Splits
from archsearch.errors import DataError

PIX = 3 * 32 * 32


def load(name: str, path: Path, seed: int = 0, valid: float = 0.25, test: float = 0.2) -> Splits:
    return DATASETS.create(name, path=str(path), valid_fraction=valid, test_fraction=test).load(seed=seed)


def raw(name: str, path: Path) -> RawData:
    return DATASETS.create(name, path=str(path)).load_raw()


def data_error(name: str, path: Path) -> str:
    with pytest.raises(DataError) as info:
        raw(name, path)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def cifar_images(labels: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 rows whose channel c holds ``label + 40 * c`` (checks the CHW reshape)."""
    x = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    for c in range(3):
        x[:, c] = (labels + 40 * c)[:, None, None]
    return x.reshape(len(labels), PIX)


# --------------------------------------------------------------------------- CIFAR writers


def write_cifar10_py(folder: Path, n: int = 4, n_test: int = 6, protocol: int = 2) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(1, 6):
        y = rng.integers(0, 10, n)
        batch = {b"batch_label": b"training batch", b"labels": y.tolist(), b"data": cifar_images(y),
                 b"filenames": [b"f.png"] * n}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=protocol))
    y_test = np.arange(n_test) % 10
    test = {b"batch_label": b"testing batch", b"labels": y_test.tolist(), b"data": cifar_images(y_test)}
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=protocol))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}, protocol=2))
    return y_test


def write_cifar10_bin(folder: Path, n: int = 4, n_test: int = 5) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)

    def records(y: np.ndarray) -> bytes:
        return np.concatenate([y.astype(np.uint8)[:, None], cifar_images(y)], axis=1).tobytes()

    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(records(np.arange(i, i + n) % 10))
    y_test = (np.arange(n_test) * 3) % 10
    (folder / "test_batch.bin").write_bytes(records(y_test))
    return y_test


def write_cifar100_py(folder: Path, n: int = 20, n_test: int = 7) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    y = np.arange(n) * 5 % 100
    (folder / "train").write_bytes(pickle.dumps(
        {b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist(), b"data": cifar_images(y)}, protocol=2))
    y_test = np.arange(n_test) + 90
    (folder / "test").write_bytes(pickle.dumps(
        {b"fine_labels": y_test.tolist(), b"coarse_labels": [0] * n_test, b"data": cifar_images(y_test)}, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": []}, protocol=2))
    return y_test


def write_cifar100_bin(folder: Path, n: int = 20, n_test: int = 6) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)

    def records(fine: np.ndarray) -> bytes:
        coarse = (fine // 5 + 1).astype(np.uint8)  # differs from fine: catches reading the wrong byte
        return np.concatenate([coarse[:, None], fine.astype(np.uint8)[:, None], cifar_images(fine)], axis=1).tobytes()

    (folder / "train.bin").write_bytes(records(np.arange(n) * 4 % 100))
    y_test = np.arange(n_test) + 50
    (folder / "test.bin").write_bytes(records(y_test))
    return y_test


# --------------------------------------------------------------------------- CIFAR tests


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_python_from_parent_folder(tmp_path: Path, protocol: int) -> None:
    y_test = write_cifar10_py(tmp_path / "cifar-10-batches-py", protocol=protocol)
    s = load("cifar10", tmp_path)
    assert s.num_classes == 10 and s.name == "cifar10"
    assert s.train.x.shape[1:] == (3, 32, 32) and s.train.x.dtype == torch.float32
    assert len(s.train) + len(s.valid) == 20 and len(s.valid) == 5
    assert s.test.y.tolist() == y_test.tolist()  # the archive's test batch, in order
    r = raw("cifar10", tmp_path)
    assert r.x.dtype == np.uint8 and r.x.shape == (20, 3, 32, 32)
    for c in range(3):  # channel-first reshape of the 3072-byte rows
        assert (r.x[:, c] == (r.y + 40 * c)[:, None, None]).all()


def test_cifar10_split_is_deterministic_by_seed(tmp_path: Path) -> None:
    write_cifar10_py(tmp_path, n=8)
    a, b, c = load("cifar10", tmp_path, seed=3), load("cifar10", tmp_path, seed=3), load("cifar10", tmp_path, seed=4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.valid.y, b.valid.y)
    assert not (torch.equal(a.train.y, c.train.y) and torch.equal(a.valid.y, c.valid.y))


@pytest.mark.parametrize("parent", [False, True])
def test_cifar10_binary(tmp_path: Path, parent: bool) -> None:
    folder = tmp_path / "cifar-10-batches-bin" if parent else tmp_path
    y_test = write_cifar10_bin(folder)
    r = raw("cifar10", tmp_path)
    assert r.x.shape == (20, 3, 32, 32) and r.x.dtype == np.uint8 and r.num_classes == 10
    assert r.y.tolist() == [v % 10 for i in range(1, 6) for v in range(i, i + 4)]
    assert (r.x[:, 2] == (r.y + 80)[:, None, None]).all()
    assert load("cifar10", tmp_path).test.y.tolist() == y_test.tolist()


def test_cifar100_python_uses_fine_labels(tmp_path: Path) -> None:
    y_test = write_cifar100_py(tmp_path / "cifar-100-python")
    s = load("cifar100", tmp_path)
    assert s.num_classes == 100 and s.test.y.tolist() == y_test.tolist()
    r = raw("cifar100", tmp_path / "cifar-100-python")
    assert r.y.tolist() == (np.arange(20) * 5 % 100).tolist() and r.x.shape == (20, 3, 32, 32)


def test_cifar100_binary_uses_fine_label_byte(tmp_path: Path) -> None:
    y_test = write_cifar100_bin(tmp_path / "cifar-100-binary")
    r = raw("cifar100", tmp_path)
    assert r.y.tolist() == (np.arange(20) * 4 % 100).tolist()
    assert (r.x[:, 0] == r.y[:, None, None]).all()
    assert r.y_test is not None and r.y_test.tolist() == y_test.tolist()
    assert load("cifar100", tmp_path).num_classes == 100


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def test_cifar_pickle_with_forbidden_global_is_refused_not_run(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write_cifar10_py(tmp_path)
    sentinel = tmp_path / "hacked"
    evil = {b"labels": [0], b"data": _Evil(f"echo hacked; touch {sentinel}")}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(evil, protocol=2))
    msg = data_error("cifar10", tmp_path)
    assert "data_batch_1" in msg and "system" in msg and "refusing" in msg
    assert not sentinel.exists()
    assert "hacked" not in capfd.readouterr().out


def test_safe_unpickle_refuses_other_codecs_and_builtins(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(pickle.dumps(eval, protocol=2))  # a global outside the numpy allow-list
    with pytest.raises(DataError, match=r"refusing to unpickle global (__builtin__|builtins)\.eval"):
        files.safe_unpickle(str(bad))
    # _codecs.encode is allowed only as protocol 2 uses it (latin-1), not as a general decoder
    codec = tmp_path / "codec"
    codec.write_bytes(b"c_codecs\nencode\n(X\x04\x00\x00\x00eJwDX\x06\x00\x00\x00base64tR.")
    with pytest.raises(DataError, match="refused _codecs.encode with encoding .base64."):
        files.safe_unpickle(str(codec))
    assert files.safe_unpickle(str(_dump(tmp_path, {b"k": np.arange(3, dtype=np.uint8)})))[b"k"].tolist() == [0, 1, 2]


def _dump(tmp_path: Path, obj: Any) -> Path:
    p = tmp_path / "ok.pkl"
    p.write_bytes(pickle.dumps(obj, protocol=2))
    return p


def test_cifar_errors(tmp_path: Path) -> None:
    assert "data folder not found" in data_error("cifar10", tmp_path / "nope")
    assert "no CIFAR-10 files" in data_error("cifar10", tmp_path)
    write_cifar10_py(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    assert "data_batch_3" in data_error("cifar10", tmp_path) and "missing" in data_error("cifar10", tmp_path)
    write_cifar10_py(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle at all")
    assert "test_batch" in data_error("cifar10", tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    assert "(N, 3072)" in data_error("cifar10", tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, PIX), np.uint8), b"labels": [0]}))
    assert "2 images" in data_error("cifar10", tmp_path)
    binary = tmp_path / "bin"
    write_cifar10_bin(binary)
    with open(binary / "data_batch_2.bin", "ab") as f:
        f.write(b"\x00" * 10)
    assert "data_batch_2.bin" in data_error("cifar10", binary) and "record" in data_error("cifar10", binary)
    # a CIFAR-100 folder is not silently read as CIFAR-10
    write_cifar100_py(tmp_path / "c100")
    assert "no CIFAR-10 files" in data_error("cifar10", tmp_path / "c100")


# --------------------------------------------------------------------------- idx (MNIST)


def idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_idx(folder: Path, n: int = 12, n_test: int = 5, rows: int = 7, cols: int = 5, gz: bool = False) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    y, y_test = np.arange(n) % 10, (np.arange(n_test) * 7) % 10
    x = np.broadcast_to(y[:, None, None], (n, rows, cols)).astype(np.uint8)
    x_test = np.arange(n_test * rows * cols).reshape(n_test, rows, cols) % 256
    for name, arr in (("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                      ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test)):
        data = idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return y_test


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", ["", "raw", "MNIST/raw"])
def test_mnist_idx(tmp_path: Path, gz: bool, sub: str) -> None:
    y_test = write_idx(tmp_path / sub if sub else tmp_path, gz=gz)
    r = raw("mnist", tmp_path)
    assert r.x.shape == (12, 1, 7, 5) and r.x.dtype == np.uint8  # size from the header, not 28x28
    assert r.x_test is not None and r.x_test.shape == (5, 1, 7, 5)
    assert r.x_test.ravel().tolist() == (np.arange(5 * 35) % 256).tolist()  # row-major H, W
    assert (r.x[:, 0] == r.y[:, None, None]).all()
    s = load("mnist", tmp_path)
    assert s.num_classes == 10 and s.test.y.tolist() == y_test.tolist()
    assert s.train.x.shape[1:] == (1, 7, 5) and len(s.train) + len(s.valid) == 12


def test_fashion_mnist_in_torchvision_folder(tmp_path: Path) -> None:
    y_test = write_idx(tmp_path / "FashionMNIST" / "raw", gz=True)
    s = load("fashion_mnist", tmp_path)
    assert s.name == "fashion_mnist" and s.test.y.tolist() == y_test.tolist()
    assert "no MNIST idx files" in data_error("mnist", tmp_path)  # MNIST/raw is not FashionMNIST/raw


def test_idx_determinism(tmp_path: Path) -> None:
    write_idx(tmp_path, n=30)
    a, b, c = (load("mnist", tmp_path, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.train.y, b.train.y) and torch.equal(a.valid.x, b.valid.x)
    assert not torch.equal(a.train.y, c.train.y)


def test_idx_errors(tmp_path: Path) -> None:
    assert "data folder not found" in data_error("mnist", tmp_path / "missing")
    assert "no MNIST idx files" in data_error("mnist", tmp_path)
    write_idx(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte"
    good = f.read_bytes()

    f.write_bytes(good[:-3])
    msg = data_error("mnist", tmp_path)
    assert "train-images-idx3-ubyte" in msg and "truncated" in msg

    f.write_bytes(good[:10])
    assert "truncated idx header" in data_error("mnist", tmp_path)

    f.write_bytes(b"\x00\x00\x08\x01" + good[4:])  # labels magic on an images file
    msg = data_error("mnist", tmp_path)
    assert "magic" in msg and "train-images-idx3-ubyte" in msg

    f.write_bytes(b"\x00\x00\x0d\x03" + good[4:])  # float data
    assert "magic" in data_error("mnist", tmp_path)

    f.write_bytes(good + b"\x00")
    assert "trailing" in data_error("mnist", tmp_path)

    f.write_bytes(idx_bytes(np.zeros((11, 7, 5), np.uint8)))  # 11 images, 12 labels
    msg = data_error("mnist", tmp_path)
    assert "11 images" in msg and "12 labels" in msg

    f.unlink()
    assert "missing" in data_error("mnist", tmp_path)

    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    assert "train-images-idx3-ubyte.gz" in data_error("mnist", tmp_path)


def test_read_idx_rejects_bad_labels(tmp_path: Path) -> None:
    write_idx(tmp_path)
    lab = tmp_path / "t10k-labels-idx1-ubyte"
    lab.write_bytes(idx_bytes(np.array([0, 1, 2, 3, 42], np.uint8)))
    with pytest.raises(DataError, match="42"):
        load("mnist", tmp_path)


# --------------------------------------------------------------------------- image folders


def write_images(root: Path, spec: dict[str, list[tuple[str, tuple[int, int], Any, str]]]) -> None:
    """spec: class -> [(file name, (w, h), color, mode)]."""
    for cls, items in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, size, color, mode in items:
            Image.new(mode, size, color).save(root / cls / name)


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_image_folder_rgb_sorted_labels_and_resize(tmp_path: Path) -> None:
    write_images(tmp_path, {
        "zebra": [("a.png", (6, 4), BLUE, "RGB"), ("b.jpg", (6, 4), BLUE, "RGB")],
        "ant": [("1.PNG", (6, 4), RED, "RGB"), ("2.bmp", (3, 9), RED, "RGB"), ("3.gif", (6, 4), 128, "L")],
        "moth": [("x.webp", (6, 4), GREEN, "RGB"), ("y.jpeg", (6, 4), GREEN, "RGB")],
    })
    (tmp_path / "ant" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    (tmp_path / "ant" / ".hidden.png").write_bytes(b"junk")  # ignored: hidden
    r = raw("image_folder", tmp_path)
    assert r.num_classes == 3 and r.x_test is None
    assert r.x.shape == (7, 3, 4, 6) and r.x.dtype == np.uint8  # most common size (6x4), RGB
    assert r.y.tolist() == [0, 0, 0, 1, 1, 2, 2]  # ant, moth, zebra
    assert r.x[1].reshape(3, -1).mean(axis=1).round().tolist() == [255, 0, 0]  # resized 3x9 stays red
    assert (r.x[2] == 128).all()  # grayscale image expanded to RGB
    assert np.abs(r.x[5].reshape(3, -1).mean(axis=1) - np.array(BLUE)).max() < 3  # jpeg is lossy
    s = load("image_folder", tmp_path, valid=0.2, test=0.2)
    assert len(s.train) + len(s.valid) + len(s.test) == 7 and s.train.x.shape[1:] == (3, 4, 6)


def test_image_folder_grayscale_and_determinism(tmp_path: Path) -> None:
    write_images(tmp_path, {c: [(f"{i}.png", (5, 5), 20 * k + i, "L") for i in range(5)] for k, c in enumerate("abc")})
    r = raw("image_folder", tmp_path)
    assert r.x.shape == (15, 1, 5, 5)
    assert r.x[:, 0, 0, 0].tolist() == [20 * k + i for k in range(3) for i in range(5)]
    a, b, c = (load("image_folder", tmp_path, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.test.y, c.test.y) or not torch.equal(a.train.y, c.train.y)


def test_image_folder_train_test(tmp_path: Path) -> None:
    write_images(tmp_path / "train", {"cat": [(f"{i}.png", (4, 4), RED, "RGB") for i in range(4)],
                                      "dog": [(f"{i}.png", (4, 4), GREEN, "RGB") for i in range(4)]})
    write_images(tmp_path / "test", {"cat": [("t.png", (4, 4), RED, "RGB")],
                                     "dog": [("t1.png", (4, 4), GREEN, "RGB"), ("t2.png", (8, 8), GREEN, "RGB")]})
    r = raw("image_folder", tmp_path)
    assert r.x.shape == (8, 3, 4, 4) and r.x_test is not None and r.x_test.shape == (3, 3, 4, 4)
    assert r.num_classes == 2 and r.y_test is not None and r.y_test.tolist() == [0, 1, 1]
    s = load("image_folder", tmp_path)
    assert s.test.y.tolist() == [0, 1, 1] and len(s.train) + len(s.valid) == 8

    write_images(tmp_path / "test", {"cow": [("c.png", (4, 4), BLUE, "RGB")]})
    msg = data_error("image_folder", tmp_path)
    assert "same class folders" in msg and "cow" in msg


def test_image_folder_errors(tmp_path: Path) -> None:
    assert "data folder not found" in data_error("image_folder", tmp_path / "nope")
    assert "no class sub-folders" in data_error("image_folder", tmp_path)
    write_images(tmp_path, {"a": [("1.png", (4, 4), RED, "RGB")], "b": [("1.png", (4, 4), RED, "RGB")]})
    (tmp_path / "c").mkdir()
    msg = data_error("image_folder", tmp_path)
    assert str(tmp_path / "c") in msg and "no " in msg
    (tmp_path / "c" / "bad.png").write_bytes(b"this is not a png")
    msg = data_error("image_folder", tmp_path)
    assert str(tmp_path / "c" / "bad.png") in msg and "unreadable" in msg
    # a header that parses but pixel data that is cut off fails at decode time, still naming the file
    Image.new("RGB", (64, 64)).save(tmp_path / "c" / "bad.png")
    data = (tmp_path / "c" / "bad.png").read_bytes()
    (tmp_path / "c" / "bad.png").write_bytes(data[: len(data) // 2])
    msg = data_error("image_folder", tmp_path)
    assert str(tmp_path / "c" / "bad.png") in msg and "unreadable" in msg


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    for name in ("cifar10", "cifar100", "mnist", "fashion_mnist", "image_folder"):
        assert "expected a data folder" in data_error(name, f)


# --------------------------------------------------------------------------- detect_format


def _npz(tmp_path: Path) -> Path:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((4, 1, 2, 2)), y=np.array([0, 1, 0, 1]))
    return p


@pytest.mark.parametrize("make, sub, expected", [
    (lambda p: write_cifar10_py(p / "cifar-10-batches-py"), "", "cifar10"),
    (lambda p: write_cifar10_py(p), "", "cifar10"),
    (lambda p: write_cifar10_bin(p / "cifar-10-batches-bin"), "", "cifar10"),
    (lambda p: write_cifar10_bin(p), "", "cifar10"),
    (lambda p: write_cifar100_py(p / "cifar-100-python"), "", "cifar100"),
    (lambda p: write_cifar100_py(p), "", "cifar100"),
    (lambda p: write_cifar100_bin(p / "cifar-100-binary"), "", "cifar100"),
    (lambda p: write_idx(p), "", "mnist"),
    (lambda p: write_idx(p / "raw", gz=True), "", "mnist"),
    (lambda p: write_idx(p / "MNIST" / "raw"), "", "mnist"),
    (lambda p: write_idx(p / "FashionMNIST" / "raw"), "", "fashion_mnist"),
    (lambda p: write_images(p, {"a": [("1.png", (2, 2), RED, "RGB")]}), "", "image_folder"),
    (lambda p: write_images(p / "train", {"a": [("1.jpg", (2, 2), RED, "RGB")]})
     or write_images(p / "test", {"a": [("1.jpg", (2, 2), RED, "RGB")]}), "", "image_folder"),
    (_npz, "d.npz", "arrays"),
])
def test_detect_format(tmp_path: Path, make: Any, sub: str, expected: str) -> None:
    make(tmp_path)
    name = files.detect_format(str(tmp_path / sub))
    assert name == expected
    assert archsearch.data.detect_format is files.detect_format
    if expected != "arrays":  # the detected name loads the folder
        assert raw(name, tmp_path).x.ndim == 4


@pytest.mark.parametrize("make", [
    lambda p: None,  # empty folder
    lambda p: (p / "readme.txt").write_text("hi"),
    lambda p: (p / "sub").mkdir() or (p / "sub" / "data.csv").write_text("1,2"),
    lambda p: (p / "train").mkdir() or (p / "test").mkdir(),  # directories, not CIFAR-100 files
])
def test_detect_format_garbage(tmp_path: Path, make: Any) -> None:
    make(tmp_path)
    with pytest.raises(DataError, match="cannot tell the data format") as info:
        files.detect_format(str(tmp_path))
    assert str(tmp_path) in str(info.value) and "expected" in str(info.value) and "\n" not in str(info.value)


def test_detect_format_missing_and_plain_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        files.detect_format(str(tmp_path / "nope"))
    (tmp_path / "x.csv").write_text("1")
    with pytest.raises(DataError, match="cannot tell the data format"):
        files.detect_format(str(tmp_path / "x.csv"))


def test_registered_names() -> None:
    for name in ("cifar10", "cifar100", "mnist", "fashion_mnist", "image_folder"):
        assert name in DATASETS
