"""Performance estimation: evaluators (training, later proxies and tables), fidelities."""

from archsearch.estimation.base import (
    EVALUATORS, Evaluator, FinalResult, TrialError, TrialTimeout, count_flops, count_params,
    list_evaluators, register_evaluator, run_trial,
)
from archsearch.estimation.proxies import list_proxies, register_proxy, score_architecture
from archsearch.estimation.proxy import ProxyEvaluator
from archsearch.estimation.tabular import TabularEvaluator, Table, load_table
from archsearch.estimation.training import TrainingEvaluator, evaluate_model, train_model

__all__ = ["EVALUATORS", "Evaluator", "FinalResult", "ProxyEvaluator", "TabularEvaluator", "Table", "TrainingEvaluator", "TrialError", "TrialTimeout",
           "count_flops", "count_params", "evaluate_model", "list_evaluators", "list_proxies", "register_evaluator", "register_proxy",
           "load_table", "run_trial", "score_architecture", "train_model"]
