"""Every registered one-shot method on every space with a supernet (generated from the registries).

Each pair runs two tiny epochs through the runner on random data, derives an architecture the
space accepts, checkpoints through ``torch.save``/``weights_only`` loading, and continues from
the checkpoint exactly; the CLI test runs each method end to end with a real kill -9.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from archsearch.core import Task
from archsearch.oneshot import ONESHOT, create_oneshot
from archsearch.spaces import SPACES, create_space
from archsearch.testing import OneShotSuite, suites
from conftest import TINY_SUPERNET_SPACES

TINY_SPACES = TINY_SUPERNET_SPACES
SUPERNET_SPACES = sorted(n for n in SPACES.names() if SPACES.get(n).has_supernet)
pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {name: dict(ONESHOT.get(name).small_options) for name in ONESHOT.names()}  # declared by each method


@pytest.mark.parametrize("name", ONESHOT.names())
def test_methods_declare_typed_options_extending_the_shared_ones(name):
    """The shared options (epochs, lr, batch_size, ...) are declared once, on the protocol; each
    method's own extend them, and its declared small options are valid ones."""
    from archsearch.oneshot.base import OneShotMethod
    from archsearch.options import declared

    cls = ONESHOT.get(name)
    assert issubclass(cls.Options, OneShotMethod.Options)
    shared = [d.name for d in declared(OneShotMethod.Options)]
    assert [d.name for d in declared(cls.Options)][: len(shared)] == shared
    method = create_oneshot(name, create_space("nb201", **TINY_SPACES["nb201"]), 0, device="cpu", **SMALL[name])
    assert {k: getattr(method.opts, k) for k in SMALL[name]} == SMALL[name]


def test_every_space_with_a_supernet_has_tiny_options():
    assert set(SUPERNET_SPACES) <= set(TINY_SPACES)


# each method runs two epochs on every space with a supernet, derives an architecture the space
# accepts, and resumes from its checkpoint to the same result (the shipped suite, small options
# as each method and space declares them)
suites(OneShotSuite, ONESHOT.names(), globals())


def test_kill_9_during_a_one_shot_search_resumes_to_the_same_result(tmp_path):
    """A real kill -9 between epochs, then ``archsearch resume``: the epochs continue from the
    checkpoint and the journal ends like an uninterrupted search's."""
    args = ["search", "--space", "nb201", "--strategy", "darts", "--set", "space.channels=4",
            "--set", "space.cells_per_stage=1", "--set", "strategy.epochs=8", "--set", "strategy.batch_size=32",
            "--data-fraction", "0.3", "--epochs", "1", "--set", "final.enabled=false", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def epochs(out):
        path = os.path.join(out, "journal.sqlite")
        try:
            with sqlite3.connect(path) as db:
                return [json.loads(r[0]) for r in db.execute("SELECT record FROM epochs ORDER BY epoch")]
        except sqlite3.DatabaseError:  # not created yet, or caught mid-creation
            return []

    killed = str(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, "-m", "archsearch", *args, "--out", killed], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(epochs(killed)) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(epochs(killed)) < 8
    done = subprocess.run([sys.executable, "-m", "archsearch", "resume", killed, "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    straight = str(tmp_path / "straight")
    done = subprocess.run([sys.executable, "-m", "archsearch", *args, "--out", straight], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    a, b = epochs(killed), epochs(straight)
    assert [r["epoch"] for r in a] == list(range(1, 9))
    assert [r["alphas"] for r in a] == [r["alphas"] for r in b]
    assert json.load(open(os.path.join(killed, "best.json")))["arch"] == \
        json.load(open(os.path.join(straight, "best.json")))["arch"]


CLI_SPACES = {
    "darts": ["--set", "space.channels=4", "--set", "space.cells=2", "--set", "space.nodes=2",
              "--set", "space.final_channels=4", "--set", "space.final_cells=2",
              "--set", "space.final_auxiliary=false"],
    "nb201": ["--set", "space.channels=4", "--set", "space.cells_per_stage=1"],
    "skip_chain": ["--set", "space.layers=3", "--set", "space.filters=[4,8]", "--set", "space.supernet_filters=8",
                   "--set", "space.stem_channels=4"],
}


@pytest.mark.parametrize("name, space_name", [(n, s) for n in ONESHOT.names() for s in ("darts", "nb201")]
                         + [("enas", "skip_chain")])
def test_cli_runs_each_method(run_cli, tmp_path, name, space_name):
    """The issue's matrix: every method on the cell space and NAS-Bench-201, ENAS on chain-with-skips;
    search, evaluation of the derived architecture and final training from scratch."""
    out = str(tmp_path / name)
    options = [a for k, v in SMALL.get(name, {}).items() for a in ("--set", f"strategy.{k}={v}")]
    code, _, err = run_cli("search", "--space", space_name, "--strategy", name, *CLI_SPACES[space_name],
                           "--set", "strategy.epochs=1", "--set", "strategy.batch_size=64", *options,
                           "--data-fraction", "0.2", "--epochs", "1", "--set", "final.enabled=true",
                           "--set", "final.epochs=1", "--quiet", "--out", out)
    assert code == 0, err
    best = json.load(open(os.path.join(out, "best.json")))
    assert "test_acc" in best["metrics"]
    from archsearch.experiment import load_checkpoint

    model, ckpt = load_checkpoint(os.path.join(out, "best_model.pt"))  # final training from scratch, rebuilt
    assert ckpt["arch"] == best["arch"]


@pytest.mark.parametrize("space_name", SUPERNET_SPACES)
def test_as_run_is_the_network_a_path_runs(space_name):
    """ENAS and SPOS return ``as_run`` of what they scored: it must have the same path, be a fixed
    point, and (darts) never keep two ops on one edge, which the supernet cannot run."""
    import numpy as np

    space = create_space(space_name, **TINY_SPACES[space_name])
    net = space.supernet(Task((1, 8, 8), 3))
    rng = np.random.default_rng(0)
    shared = 0
    for _ in range(200):
        arch = space.sample(rng)
        ran = net.as_run(arch)
        assert space.validate(ran) == ran
        assert net.path(ran) == net.path(arch) and net.as_run(ran) == ran
        if space_name == "darts":
            for genes in (ran.normal, ran.reduce):
                for (op_a, j_a), (op_b, j_b) in zip(genes[::2], genes[1::2]):
                    if j_a == j_b:
                        shared += 1
                        assert "none" in (op_a, op_b)
    if space_name == "darts":
        assert shared > 0  # the sample did hit the lossy case
