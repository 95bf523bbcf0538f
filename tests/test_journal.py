from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from archsearch.core import Fidelity, TrialState
from archsearch.errors import JournalError
from archsearch.spaces import create_space
from archsearch.storage import Journal


@pytest.fixture
def space():
    return create_space("chain", layers=2)


def test_trial_lifecycle_and_event_order(tmp_path, space):
    j = Journal(str(tmp_path / "j.sqlite"), create=True)
    rng = np.random.default_rng(0)
    a, b = space.sample(rng), space.sample(rng)
    n0 = j.create_trial(a, Fidelity(2), None)
    n1 = j.create_trial(b, Fidelity(3, 0.5), a.id)
    j.mark_running(n0)
    j.mark_running(n1)
    j.finish_trial(n1, TrialState.COMPLETE, {"valid_acc": 0.5}, 0.5, None, 1.5,
                   [{"epoch": 1.0, "valid_acc": 0.4}, {"epoch": 2.0, "valid_acc": 0.5}])
    j.finish_trial(n0, TrialState.FAILED, {}, None, "boom", 0.1, [])
    trials = j.trials(space.from_dict, with_curves=True)
    assert [t.number for t in trials] == [0, 1]
    t0, t1 = trials
    assert t0.arch == a and t0.state is TrialState.FAILED and t0.error == "boom"
    assert t1.arch == b and t1.parent == a.id and t1.fidelity == Fidelity(3, 0.5)
    assert t1.curve == [{"epoch": 1.0, "valid_acc": 0.4}, {"epoch": 2.0, "valid_acc": 0.5}]
    # asks happened before either tell, and trial 1 was told first
    assert t0.ask_seq < t1.ask_seq < t1.tell_seq < t0.tell_seq
    assert j.count(TrialState.COMPLETE) == 1 and j.count(TrialState.FAILED) == 1


def test_finished_trials_are_never_modified(tmp_path, space):
    j = Journal(str(tmp_path / "j.sqlite"), create=True)
    n = j.create_trial(space.sample(np.random.default_rng(0)), Fidelity(1), None)
    j.finish_trial(n, TrialState.COMPLETE, {"valid_acc": 1.0}, 1.0, None, 1.0, [])
    with pytest.raises(JournalError, match="never modified"):
        j.finish_trial(n, TrialState.FAILED, {}, None, "x", 0.0, [])
    j.mark_running(n)  # a no-op on finished trials
    t = j.trials(space.from_dict)[0]
    assert t.state is TrialState.COMPLETE and t.reward == 1.0 and t.attempts == 0


def test_wal_mode_and_meta(tmp_path):
    path = str(tmp_path / "j.sqlite")
    j = Journal(path, create=True)
    j.set_meta("config", {"a": [1, 2]})
    assert Journal(path).get_meta("config") == {"a": [1, 2]}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_corrupt_missing_and_foreign_journals_are_refused_untouched(tmp_path):
    with pytest.raises(JournalError, match="no journal"):
        Journal(str(tmp_path / "missing.sqlite"))
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    before = garbage.read_bytes()
    with pytest.raises(JournalError, match="not a readable archsearch journal"):
        Journal(str(garbage))
    assert garbage.read_bytes() == before
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(JournalError, match="missing tables"):
        Journal(str(foreign))
    newer = tmp_path / "newer.sqlite"
    Journal(str(newer), create=True).close()
    con = sqlite3.connect(newer)
    con.execute("UPDATE version_info SET schema_version = 99")
    con.commit()
    with pytest.raises(JournalError, match="schema 99"):
        Journal(str(newer))
    assert os.path.getsize(newer) > 0


def test_one_writer_at_a_time(tmp_path):
    path = str(tmp_path / "j.sqlite")
    first = Journal(path, create=True, lock=True)
    with pytest.raises(JournalError, match="another archsearch process is running the search"):
        Journal(path, lock=True)
    Journal(path).close()  # readers (show) need no lock
    first.close()
    Journal(path, lock=True).close()  # released with its holder


def test_a_foreign_sqlite_file_is_left_byte_identical(tmp_path):
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
    with pytest.raises(JournalError):
        Journal(str(foreign))
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.sqlite"]
