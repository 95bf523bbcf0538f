"""Tabular evaluation: look an architecture up in a table of precomputed results (NAS-Bench style).

The table is a CSV file with one row per architecture: a column holding the space's canonical
string form (``str(arch)``, what ``archsearch describe`` prints; for NAS-Bench-201 the
benchmark's own strings) and numeric metric columns. A query returns every numeric column of
the row as metrics; the ``reward`` column is the objective strategies maximise, and an optional
``cost`` column (seconds) is reported as the trial's cost, so time budgets and plots show the
simulated training time. Querying an architecture the table lacks fails the trial with a
message naming the table.

A table was measured at its own, fixed fidelity: a trial's epochs, data fraction and resolution
are ignored (the row is the same), but a fidelity ``width`` or ``depth`` other than 1 asks for
other networks than the table's, so it is a ConfigError (checked when the search is created).

The table is read once per process (cached by path and modification time) and never pickled,
so executors ship only the path.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from archsearch.core import EvalResult, Fidelity, Task, TrialState
from archsearch.data.base import Splits
from archsearch.errors import ConfigError, DataError
from archsearch.estimation.base import Evaluator, TrialError, register_evaluator
from archsearch.spaces.base import Architecture, SearchSpace


@dataclass(frozen=True)
class Table:
    """Rows keyed by architecture string; ``metrics`` are the numeric columns."""

    path: str
    arch_column: str
    columns: tuple[str, ...]  # numeric columns, in file order
    rows: dict[str, dict[str, float]]

    def best(self, column: str) -> tuple[str, dict[str, float]]:
        """The row with the highest ``column`` (first in file order on ties)."""
        key = max(self.rows, key=lambda k: self.rows[k][column])
        return key, self.rows[key]


_CACHE: dict[tuple[str, str, float], Table] = {}


def load_table(path: str, arch_column: str = "arch") -> Table:
    """Read a results table; every bad file is one clear DataError."""
    try:
        stamp = os.path.getmtime(path)
    except OSError:
        raise DataError(f"table not found: {path}") from None
    key = (os.path.abspath(path), arch_column, stamp)
    if key in _CACHE:
        return _CACHE[key]
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise DataError(f"table {path} is empty")
            header = [h.strip() for h in header]
            if arch_column not in header:
                raise DataError(f"table {path} has no column {arch_column!r} (columns: {', '.join(header)})")
            a = header.index(arch_column)
            raw = [row for row in reader if row]
    except UnicodeDecodeError:
        raise DataError(f"table {path} is not a UTF-8 CSV file") from None
    except csv.Error as exc:
        raise DataError(f"table {path} is not a valid CSV file: {exc}") from None
    except IsADirectoryError:
        raise DataError(f"table {path} is a directory, expected a CSV file") from None
    if not raw:
        raise DataError(f"table {path} has a header but no rows")
    numeric = []
    for j, name in enumerate(header):
        if j == a:
            continue
        try:
            [float(r[j]) for r in raw[:50]]
            numeric.append(j)
        except (ValueError, IndexError):
            continue
    rows: dict[str, dict[str, float]] = {}
    for n, r in enumerate(raw, start=2):
        if len(r) != len(header):
            raise DataError(f"table {path} line {n}: {len(r)} fields, the header has {len(header)}")
        try:
            values = {header[j]: float(r[j]) for j in numeric}
        except ValueError as exc:
            raise DataError(f"table {path} line {n}: {exc}") from None
        arch = r[a].strip()
        if arch in rows:
            raise DataError(f"table {path} line {n}: architecture {arch!r} appears twice")
        rows[arch] = values
    table = Table(path, arch_column, tuple(header[j] for j in numeric), rows)
    _CACHE.clear()  # one table per process is the common case; do not keep stale versions
    _CACHE[key] = table
    return table


def _check_scale(fidelity: Fidelity) -> None:
    if fidelity.width != 1.0 or fidelity.depth != 1.0:
        raise ConfigError(f"evaluator 'tabular' looks networks up at the table's own size: fidelity.width and "
                          f"fidelity.depth must be 1 (got {fidelity.width:g} and {fidelity.depth:g})")


@register_evaluator("tabular")
class TabularEvaluator(Evaluator):
    """Answers queries from a table of precomputed results (no training, no data)."""

    trains_models = False

    def __init__(
        self,
        data: Union[dict[str, Any], Splits, None] = None,
        data_seed: int = 0,
        table: Optional[str] = None,
        reward: Optional[str] = None,
        arch_column: str = "arch",
        cost_column: Optional[str] = None,
        input_shape: Sequence[int] = (3, 32, 32),
        classes: int = 10,
    ) -> None:
        if not table or not isinstance(table, str):
            raise ConfigError("evaluator 'tabular' needs a table: --table FILE (or evaluator.table)")
        loaded = load_table(table, arch_column)
        if reward is None:
            raise ConfigError(f"evaluator 'tabular' needs a reward column: --reward COLUMN "
                              f"(valid: {', '.join(loaded.columns)})")
        for key, column in (("reward", reward), ("cost_column", cost_column)):
            if column is not None and column not in loaded.columns:
                raise ConfigError(f"evaluator.{key}: the table has no numeric column {column!r} "
                                  f"(valid: {', '.join(loaded.columns)})")
        if (not isinstance(input_shape, (list, tuple)) or not input_shape
                or any(not isinstance(d, int) or d < 1 for d in input_shape)):
            raise ConfigError(f"evaluator.input_shape must be a list of positive integers, got {input_shape!r}")
        if not isinstance(classes, int) or classes < 1:
            raise ConfigError(f"evaluator.classes must be a positive integer, got {classes!r}")
        self.table_path, self.arch_column, self.cost_column = table, arch_column, cost_column
        self.objective = reward
        self.input_shape, self.classes = tuple(input_shape), classes

    def table(self) -> Table:
        return load_table(self.table_path, self.arch_column)

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        """Nominal: the shapes the table's networks were trained for (used by reports and describe)."""
        if fidelity is not None:
            _check_scale(fidelity)
        return Task(self.input_shape, self.classes)

    def prepare(self) -> None:
        self.table()

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int,
                 init: Optional[dict[str, Any]] = None) -> EvalResult:  # nothing trained: init is ignored
        start = time.perf_counter()
        _check_scale(fidelity)
        row = self.table().rows.get(str(arch))
        if row is None:
            raise TrialError(f"architecture {arch} is not in the table {self.table_path} "
                             f"(column {self.arch_column!r} must hold the {space.name!r} space's string form)")
        metrics = dict(row)
        cost = row[self.cost_column] if self.cost_column else time.perf_counter() - start
        if not math.isfinite(cost) or cost < 0:
            cost = 0.0
        return EvalResult(TrialState.COMPLETE, metrics, cost, None, [])
