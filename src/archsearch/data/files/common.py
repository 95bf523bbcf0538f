"""What every file format shares: one-line messages and the data folder check."""

from __future__ import annotations

import os
from typing import Optional

from archsearch.errors import DataError


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (some library messages span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _require_dir(path: Optional[str]) -> str:
    """The expanded folder path, or a DataError if it is missing or is a file."""
    assert path is not None  # DatasetSource.__init__ refuses a missing path (needs_path)
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DataError(f"data folder not found: {path}")
    if not os.path.isdir(path):
        raise DataError(f"{path}: expected a data folder, got a file")
    return path
