"""Performance estimation: evaluators (training, later proxies and tables), fidelities."""

from archsearch.estimation.base import (
    EVALUATORS, Evaluator, FinalResult, SupportsEarlyStop, SupportsInheritance, TrainsOnSplits, TrialError,
    TrialTimeout, count_flops, count_params, list_evaluators, register_evaluator, run_trial,
)
from archsearch.estimation.proxies import list_proxies, register_proxy, score_architecture
from archsearch.estimation.proxy import ProxyEvaluator
from archsearch.estimation.tabular import TabularEvaluator, Table, load_table
from archsearch.estimation.loop import evaluate_model, train_model
from archsearch.estimation.training import TrainingEvaluator

__all__ = ["EVALUATORS", "Evaluator", "FinalResult", "ProxyEvaluator", "SupportsEarlyStop", "SupportsInheritance",
           "TabularEvaluator", "Table", "TrainingEvaluator", "TrainsOnSplits", "TrialError", "TrialTimeout",
           "count_flops", "count_params", "evaluate_model", "list_evaluators", "list_proxies", "load_table",
           "register_evaluator", "register_proxy", "run_trial", "score_architecture", "train_model"]
