"""Shared fixtures: tiny fidelities so end-to-end tests stay fast on 2 cores."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from archsearch.config import Config
from archsearch.spaces.base import SPACES

# Options that make every trial take well under a second on digits.
TINY = {
    "space": {"name": "chain", "layers": 2, "channels": [8, 16], "stem_channels": 8},
    "fidelity": {"epochs": 1, "data_fraction": 0.3},
    "final": {"enabled": False},
    "budget": {"trials": 4},
    "report": False,  # report.html has its own tests (test_html_report.py); the rest skip writing it
}
TINY_ARGS = ["--epochs", "1", "--data-fraction", "0.3", "--set", "space.layers=2", "--set", "space.channels=[8,16]",
             "--set", "space.stem_channels=8", "--set", "final.enabled=false", "--set", "report=false", "--quiet"]


def tiny_config(**sections: Any) -> Config:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Config.from_dict(data)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in this process; returns (exit code, stdout, stderr)."""
    from archsearch.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def cli_subprocess(*args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "archsearch", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def synthetic_images(n: int = 120, classes: int = 3, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable toy images: each class lights up a different block."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 0.3, (n, 1, size, size)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, c : c + 3, :] += 2.0
    return x, y


def journal_rows(out: str) -> list[dict]:
    """Every trial row of the journal in ``out`` (read with plain sqlite3, as an outsider would)."""
    con = sqlite3.connect(os.path.join(out, "journal.sqlite"))
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM trials ORDER BY number")]
    finally:
        con.close()


# Tiny options for every space with a supernet (one-shot tests).
# each supernet space declares the small options its supernet trains quickly with
TINY_SUPERNET_SPACES = {name: dict(SPACES.get(name).small_supernet_options or SPACES.get(name).small_options)
                        for name in SPACES.names() if SPACES.get(name).has_supernet}


@pytest.fixture
def one_thread():
    """Tiny tensors: thread hand-offs cost more than the maths on a shared 2-core machine.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_oneshot(name: str, space_name: str = "nb201", seed: int = 0, net_seed: int = 0,
                 space_options: Any = None, task: Any = None, **options: Any) -> tuple[Any, Any]:
    """A one-shot method set up on a tiny supernet (3x8x8 images, 3 classes unless ``task``)."""
    import torch

    from archsearch.core import Task
    from archsearch.oneshot import create_oneshot
    from archsearch.spaces import create_space

    task = task or Task((3, 8, 8), 3)
    space = create_space(space_name, **(space_options or TINY_SUPERNET_SPACES[space_name]))
    method = create_oneshot(name, space, seed, device="cpu", **options)
    torch.manual_seed(net_seed)
    net = space.supernet(task, **method.supernet_options())
    method.setup(net, 3)
    return method, net


def oneshot_batches(seed: int, n: int, size: int = 6, shape: tuple[int, ...] = (3, 8, 8), classes: int = 3) -> list:
    """``n`` seeded (images, labels) batches of random data."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *shape, generator=g), torch.randint(0, classes, (size,), generator=g))
            for _ in range(n)]


def tree_digest(folder: str) -> dict[str, str]:
    """Every file under ``folder`` by relative path and content hash (to show nothing was changed)."""
    import hashlib

    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out
