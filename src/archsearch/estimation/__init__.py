"""Performance estimation: evaluators (training, later proxies and tables), fidelities."""

from archsearch.estimation.base import (
    EVALUATORS, Evaluator, FinalResult, TrialError, TrialTimeout, count_flops, count_params,
    list_evaluators, register_evaluator, run_trial,
)
from archsearch.estimation.training import TrainingEvaluator, evaluate_model, train_model

__all__ = ["EVALUATORS", "Evaluator", "FinalResult", "TrainingEvaluator", "TrialError", "TrialTimeout",
           "count_flops", "count_params", "evaluate_model", "list_evaluators", "register_evaluator",
           "run_trial", "train_model"]
