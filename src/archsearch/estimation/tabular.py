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
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

from archsearch.core import EvalResult, Fidelity, Task, TrialState
from archsearch.data.base import Splits
from archsearch.errors import ConfigError, DataError
from archsearch.estimation.base import Evaluator, TrialError, register_evaluator
from archsearch.options import Options, invalid, option, positive_ints
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
    for j in range(len(header)):
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

    @dataclass(frozen=True)
    class Options(Options):
        table: Optional[str] = option(None, "the CSV file of results, one row per architecture (--table)")
        reward: Optional[str] = option(None, "the numeric column strategies maximise (--reward)")
        arch_column: str = option("arch", "the column holding each architecture's string form")
        cost_column: Optional[str] = option(None, "a numeric column of seconds, reported as each trial's cost")
        input_shape: tuple[int, ...] = option((3, 32, 32), "the input shape the table's networks took",
                                              check=positive_ints)
        classes: int = option(10, "the classes the table's networks predicted", low=1)

        def __post_init__(self) -> None:
            if not self.table:
                raise invalid("table", "missing: evaluator 'tabular' needs a table: --table FILE")

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {"table": "table.csv", "reward": "valid_acc"}

    def __init__(self, data: Union[dict[str, Any], Splits, None] = None, data_seed: int = 0,
                 **options: Any) -> None:
        super().__init__(data, data_seed, **options)
        assert self.opts.table is not None  # checked by Options
        loaded = load_table(self.opts.table, self.opts.arch_column)  # the file's own errors are DataErrors
        if self.opts.reward is None:
            raise ConfigError(f"evaluator 'tabular' needs a reward column: --reward COLUMN "
                              f"(valid: {', '.join(loaded.columns)})")
        for key, column in (("reward", self.opts.reward), ("cost_column", self.opts.cost_column)):
            if column is not None and column not in loaded.columns:
                raise ConfigError(f"evaluator.{key}: the table has no numeric column {column!r} "
                                  f"(valid: {', '.join(loaded.columns)})")
        self.table_path: str = self.opts.table
        self.objective = self.opts.reward

    @classmethod
    def for_testing(cls, data: dict[str, Any], space: SearchSpace, archs: Sequence[Architecture],
                    workdir: str) -> "TabularEvaluator":
        """A table under ``workdir`` with a row for each of ``archs`` (made-up values)."""
        path = os.path.join(workdir, str(cls.small_options["table"]))
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["arch", "valid_acc", "cost"])
            for i, arch in enumerate(dict.fromkeys(str(a) for a in archs)):
                writer.writerow([arch, 0.5 + 0.01 * i, 1.0 + i])
        return cls(None, 0, **{**cls.small_options, "table": path, "cost_column": "cost"})

    def table(self) -> Table:
        return load_table(self.table_path, self.opts.arch_column)

    def task(self, fidelity: Optional[Fidelity] = None) -> Task:
        """Nominal: the shapes the table's networks were trained for (used by reports and describe)."""
        if fidelity is not None:
            _check_scale(fidelity)
        return Task(self.opts.input_shape, self.opts.classes)

    def prepare(self) -> None:
        self.table()

    def evaluate(self, space: SearchSpace, arch: Architecture, fidelity: Fidelity, seed: int) -> EvalResult:
        start = time.perf_counter()
        _check_scale(fidelity)
        row = self.table().rows.get(str(arch))
        if row is None:
            raise TrialError(f"architecture {arch} is not in the table {self.table_path} "
                             f"(column {self.opts.arch_column!r} must hold the {space.name!r} space's string form)")
        metrics = dict(row)
        cost = row[self.opts.cost_column] if self.opts.cost_column else time.perf_counter() - start
        if not math.isfinite(cost) or cost < 0:
            cost = 0.0
        return EvalResult(TrialState.COMPLETE, metrics, cost, None, [])
