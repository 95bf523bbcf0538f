"""CIFAR's python batches are pickles, read with a restricted unpickler that rebuilds plain numpy
arrays and nothing else: ``pickle.load`` on a downloaded file would run whatever code it names.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

import numpy as np

from archsearch.data.files.common import _one_line
from archsearch.errors import DataError


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
