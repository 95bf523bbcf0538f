"""The journal: an experiment's complete record in one SQLite file (WAL mode).

Rules (what resume and reports rely on):

1. Only the driver process writes; workers return results to it.
2. A trial row is created (state ``waiting``) before its evaluation is submitted, with
   ``ask_seq``: its place in the global sequence of ask/tell events.
3. ``running`` is set when it is handed to an executor. A trial still ``waiting`` or
   ``running`` when the driver died is run again on resume (``attempts`` counts tries);
   its architecture is never asked for again.
4. Finishing a trial (``complete`` or ``failed``) stores metrics, reward, error, cost,
   learning curve and ``tell_seq`` in one transaction. Finished trials are never modified.
5. Replaying ask events by ``ask_seq`` and tell events by ``tell_seq`` reproduces the
   calls a strategy received, and therefore its state.
6. The schema carries a version; a journal with another version, or one SQLite cannot
   read, is refused with a JournalError and left untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any, Callable, Iterator, Optional

from archsearch.core import Fidelity, Trial, TrialState
from archsearch.errors import JournalError
from archsearch.spaces.base import Architecture

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS version_info (schema_version INTEGER NOT NULL, library_version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number      INTEGER PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'complete', 'failed')),
    arch        TEXT NOT NULL,
    arch_json   TEXT NOT NULL,
    arch_id     TEXT NOT NULL,
    fidelity    TEXT NOT NULL,
    parent      TEXT,
    metrics     TEXT NOT NULL DEFAULT '{}',
    reward      REAL,
    error       TEXT,
    cost        REAL NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    ask_seq     INTEGER NOT NULL,
    tell_seq    INTEGER,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS intermediate (
    trial_number INTEGER NOT NULL REFERENCES trials(number),
    step         INTEGER NOT NULL,
    key          TEXT NOT NULL,
    value        REAL,
    PRIMARY KEY (trial_number, step, key)
);
"""


class Journal:
    FILENAME = "journal.sqlite"

    def __init__(self, path: str, create: bool = False, meta: Optional[dict[str, Any]] = None,
                 lock: bool = False) -> None:
        """Open (or with ``create``, make) a journal.

        ``lock`` takes an exclusive lock for the driver that will write (rule 1): a second
        driver on the same search is refused. The lock dies with its process, kill -9 included.
        A file that fails the checks is closed untouched: WAL mode is switched on only after.
        """
        self.path = path
        if not create and not os.path.isfile(path):
            raise JournalError(f"no journal at {path}")
        self._lock_fd: Optional[int] = self._acquire_lock(path) if lock else None
        self._db: Optional[sqlite3.Connection] = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            if create:
                self._create(meta or {})
            self._check()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise JournalError(f"{path} is not a readable archsearch journal ({exc})") from exc
        except JournalError:
            self.close()
            raise

    @staticmethod
    def _acquire_lock(path: str) -> Optional[int]:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one driver per search is then on the user
            return None
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise JournalError(f"another archsearch process is running the search in {os.path.dirname(path) or '.'}"
                               " (its journal is locked)") from None
        return fd

    # -- schema ----------------------------------------------------------------
    def _create(self, meta: dict[str, Any]) -> None:
        """Schema, version and initial metadata in one transaction: a kill leaves all or nothing."""
        from archsearch.version import __version__

        assert self._db is not None
        with self._tx():
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            if self._db.execute("SELECT COUNT(*) FROM version_info").fetchone()[0] == 0:
                self._db.execute("INSERT INTO version_info VALUES (?, ?)", (SCHEMA_VERSION, __version__))
                self._db.execute("INSERT INTO meta VALUES ('seq', '0')")
                for key, value in meta.items():
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def _check(self) -> None:
        row = self._db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise JournalError(f"{self.path} is corrupt (sqlite quick_check: {row[0] if row else 'no answer'})")
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"version_info", "meta", "trials", "intermediate"} - tables
        if missing:
            raise JournalError(f"{self.path} is not an archsearch journal "
                               f"(missing tables: {', '.join(sorted(missing))})")
        version = self._db.execute("SELECT schema_version FROM version_info").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            raise JournalError(f"{self.path} has journal schema {version[0] if version else '?'}, "
                               f"this archsearch reads schema {SCHEMA_VERSION}")

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    # -- metadata --------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def _next_seq(self) -> int:
        seq = int(self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) + 1
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
        return seq

    # -- trials ----------------------------------------------------------------
    def create_trial(self, arch: Architecture, fidelity: Fidelity, parent: Optional[str]) -> int:
        with self._tx():
            number = self._db.execute("SELECT COALESCE(MAX(number), -1) + 1 FROM trials").fetchone()[0]
            self._db.execute(
                "INSERT INTO trials (number, state, arch, arch_json, arch_id, fidelity, parent, ask_seq, created_at)"
                " VALUES (?, 'waiting', ?, ?, ?, ?, ?, ?, ?)",
                (number, str(arch), arch.to_json(), arch.id, json.dumps(fidelity.to_dict()), parent,
                 self._next_seq(), time.time()),
            )
        return int(number)

    def mark_running(self, number: int) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE trials SET state='running', attempts=attempts+1, started_at=? "
                "WHERE number=? AND state IN ('waiting', 'running')", (time.time(), number))

    def finish_trial(self, number: int, state: TrialState, metrics: dict[str, float], reward: Optional[float],
                     error: Optional[str], cost: float, curve: list[dict[str, float]]) -> None:
        assert state.finished
        with self._tx():
            cur = self._db.execute(
                "UPDATE trials SET state=?, metrics=?, reward=?, error=?, cost=?, tell_seq=?, finished_at=? "
                "WHERE number=? AND state IN ('waiting', 'running')",
                (state.value, json.dumps(metrics), reward, error, cost, self._next_seq(), time.time(), number))
            if cur.rowcount != 1:
                raise JournalError(f"trial {number} is already finished; finished trials are never modified")
            self._db.executemany(
                "INSERT OR REPLACE INTO intermediate VALUES (?, ?, ?, ?)",
                [(number, step, k, float(v)) for step, point in enumerate(curve) for k, v in point.items()])

    def trials(self, decode: Callable[[dict[str, Any]], Architecture], with_curves: bool = False) -> list[Trial]:
        """All trials in number order; ``decode`` turns stored arch JSON back into an architecture."""
        curves: dict[int, list[dict[str, float]]] = {}
        if with_curves:
            for n, step, key, value in self._db.execute(
                    "SELECT trial_number, step, key, value FROM intermediate ORDER BY trial_number, step"):
                points = curves.setdefault(n, [])
                while len(points) <= step:
                    points.append({})
                points[step][key] = value
        out = []
        for row in self._rows("SELECT * FROM trials ORDER BY number"):
            out.append(Trial(
                number=row["number"], arch=decode(json.loads(row["arch_json"])), state=TrialState(row["state"]),
                fidelity=Fidelity.from_dict(json.loads(row["fidelity"])), parent=row["parent"],
                metrics=json.loads(row["metrics"]), reward=row["reward"], error=row["error"], cost=row["cost"],
                attempts=row["attempts"], ask_seq=row["ask_seq"], tell_seq=row["tell_seq"],
                curve=curves.get(row["number"], []),
            ))
        return out

    # -- one-shot search epochs ---------------------------------------------------
    _EPOCHS = "CREATE TABLE IF NOT EXISTS epochs (epoch INTEGER PRIMARY KEY, record TEXT NOT NULL)"

    def put_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """A one-shot search's record of one supernet epoch (losses, valid accuracy, derived
        architecture, alphas). Written again identically when a resumed search repeats it."""
        with self._tx():
            self._db.execute(self._EPOCHS)
            self._db.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?)", (int(epoch), json.dumps(record)))

    def epochs(self) -> list[dict[str, Any]]:
        """The one-shot epoch records in order (none for a multi-trial search)."""
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='epochs'").fetchone() is None:
            return []
        return [json.loads(r[0]) for r in self._db.execute("SELECT record FROM epochs ORDER BY epoch")]

    def raw_trials(self) -> list[dict[str, Any]]:
        """Trials as plain dicts (architecture kept as its string), for reports that need no space."""
        return list(self._rows("SELECT * FROM trials ORDER BY number"))

    def count(self, state: TrialState) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM trials WHERE state=?", (state.value,)).fetchone()[0])

    SKIPPED = "skipped: "  # the error of a trial the planner did not run (recorded failed, not the network's fault)

    def count_failures(self) -> int:
        """Failed trials, not counting those the planner skipped without running them."""
        return int(self._db.execute("SELECT COUNT(*) FROM trials WHERE state='failed' AND "
                                    "(error IS NULL OR error NOT LIKE ?)", (self.SKIPPED + "%",)).fetchone()[0])

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        cur = self._db.execute(sql, params)
        names = [d[0] for d in cur.description]
        for row in cur:
            yield dict(zip(names, row))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (the connection runs in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
