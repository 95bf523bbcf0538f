"""Rank-vote ensembles of zero-cost proxies: scores that exist only over a population.

``vote`` ranks a population of architectures by each data-free proxy (``synflow``, ``zen``,
``params``, ``flops``; rank 1 = lowest score, ties get their average rank, NaN ranks lowest)
and scores each architecture by its mean rank over the proxies (higher = better). One proxy
alone can be fooled (synflow by networks whose score explodes numerically, params by wide
networks of poor operations); a vote of proxies that err differently ranks more robustly.
A rank needs the whole population, so ``vote`` is not a per-network proxy: ``archsearch
score`` computes it over the architectures it scores, ``prefilter`` over its candidate pool;
the proxy evaluator (one network per trial) does not accept it.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from archsearch.estimation.proxies import check_proxies, get_proxy, list_proxies

VOTES: dict[str, tuple[str, ...]] = {"vote": ("synflow", "zen", "params", "flops")}


def list_scores() -> list[str]:
    """Every name ``score`` and ``prefilter`` accept: the proxies and the population votes."""
    return sorted([*list_proxies(), *VOTES])


def is_vote(name: str) -> bool:
    return name in VOTES


def check_scores(names: Sequence[str]) -> list[str]:
    """Validate proxy or vote names (non-empty, known, no repeats); errors list every choice."""
    return check_proxies(names, also=tuple(VOTES))


def known_score(name: str) -> str | None:
    """An option check: None if ``name`` is a proxy or a vote, else what it must be."""
    return None if name in list_scores() else f"must be one of: {', '.join(list_scores())}"


def per_network(names: Sequence[str]) -> list[str]:
    """The per-network proxies ``names`` need (votes replaced by their members), in order, once each."""
    out: list[str] = []
    for name in names:
        for member in VOTES.get(name, (name,)):
            get_proxy(member)
            if member not in out:
                out.append(member)
    return out


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n (ascending; ties share their average rank; NaN ranks below everything)."""
    from scipy.stats import rankdata

    return np.asarray(rankdata([-math.inf if math.isnan(v) else v for v in values], method="average"),
                      dtype=float)


def vote_scores(name: str, rows: Sequence[Mapping[str, float]]) -> list[float]:
    """The ``name`` vote of each row (one row of member scores per architecture): the mean rank."""
    members = VOTES[name]
    total = sum(average_ranks([row[m] for row in rows]) for m in members)
    return [float(t) / len(members) for t in np.atleast_1d(total)] if rows else []


def with_votes(names: Sequence[str], rows: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """``{name: score}`` per architecture for ``names``, the votes computed over all ``rows``."""
    votes = {n: vote_scores(n, rows) for n in names if n in VOTES}
    return [{n: (votes[n][i] if n in votes else float(row[n])) for n in names} for i, row in enumerate(rows)]


__all__ = ["VOTES", "average_ranks", "check_scores", "is_vote", "known_score", "list_scores", "per_network",
           "vote_scores", "with_votes"]
