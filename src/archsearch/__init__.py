"""archsearch: neural architecture search on PyTorch.

Spaces describe, builders build, strategies choose, evaluators measure, executors run,
the journal remembers. Each kind has a registry; ``archsearch list`` shows them all.

The public names below load on first use (PEP 562), so ``import archsearch`` and
``archsearch --help`` stay fast: torch, Optuna, Ray and matplotlib load only with the parts
that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archsearch.version import __version__

_LAZY: dict[str, str] = {
    "Config": "archsearch.config",
    "EvalResult": "archsearch.core", "Fidelity": "archsearch.core", "Proposal": "archsearch.core",
    "Task": "archsearch.core", "Trial": "archsearch.core", "TrialState": "archsearch.core",
    "DATASETS": "archsearch.data", "Splits": "archsearch.data", "from_arrays": "archsearch.data",
    "from_torch_dataset": "archsearch.data",
    "ArchsearchError": "archsearch.errors", "ConfigError": "archsearch.errors", "DataError": "archsearch.errors",
    "JournalError": "archsearch.errors", "ParseError": "archsearch.errors", "SearchAborted": "archsearch.errors",
    "EVALUATORS": "archsearch.estimation", "Evaluator": "archsearch.estimation",
    "TrainingEvaluator": "archsearch.estimation",
    "EXECUTORS": "archsearch.execution", "Executor": "archsearch.execution",
    "FoundModel": "archsearch.deploy", "Predictions": "archsearch.deploy", "load_checkpoint": "archsearch.deploy",
    "load_model": "archsearch.deploy",
    "Experiment": "archsearch.experiment", "Summary": "archsearch.experiment", "run_search": "archsearch.experiment",
    "search": "archsearch.api",
    "ONESHOT": "archsearch.oneshot",
    "SPACES": "archsearch.spaces", "Architecture": "archsearch.spaces", "Decision": "archsearch.spaces",
    "SearchSpace": "archsearch.spaces", "create_space": "archsearch.spaces",
    "Journal": "archsearch.storage",
    "STRATEGIES": "archsearch.strategies", "Strategy": "archsearch.strategies",
    "create_strategy": "archsearch.strategies",
    "registries": "archsearch.catalog",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'archsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from archsearch.api import search
    from archsearch.catalog import registries
    from archsearch.config import Config
    from archsearch.core import EvalResult, Fidelity, Proposal, Task, Trial, TrialState
    from archsearch.data import DATASETS, Splits, from_arrays, from_torch_dataset
    from archsearch.deploy import FoundModel, Predictions, load_checkpoint, load_model
    from archsearch.errors import ArchsearchError, ConfigError, DataError, JournalError, ParseError, SearchAborted
    from archsearch.estimation import EVALUATORS, Evaluator, TrainingEvaluator
    from archsearch.execution import EXECUTORS, Executor
    from archsearch.experiment import Experiment, Summary, run_search
    from archsearch.oneshot import ONESHOT
    from archsearch.spaces import SPACES, Architecture, Decision, SearchSpace, create_space
    from archsearch.storage import Journal
    from archsearch.strategies import STRATEGIES, Strategy, create_strategy

__all__ = [  # the same names as _LAZY (tests/test_startup.py checks they agree)
    "__version__", "Architecture", "ArchsearchError", "Config", "ConfigError", "DATASETS", "DataError", "Decision",
    "EVALUATORS", "EXECUTORS", "EvalResult", "Evaluator", "Executor", "Experiment", "Fidelity", "FoundModel",
    "Journal", "JournalError", "ONESHOT", "ParseError", "Predictions", "Proposal", "SPACES", "STRATEGIES",
    "SearchAborted", "SearchSpace", "Splits", "Strategy", "Summary", "Task", "TrainingEvaluator", "Trial",
    "TrialState", "create_space", "create_strategy", "from_arrays", "from_torch_dataset", "load_checkpoint",
    "load_model", "registries", "run_search", "search",
]
