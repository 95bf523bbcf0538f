"""Every registry by config section name: what configs, ``archsearch list`` and the CLI look
components up in. One-shot methods share the ``strategy`` section with the ask/tell strategies
(a union of the two registries), since a config names either in ``strategy.name``."""

from __future__ import annotations

from archsearch.data.base import DATASETS
from archsearch.estimation.base import EVALUATORS
from archsearch.execution.base import EXECUTORS
from archsearch.oneshot.base import ONESHOT
from archsearch.registry import Registry, RegistryUnion
from archsearch.spaces.base import SPACES
from archsearch.strategies.base import STRATEGIES


def registries() -> dict[str, Registry | RegistryUnion]:
    """Every registry by config section name."""
    return {"space": SPACES, "strategy": RegistryUnion("strategy", STRATEGIES, ONESHOT), "dataset": DATASETS,
            "evaluator": EVALUATORS, "executor": EXECUTORS}
