"""Input checks shared by every space (options are checked by their declarations,
:mod:`archsearch.options`): a task a space cannot build for, an index vector out of range."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError


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


# -- rules for option(check=...) that several spaces share ------------------------------


def odd_kernels(values: Sequence[int]) -> Optional[str]:
    """Kernel sizes must be odd: the convolutions keep the map size with same padding."""
    return "must be odd (same padding)" if any(v % 2 == 0 for v in values) else None


def not_only_none(values: Sequence[str]) -> Optional[str]:
    """An op list must offer something besides ``none`` (an edge that is never anything)."""
    return "needs an op other than 'none'" if all(op == "none" for op in values) else None

