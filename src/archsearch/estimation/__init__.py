"""Performance estimation: evaluators (training, later proxies and tables), fidelities."""

from archsearch.estimation.base import (
    EVALUATORS, Evaluator, FinalResult, TrialError, TrialTimeout, count_flops, count_params,
    list_evaluators, register_evaluator, run_trial,
)
from archsearch.estimation.tabular import TabularEvaluator, Table, load_table
from archsearch.estimation.training import TrainingEvaluator, evaluate_model, train_model

__all__ = ["EVALUATORS", "Evaluator", "FinalResult", "TabularEvaluator", "Table", "TrainingEvaluator", "TrialError", "TrialTimeout",
           "count_flops", "count_params", "evaluate_model", "list_evaluators", "register_evaluator",
           "load_table", "run_trial", "train_model"]
