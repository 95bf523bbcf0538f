"""Median-rule early stopping: a trial whose curve falls below completed trials' median stops early."""

from __future__ import annotations

import json

import pytest

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator, run_trial
from archsearch.estimation.early_stop import MedianStop, median_reference
from archsearch.spaces import create_space
from conftest import TINY_ARGS, journal_rows

FID = Fidelity(epochs=3, data_fraction=0.1)
SPACE = create_space("chain", layers=2, channels=[8, 16], stem_channels=8)
ARCH = SPACE.parse("conv:3:8:relu|conv:3:16:relu")


def _run(reference, **options):
    evaluator = TrainingEvaluator(early_stop="median", **options)
    return run_trial(evaluator, SPACE, ARCH, FID, seed=0, threads=1, reference=reference)


def test_a_trial_below_the_median_stops_at_the_first_epoch_after_warmup():
    result = _run([[2.0] * 3] * 3)  # every reference curve is better than any accuracy
    assert result.status is TrialState.COMPLETE and result.error is None
    assert result.metrics["stopped_early"] == 2.0 and len(result.curve) == 2 and result.metrics["epochs"] == 2.0
    assert result.metrics["valid_acc"] == result.curve[-1]["valid_acc"]
    later = _run([[2.0] * 3] * 3, early_stop_warmup=2)
    assert later.metrics["stopped_early"] == 0.0 and len(later.curve) == 3  # the last epoch is never cut


def test_a_trial_above_the_median_or_with_too_few_references_runs_to_the_end():
    above = _run([[-1.0] * 5] * 3)
    assert above.metrics["stopped_early"] == 0.0 and len(above.curve) == 3
    few = _run([[2.0] * 2] * 3)  # two reference curves; early_stop_min_trials is 3
    assert few.metrics["stopped_early"] == 0.0 and len(few.curve) == 3
    assert _run([[2.0] * 2] * 3, early_stop_min_trials=2).metrics["stopped_early"] == 2.0


def test_no_reference_or_rule_off_means_no_stopping():
    off = run_trial(TrainingEvaluator(), SPACE, ARCH, FID, seed=0, threads=1, reference=[[2.0] * 3] * 3)
    assert len(off.curve) == 3 and "stopped_early" not in off.metrics
    assert _run(None).metrics["stopped_early"] == 0.0
    assert TrainingEvaluator().stop_reference([], FID) is None


def test_the_rule_compares_the_best_value_so_far_with_a_strict_median():
    rule = MedianStop([[0.0], [0.4, 0.5, 0.6], [0.4, 0.5, 0.6]], "valid_acc", warmup=1, min_trials=3)
    assert not rule([{"valid_acc": 0.1}])  # warmup
    assert not rule([{"valid_acc": 0.5}, {"valid_acc": 0.2}])  # best so far 0.5 is not below the median 0.5
    assert rule([{"valid_acc": 0.3}, {"valid_acc": 0.49}]) and rule.stopped_at == 2


def _trial(number, curve, state=TrialState.COMPLETE, fidelity=FID, **metrics):
    return Trial(number, ARCH, state, fidelity, metrics=dict(metrics), curve=[{"valid_acc": v} for v in curve])


def test_the_reference_holds_best_so_far_values_of_complete_full_scratch_trials_at_the_same_fidelity():
    trials = [
        _trial(0, [0.2, 0.5, 0.4], stopped_early=0.0),
        _trial(1, [0.3, 0.1, 0.6]),
        _trial(2, [0.9, 0.9], stopped_early=2.0),  # stopped: left out
        _trial(3, [0.9, 0.9, 0.9], inherited=0.7),  # warm-started: left out
        _trial(4, [0.9, 0.9, 0.9], fidelity=Fidelity(epochs=3)),  # another fidelity
        _trial(5, [0.9], state=TrialState.FAILED),
    ]
    assert median_reference(trials, FID, "valid_acc") == [[0.2, 0.3], [0.5, 0.3], [0.5, 0.6]]


@pytest.mark.parametrize("options, message", [
    ({"early_stop": "mean"}, "evaluator.early_stop must be one of: none, median"),
    ({"early_stop_warmup": -1}, "evaluator.early_stop_warmup must be an integer >= 0"),
    ({"early_stop_min_trials": 0}, "evaluator.early_stop_min_trials must be an integer >= 1"),
])
def test_bad_options_are_one_line_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainingEvaluator(**options)


def test_search_with_the_median_rule_stops_some_trials_and_spends_fewer_epochs(run_cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli("search", "--out", str(out), *TINY_ARGS, "--epochs", "3", "--budget", "6",
                           "--strategy", "random", "--seed", "1", "--set", "evaluator.early_stop=median",
                           "--set", "evaluator.early_stop_min_trials=2", "--set", "executor.threads=1")
    assert code == 0, err
    rows = journal_rows(str(out))
    metrics = [json.loads(r["metrics"]) for r in rows]
    assert len(rows) == 6 and all(r["state"] == "complete" for r in rows)
    stopped = [m for m in metrics if m["stopped_early"] > 0]
    assert stopped and all(m["epochs"] == m["stopped_early"] for m in stopped)
    assert sum(m["epochs"] for m in metrics) < 6 * 3
