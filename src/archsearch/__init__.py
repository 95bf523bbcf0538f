"""archsearch: neural architecture search on PyTorch.

Spaces describe, builders build, strategies choose, evaluators measure, executors run,
the journal remembers. Each kind has a registry; ``archsearch list`` shows them all.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from archsearch.config import Config
from archsearch.core import EvalResult, Fidelity, Proposal, Task, Trial, TrialState
from archsearch.data import DATASETS, Splits, from_arrays, from_torch_dataset
from archsearch.errors import ArchsearchError, ConfigError, DataError, JournalError, ParseError, SearchAborted
from archsearch.estimation import EVALUATORS, Evaluator, TrainingEvaluator
from archsearch.execution import EXECUTORS, Executor
from archsearch.deploy import FoundModel, Predictions, load_checkpoint, load_model
from archsearch.experiment import Experiment, Summary, run_search
from archsearch.api import search
from archsearch.oneshot import ONESHOT
from archsearch.registry import RegistryUnion
from archsearch.spaces import SPACES, Architecture, Decision, SearchSpace, create_space
from archsearch.storage import Journal
from archsearch.strategies import STRATEGIES, Strategy, create_strategy
from archsearch.oneshot import darts, enas, gdas, spos  # noqa: E402,F401,I001 - each registers itself


def registries() -> dict[str, Any]:
    """Every registry by config section name."""
    return {"space": SPACES, "strategy": RegistryUnion("strategy", STRATEGIES, ONESHOT), "dataset": DATASETS,
            "evaluator": EVALUATORS, "executor": EXECUTORS}


__all__ = [
    "Architecture", "ArchsearchError", "Config", "ConfigError", "DATASETS", "DataError", "Decision", "EVALUATORS",
    "EXECUTORS", "EvalResult", "Evaluator", "Executor", "Experiment", "Fidelity", "FoundModel", "Journal", "JournalError",
    "ParseError", "Predictions", "Proposal", "SPACES", "STRATEGIES", "SearchAborted", "SearchSpace", "Splits", "Strategy",
    "Summary", "Task", "TrainingEvaluator", "Trial", "TrialState", "create_space", "create_strategy",
    "from_arrays", "from_torch_dataset", "load_checkpoint", "load_model", "registries", "run_search", "search",
]
