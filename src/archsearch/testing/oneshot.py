"""The one-shot conformance suite: each method on every space with a supernet runs, derives an
architecture the space accepts, and resumes from its checkpoint to the same result."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import pytest
import torch

from archsearch.core import Task
from archsearch.data.base import Split
from archsearch.oneshot.base import ONESHOT
from archsearch.oneshot.search import OneShotSearch
from archsearch.spaces.base import SPACES
from archsearch.testing.settings import small_oneshot, small_supernet_space


class MemoryJournal:
    """The two journal calls the runner makes, in memory (records must be JSON, as in the real one)."""

    def __init__(self) -> None:
        self.records: dict[int, dict[str, Any]] = {}

    def put_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.records[epoch] = json.loads(json.dumps(record))

    def epochs(self) -> list[dict[str, Any]]:
        return [self.records[k] for k in sorted(self.records)]


def runner(name: str, space_name: str, out_dir: str, epochs: int = 2) -> tuple[OneShotSearch, Any]:
    """Method ``name`` on a tiny supernet of ``space_name`` and random 8x8 data, two epochs."""
    os.makedirs(out_dir, exist_ok=True)
    space = small_supernet_space(space_name)
    method = small_oneshot(name, space, 3, epochs=epochs, batch_size=8, device="cpu")
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randn(24, 1, 8, 8, generator=g), torch.randint(0, 3, (24,), generator=g))
    valid = Split(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g))
    return OneShotSearch(method, space, Task((1, 8, 8), 3), train, valid, 3, MemoryJournal(), out_dir), space


def supernet_spaces() -> list[str]:
    return [n for n in SPACES.names() if SPACES.get(n).has_supernet]


class OneShotSuite:
    """Subclass and set ``method_name``."""

    names_attribute: ClassVar[str] = "method_name"
    method_name: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _one_thread(self) -> Any:
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: thread hand-offs cost more than the maths
        yield
        torch.set_num_threads(before)

    @pytest.mark.parametrize("space_name", supernet_spaces())
    def test_runs_derives_and_resumes_exactly(self, space_name: str, tmp_path: Any) -> None:
        straight, space = runner(self.method_name, space_name, str(tmp_path / "a"))
        arch = straight.run()
        assert space.validate(arch) == arch
        records = straight.journal.epochs()
        assert [r["epoch"] for r in records] == [1, 2]
        assert all(0.0 <= r["valid_acc"] <= 1.0 for r in records)
        assert ("alphas" in records[0]) == ONESHOT.get(self.method_name).has_alphas

        first, _ = runner(self.method_name, space_name, str(tmp_path / "b"))
        first.run_epoch()  # epoch 1, checkpointed; then a fresh process would start here:
        second, _ = runner(self.method_name, space_name, str(tmp_path / "b"))
        second.journal = first.journal
        assert second.load() and second.epoch == 1
        assert second.run() == arch
        for key in ("valid_acc", "arch", "alphas"):
            assert second.journal.epochs()[-1].get(key) == records[-1].get(key), key
