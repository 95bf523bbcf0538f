"""The one-shot runner: epochs of supernet training, one journal record and one checkpoint each.

The method (:mod:`archsearch.oneshot.base`) decides what a step learns; this file owns
everything around it, so every method gets the same guarantees:

* data: the experiment's train split trains the supernet weights, its valid split the
  architecture (DARTS's bilevel split), both at the search fidelity (data fraction, resolution),
  shuffled each epoch by a generator this runner owns;
* the journal: after every epoch one record (the method's averaged losses, the supernet's valid
  accuracy, the derived architecture with its count of parameter-free ops and skips, the alphas,
  the time) goes to the journal's ``epochs`` table;
* checkpoints: ``oneshot.pt`` (supernet, method state with its optimisers and alphas, the data
  generator, the last record) is replaced atomically after every epoch, before the journal
  record; ``archsearch resume`` continues from the last completed epoch and, on the same device,
  gives the same result as a search that never stopped;
* the skip-collapse guard: with ``stop_skips`` the search ends early once the derived
  architecture has that many skip connections (DARTS+).

The last epoch's derived architecture is the result: the experiment evaluates it as a normal
trial and trains it from scratch in final training.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Optional, Sequence

import torch

from archsearch.core import Fidelity, Task
from archsearch.data.base import Split
from archsearch.errors import ConfigError, JournalError
from archsearch.oneshot.base import OneShotMethod, accuracy, count_param_free
from archsearch.spaces.base import Architecture, SearchSpace

CHECKPOINT = "oneshot.pt"
FORMAT = "archsearch.oneshot/1"
SCORE_SAMPLES = 512  # valid images the score function (ENAS/SPOS ranking) reads: a fixed subset


class OneShotSearch:
    """Runs ``method`` on ``space`` with the data of ``splits``; records go to ``journal``."""

    def __init__(self, method: OneShotMethod, space: SearchSpace, task: Task, train: Split, valid: Split,
                 seed: int, journal: Any, out_dir: str, time_left: Optional[float] = None) -> None:
        if len(train) < 2 or len(valid) < 1:
            raise ConfigError("one-shot search needs at least 2 training and 1 validation example")
        self.method, self.space, self.task, self.journal, self.out_dir = method, space, task, journal, out_dir
        self.time_left = time_left
        device = method.device
        self.x_train, self.y_train = train.x.to(device), train.y.to(device)
        self.x_valid, self.y_valid = valid.x.to(device), valid.y.to(device)
        self.generator = torch.Generator().manual_seed(int(seed) + 1)  # data order; the method has its own
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):  # supernet init seeded, global RNG untouched
            torch.manual_seed(seed)
            self.supernet = space.supernet(task, **method.supernet_options()).to(device)
        b = method.batch_size
        self.steps = max(1, len(train) // b) if len(train) >= b else 1
        method.setup(self.supernet, self.steps)
        self.epoch = 0
        self.records: list[dict[str, Any]] = []
        self.stopped: Optional[str] = None

    # -- checkpoints ---------------------------------------------------------------
    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, CHECKPOINT)

    def save(self, record: dict[str, Any]) -> None:
        state = {"format": FORMAT, "method": self.method.name, "epoch": self.epoch, "stopped": self.stopped,
                 "supernet": self.supernet.state_dict(), "state": self.method.state_dict(),
                 "generator": self.generator.get_state(), "record": record}
        tmp = f"{self.checkpoint_path}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load(self) -> bool:
        """Continue from the checkpoint if there is one; False for a fresh search."""
        if not os.path.exists(self.checkpoint_path):
            return False
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file: say which and stop, keep the file
            raise JournalError(f"cannot read the one-shot checkpoint {self.checkpoint_path}: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("method") != self.method.name:
            raise JournalError(f"{self.checkpoint_path} is not a checkpoint of this {self.method.name!r} search")
        self.supernet.load_state_dict(state["supernet"])
        self.method.load_state_dict(state["state"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch, self.stopped = int(state["epoch"]), state.get("stopped")
        self.records = self.journal.epochs()[: self.epoch]
        if len(self.records) < self.epoch:  # killed between the checkpoint and its journal record
            self.journal.put_epoch(self.epoch, state["record"])
            self.records.append(state["record"])
        return True

    # -- the loop ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.epoch >= self.method.epochs or self.stopped is not None

    def score(self, weights: Sequence[torch.Tensor]) -> float:
        k = min(SCORE_SAMPLES, len(self.y_valid))
        return accuracy(self.supernet, weights, self.x_valid[:k], self.y_valid[:k], self.method.batch_size)

    def run_epoch(self) -> dict[str, Any]:
        """One epoch: every train batch once, paired with valid batches (cycled when fewer)."""
        m, b = self.method, self.method.batch_size
        start = time.perf_counter()
        self.epoch += 1
        n_train, n_valid = len(self.y_train), len(self.y_valid)
        perm_t = torch.randperm(n_train, generator=self.generator).to(m.device)
        perm_v = torch.randperm(n_valid, generator=self.generator).to(m.device)
        sums: dict[str, float] = {}
        vb = max(1, n_valid // b) if n_valid >= b else 1
        for s in range(self.steps):
            ti = perm_t[s * b:(s + 1) * b]
            vi = perm_v[(s % vb) * b:(s % vb + 1) * b]
            values = m.step((self.x_train[ti], self.y_train[ti]), (self.x_valid[vi], self.y_valid[vi]))
            for key, value in values.items():
                if not math.isfinite(value):
                    raise ConfigError(f"one-shot search diverged: {key} is not finite at epoch {self.epoch} "
                                      "(lower strategy.lr or strategy.arch_lr)")
                sums[key] = sums.get(key, 0.0) + value
        record: dict[str, Any] = {"epoch": self.epoch, **{k: v / self.steps for k, v in sums.items()}}
        record.update(m.end_epoch(self.epoch))
        arch = m.derive(self.score)
        k = min(SCORE_SAMPLES * 4, n_valid)
        record["valid_acc"] = accuracy(self.supernet, m.eval_weights(), self.x_valid[:k], self.y_valid[:k], b)
        record.update(count_param_free(self.supernet, arch))
        record["arch"], record["arch_json"] = str(arch), arch.to_dict()
        alphas = m.alphas()
        if alphas is not None:
            record["alphas"] = alphas
        if m.ranking:
            record["ranking"] = [[str(a), float(s)] for a, s in m.ranking]
        record["seconds"] = time.perf_counter() - start
        if m.stop_skips is not None and record["skips"] >= m.stop_skips:
            self.stopped = (f"stopped after epoch {self.epoch}: the derived architecture has {record['skips']} "
                            f"skip connections (strategy.stop_skips={m.stop_skips})")
        self.save(record)  # the checkpoint first: a record in the journal always has its checkpoint
        self.journal.put_epoch(self.epoch, record)
        self.records.append(record)
        return record

    def run(self, on_epoch: Any = None) -> Architecture:
        """Epochs until done (or the time budget runs out); the derived architecture.
        Call :meth:`load` first to continue from a checkpoint."""
        start = time.monotonic()
        while not self.done:
            record = self.run_epoch()
            if on_epoch is not None:
                on_epoch(record)
            if self.time_left is not None and time.monotonic() - start >= self.time_left:
                self.stopped = f"stopped after epoch {self.epoch}: the time budget (budget.time) is spent"
                self.save(record)
                break
        if not self.records:
            raise JournalError("one-shot search ended without an epoch")
        return self.space.from_dict(self.records[-1]["arch_json"])


def search_fidelity(train: Split, valid: Split, fidelity: Fidelity, seed: int) -> tuple[Split, Split]:
    """The splits at the search fidelity (data fraction of both, resolution)."""
    from archsearch.estimation.training import prepare_split

    generator = torch.Generator().manual_seed(int(seed) + 2)
    return prepare_split(train, fidelity, generator, True), prepare_split(valid, fidelity, generator, True)
