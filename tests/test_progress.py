from __future__ import annotations

import io

import numpy as np

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.progress import Progress
from archsearch.spaces import create_space


def _trials():
    space = create_space("chain", layers=2)
    rng = np.random.default_rng(0)
    return [Trial(0, space.sample(rng), TrialState.COMPLETE, Fidelity(1), reward=0.5),
            Trial(1, space.sample(rng), TrialState.FAILED, Fidelity(1), error="loss is not finite\ntrace"),
            Trial(2, space.sample(rng), TrialState.COMPLETE, Fidelity(1), reward=0.75)]


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    p = Progress(total=3, stream=stream)
    assert not p.live
    t0, t1, t2 = _trials()
    p.trial(t0, 0.5)
    p.trial(t1, 0.5)
    p.trial(t2, 0.75)
    p.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "complete" in lines[0] and "[1/3]" in lines[0] and "best 0.5000" in lines[0]
    assert "failed" in lines[1] and "loss is not finite" in lines[1] and "trace" not in lines[1]
    assert "[2/3]" in lines[2] and "best 0.7500" in lines[2] and "eta" in lines[2]


def test_live_bar_shows_done_over_budget_and_best():
    stream = io.StringIO()
    p = Progress(total=3, stream=stream, live=True)
    t0, t1, t2 = _trials()
    for t, best in ((t0, 0.5), (t1, 0.5), (t2, 0.75)):
        p.trial(t, best)
    p.close()
    text = stream.getvalue()
    assert "2/3" in text and "best 0.7500" in text and "trial 1 failed: loss is not finite" in text


def test_quiet_prints_nothing():
    stream = io.StringIO()
    p = Progress(total=3, stream=stream, quiet=True)
    for t in _trials():
        p.trial(t, 0.5)
    p.message("hello")
    p.close()
    assert stream.getvalue() == ""
