"""Option and input checks shared by every space: one wording for every bad value.

Each check raises :class:`ConfigError` naming ``space.KEY``, the value and what is valid.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError


def check_int(key: str, value: Any, lo: int = 1, hi: int = 4096) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"space.{key} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"space.{key} must be true or false, got {value!r}")
    return value


def check_prob(key: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"space.{key} must be a probability in [0, 1), got {value!r}")
    return float(value)


def check_names(key: str, values: Any, valid: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of distinct names from ``valid``."""
    listing = ", ".join(valid)
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"space.{key} must be a non-empty list (valid: {listing}), got {values!r}")
    for v in values:
        if v not in valid:
            raise ConfigError(f"space.{key}: unknown {v!r} (valid: {listing})")
    if len(set(values)) != len(values):
        raise ConfigError(f"space.{key} lists a value twice: {list(values)}")
    return tuple(values)


def check_ints(key: str, values: Any, lo: int = 1, hi: int = 4096) -> tuple[int, ...]:
    """A non-empty list of distinct integers in ``lo..hi``."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values or any(
            not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi for v in values):
        raise ConfigError(f"space.{key} must be a non-empty list of integers in {lo}..{hi}, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"space.{key} lists a value twice: {list(values)}")
    return tuple(values)


IMAGE_SHAPE_RULE = "needs input shape (C, H, W)"  # the words every image space's task error contains


def require_image(task: Task, space: str) -> tuple[int, int, int]:
    """(C, H, W) of an image task; other tasks are a clear error, not a conv2d traceback."""
    shape = tuple(task.input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d < 1 for d in shape):
        raise ConfigError(f"space {space!r} builds image networks and {IMAGE_SHAPE_RULE}, got {shape}")
    return shape  # type: ignore[return-value]


def check_indices(indices: Sequence[int], counts: np.ndarray, names: Sequence[str]) -> None:
    """Raise ParseError unless ``indices`` has one in-range choice per decision."""
    if len(indices) != len(counts):
        raise ParseError(f"expected {len(counts)} decisions, got {len(indices)}")
    for pos, (v, n) in enumerate(zip(indices, counts)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
            raise ParseError(f"decision {names[pos]}: index {v!r} is out of range 0..{int(n) - 1}")
