"""Warm start: begin any strategy from architectures found before (seed 002's transfer between tasks).

``strategy: {name: warm_start, inner: {name: evolution, population_size: 20}, archs: [...]}``
proposes ``archs`` (string forms of this space, best first) before anything else; each is
:meth:`~archsearch.strategies.base.Strategy.adopt`-ed by the inner strategy in place of one of
its initial random samples and its trial is told to it, so evolution starts from them as its
population, BANANAS and TPE fit them, local search climbs from the best of them. After that
every ask comes from the inner strategy.

``archsearch search --warm-start DIR [--warm-start-top K]`` fills ``archs`` from a finished
search (:func:`best_architectures`: its K best completed trials) and wraps the configured
strategy. The strings are stored in the new search's config, so resuming never reads DIR again.
With weight inheritance on (``evaluator.inherit``) the CLI also copies DIR's trained weights of
those architectures into the new search (``OUT/weights``) and sets ``weights: true``: each warm
proposal names its own architecture as parent, so its trial starts from the earlier weights
(where the task's shapes allow; the rest is freshly initialised) instead of from scratch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from archsearch.core import Proposal
from archsearch.options import option
from archsearch.errors import ArchsearchError, ConfigError, ParseError
from archsearch.spaces.base import SearchSpace
from archsearch.strategies.base import Wrapper, register_strategy


@register_strategy("warm_start")
class WarmStart(Wrapper):
    @dataclass(frozen=True)
    class Options(Wrapper.Options):
        archs: tuple[str, ...] = option((), "architectures (string forms of this space) proposed first, best first")
        weights: bool = option(False, "each warm proposal names itself as parent, to start from its earlier weights")

    opts: Options
    small_options = {"inner": {"name": "evolution", "population_size": 4, "sample_size": 2}}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.archs = []
        for i, text in enumerate(self.opts.archs):
            try:
                self.archs.append(space.parse(text))
            except (ParseError, ConfigError) as exc:
                raise ConfigError(f"strategy.archs[{i}] is not an architecture of space {space.name!r}: "
                                  f"{exc}") from None
        self._handed = 0

    def ask(self) -> Proposal:
        if self._handed < len(self.archs):
            arch = self.archs[self._handed]
            self._handed += 1
            return self.handout(arch, parent=arch.id if self.opts.weights else None)  # parent: its earlier weights
        return self.inner.ask()


def copy_weights(directory: str, out_dir: str, space: SearchSpace, archs: Sequence[str]) -> int:
    """Copy ``directory``'s saved weights of ``archs`` into ``out_dir/weights``; how many were there."""
    import shutil

    os.makedirs(os.path.join(out_dir, "weights"), exist_ok=True)
    copied = 0
    for text in archs:
        name = f"{space.parse(text).id}.pt"
        source = os.path.join(directory, "weights", name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(out_dir, "weights", name))
            copied += 1
    return copied


def best_architectures(directory: str, space: SearchSpace, top: int) -> list[str]:
    """String forms of the ``top`` best completed trials of the search in ``directory`` (distinct, best
    first). That search must have searched the same space; it is only read."""
    from archsearch.core import TrialState
    from archsearch.storage.journal import Journal

    path = os.path.join(directory, Journal.FILENAME)
    if not os.path.isfile(path):
        raise ArchsearchError(f"--warm-start {directory}: no search there (no {Journal.FILENAME})")
    journal = Journal(path)
    try:
        theirs = ((journal.get_meta("config") or {}).get("space") or {}).get("name")
        if theirs != space.name:
            raise ConfigError(f"--warm-start {directory}: that search used space {theirs!r}, this one {space.name!r}")
        try:
            trials = journal.trials(space.from_dict)
        except (ParseError, ConfigError) as exc:
            raise ConfigError(f"--warm-start {directory}: its architectures do not fit this space's options: "
                              f"{exc}") from None
    finally:
        journal.close()
    done = sorted((t for t in trials if t.state is TrialState.COMPLETE and t.reward is not None),
                  key=lambda t: (-float(t.reward), t.number))  # type: ignore[arg-type]
    out: list[str] = []
    for t in done:
        if str(t.arch) not in out:
            out.append(str(t.arch))
        if len(out) == top:
            break
    if not out:
        raise ArchsearchError(f"--warm-start {directory}: that search has no completed trial")
    return out
