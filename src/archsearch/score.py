"""``archsearch score``: zero-cost proxy scores of a list of architectures, as a CSV.

The input file holds one architecture string per line (the space's string form, what
``archsearch describe`` prints); blank lines and lines starting with ``#`` are skipped.
Every line is parsed before anything is scored, so a bad line is reported (with its number)
at once. :func:`sample_archs` draws N seeded random architectures instead of reading a file.
The CSV has a column ``arch`` and one column per proxy, in the order asked (a vote ranks the
whole list: see :mod:`archsearch.estimation.ensemble`); every network is
initialised from the same ``seed`` (the same seed also draws the random minibatch of the
data-dependent proxies), so the rows are comparable and the file is reproducible.
"""

from __future__ import annotations

import csv
import os
from typing import Callable, Optional, Sequence

import numpy as np

from archsearch.core import Task
from archsearch.errors import ArchsearchError, ConfigError, ParseError
from archsearch.estimation.ensemble import check_scores, per_network, with_votes
from archsearch.estimation.proxies import score_architecture
from archsearch.spaces.base import Architecture, SearchSpace


def read_archs(space: SearchSpace, path: str) -> list[Architecture]:
    """Parse every architecture string of ``path``; errors name the file and the line."""
    if not os.path.isfile(path):
        raise ArchsearchError(f"architecture file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchsearchError(f"cannot read {path}: {exc}") from None
    archs = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            archs.append(space.parse(text))
        except ParseError as exc:
            raise ParseError(f"{path} line {number}: {exc}") from None
    if not archs:
        raise ArchsearchError(f"{path} holds no architecture (one string per line; # starts a comment)")
    return archs


def sample_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Architecture]:
    """``n`` random architectures drawn from a generator seeded with ``seed`` (repeats possible)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"--sample must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def score_archs(space: SearchSpace, archs: Sequence[Architecture], task: Task, proxies: Sequence[str],
                seed: int = 0, progress: Optional[Callable[[int], None]] = None) -> list[dict[str, float]]:
    """One ``{proxy: score}`` per architecture; ``progress(done)`` after each.

    A vote (``vote``, :mod:`archsearch.estimation.ensemble`) is the mean rank of its member proxies
    over ``archs``: it depends on the whole list, so it is computed after every architecture is scored.
    """
    names = check_scores(proxies)
    needed = per_network(names)
    rows = []
    for i, arch in enumerate(archs):
        rows.append(score_architecture(space, arch, task, needed, seed=seed))
        if progress:
            progress(i + 1)
    return with_votes(names, rows)


def write_scores(path: str, archs: Sequence[Architecture], rows: Sequence[dict[str, float]],
                 proxies: Sequence[str]) -> None:
    """The CSV: ``arch`` then one column per proxy (``repr`` of floats: exact round trip)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["arch", *proxies])
            for arch, row in zip(archs, rows):
                writer.writerow([str(arch), *(repr(float(row[p])) for p in proxies)])
        os.replace(tmp, path)
    except OSError as exc:
        raise ArchsearchError(f"cannot write {path}: {exc.strerror or exc}") from None
