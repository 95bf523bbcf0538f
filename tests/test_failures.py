"""Failed trials: their reasons, budget.max_retries (a trial whose worker died, reason crash, runs again;
the network's own failures never do) and the resources report in ``show``."""

from __future__ import annotations

from typing import Optional

import pytest

from archsearch.config import Config
from archsearch.core import FAILURE_REASONS, EvalResult, failure_reason
from archsearch.errors import ConfigError
from archsearch.execution.local import InlineExecutor
from archsearch.experiment import Experiment
from conftest import TINY, journal_rows, tiny_config


class FailingFirst(InlineExecutor):
    """Inline, but the first ``times`` runs of trial ``victim`` come back failed with ``reason``."""

    def __init__(self, victim: int, reason: str, times: int) -> None:
        super().__init__(threads=1)
        self.victim, self.reason, self.times = victim, reason, times
        self.runs: dict[int, int] = {}

    def wait(self, timeout: Optional[float] = None) -> list[tuple[int, EvalResult]]:
        out = []
        for key, result in super().wait(timeout):
            self.runs[key] = self.runs.get(key, 0) + 1
            if key == self.victim and self.runs[key] <= self.times:
                result = EvalResult.failed("worker process died (signal 9)", reason=self.reason)
            out.append((key, result))
        return out


def run(tmp_path, executor: FailingFirst, **budget) -> list[dict]:
    config = tiny_config(budget={"trials": 3, **budget})
    experiment = Experiment.create(config, str(tmp_path / "out"), quiet=True)
    try:
        experiment.run(executor)
    finally:
        experiment.close()
    return journal_rows(str(tmp_path / "out"))


def test_a_crashed_trial_runs_again_and_completes(tmp_path):
    ex = FailingFirst(victim=1, reason="crash", times=1)
    rows = run(tmp_path, ex)
    assert ex.runs[1] == 2
    victim = rows[1]
    assert victim["state"] == "complete" and victim["attempts"] == 2
    assert '"retries": 1.0' in victim["metrics"]
    assert [r["state"] for r in rows] == ["complete"] * 3  # no extra trial was asked for


def test_retries_are_bounded_by_max_retries(tmp_path):
    ex = FailingFirst(victim=1, reason="crash", times=5)
    rows = run(tmp_path, ex, max_retries=2)
    assert ex.runs[1] == 3  # the first run and two retries
    assert rows[1]["state"] == "failed" and failure_reason(rows[1]["error"]) == "crash"
    assert '"retries": 2.0' in rows[1]["metrics"]
    assert sum(r["state"] == "complete" for r in rows) == 3  # the budget is still met


@pytest.mark.parametrize("reason", ["oom", "nan", "timeout", "memory", "error"])
def test_deterministic_failures_are_not_retried(tmp_path, reason):
    ex = FailingFirst(victim=1, reason=reason, times=1)
    rows = run(tmp_path, ex)
    assert ex.runs[1] == 1
    assert rows[1]["state"] == "failed" and failure_reason(rows[1]["error"]) == reason


def test_zero_retries_fails_at_once(tmp_path):
    ex = FailingFirst(victim=0, reason="crash", times=1)
    rows = run(tmp_path, ex, max_retries=0)
    assert ex.runs[0] == 1 and rows[0]["state"] == "failed"


@pytest.mark.parametrize("bad", [-1, 1.5, "two", True])
def test_bad_max_retries_is_one_line(bad):
    with pytest.raises(ConfigError, match=r"budget.max_retries must be an integer >= 0"):
        Config.from_dict({**TINY, "budget": {"trials": 3, "max_retries": bad}})


def test_failure_reason_reads_only_known_prefixes():
    assert failure_reason("oom: out of memory: CUDA") == "oom"
    assert failure_reason("crash: worker died") == "crash"
    assert failure_reason("ValueError: bad") == "error"
    assert failure_reason("timeout") == "error" and failure_reason(None) == "error"
    assert set(FAILURE_REASONS) >= {"memory", "oom", "timeout", "crash", "nan", "skipped", "error"}
    assert EvalResult.failed("x", reason="memory").reason == "memory"


def test_show_reports_resources_and_failure_reasons(tmp_path, run_cli):
    """Peak memory and CPU time per trial (columns), the largest peak and the failures by reason (a line);
    ``show --json`` carries each failed trial's reason and the totals."""
    import json

    import numpy as np

    from archsearch.core import Fidelity, TrialState
    from archsearch.spaces.base import create_space
    from archsearch.storage.journal import Journal

    config = tiny_config()
    out = tmp_path / "run"
    out.mkdir()
    journal = Journal(str(out / Journal.FILENAME), create=True, meta={"config": config.to_dict()})
    space, rng = create_space("chain", layers=2, channels=[8, 16], stem_channels=8), np.random.default_rng(0)
    rows = [(TrialState.COMPLETE, {"valid_acc": 0.5, "peak_rss_mb": 120.0, "cpu_s": 2.0}, None),
            (TrialState.COMPLETE, {"valid_acc": 0.6, "peak_rss_mb": 480.0, "cpu_s": 3.5}, None),
            (TrialState.FAILED, {"memory_estimate_mb": 9000.0}, "memory: needs about 9.0 GB, limit 4.0 GB"),
            (TrialState.FAILED, {"peak_rss_mb": 300.0, "cpu_s": 1.0}, "oom: out of memory: MemoryError")]
    for state, metrics, error in rows:
        n = journal.create_trial(space.sample(rng), Fidelity(1), None)
        journal.mark_running(n)
        journal.finish_trial(n, state, metrics, metrics.get("valid_acc") if error is None else None, error, 1.0, [])
    journal.close()
    code, text, _ = run_cli("show", str(out))
    assert code == 0
    assert "cpu s" in text and "mem MB" in text and "~9000" in text  # the estimate for a trial never run
    assert "resources: peak memory 480 MB (trial 1); CPU 6.5 s; failed: 1 memory, 1 oom" in text
    code, text, _ = run_cli("show", str(out), "--json")
    data = json.loads(text)
    assert [t.get("reason") for t in data["trials"]] == [None, None, "memory", "oom"]
    assert data["resources"] == {"cpu_s": 6.5, "failures": {"memory": 1, "oom": 1}, "peak_rss_mb": 480.0,
                                 "peak_trial": 1}


def test_process_memory_limit_takes_sizes_and_refuses_nonsense():
    from archsearch.execution.base import create_executor

    with create_executor("process", workers=1, memory_limit="2GB") as ex:
        assert ex.opts.memory_limit == "2GB"
    for bad in ("abc", 0, "-1GB"):
        with pytest.raises(ConfigError, match=r"memory_limit must be a positive number of bytes or a size such as 4GB"):
            create_executor("process", workers=1, memory_limit=bad)
