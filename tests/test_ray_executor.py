"""The Ray executor under failure: a worker killed mid-trial, a hung trial, errors raised by trial code,
and a search on a two-node local cluster."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

ray = pytest.importorskip("ray")

from archsearch.core import EvalResult, Fidelity, TrialState  # noqa: E402
from archsearch.estimation import TrainingEvaluator  # noqa: E402
from archsearch.estimation.base import TrialError  # noqa: E402
from archsearch.execution import TrialCall, create_executor  # noqa: E402
from archsearch.execution.ray import hard_limit, ray_failure  # noqa: E402
from archsearch.spaces import create_space  # noqa: E402
from archsearch.testing.executors import drain  # noqa: E402

# the calls below are defined here: ship them to Ray's workers by value (they cannot import this file)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def good_call(seed: int = 0) -> TrialCall:
    space = create_space("chain", layers=2, channels=[8], stem_channels=8)
    ev = TrainingEvaluator({"name": "digits"})
    return TrialCall(ev, space, space.parse("conv:3:8:relu|conv:3:8:relu"), Fidelity(epochs=1, data_fraction=0.3),
                     seed=seed)


def variant(cls: type, base: TrialCall, **extra: object) -> TrialCall:
    return cls(base.evaluator, base.space, base.arch, base.fidelity, base.seed, **extra)


@dataclass
class HangingCall(TrialCall):
    """Writes its worker's pid to ``pidfile``, then hangs (a stuck batch, a deadlock)."""

    pidfile: str = ""

    def __call__(self, threads=None):
        if self.pidfile:
            with open(self.pidfile + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(self.pidfile + ".tmp", self.pidfile)
        time.sleep(60)
        return EvalResult(TrialState.COMPLETE, {"valid_acc": 0.0})


@dataclass
class RaisingCall(TrialCall):
    """Raises out of the trial code (past run_trial, which never raises)."""

    error: str = "value"

    def __call__(self, threads=None):
        if self.error == "nan":
            raise TrialError("nan: loss became nan at epoch 1")
        if self.error == "memory":
            raise MemoryError("cannot allocate 1 GB")
        raise ValueError("boom")



@pytest.fixture(scope="module")
def executor():
    with create_executor("ray", workers=2) as ex:
        yield ex


def test_hard_limit_is_the_time_limit_plus_a_grace_or_the_executor_option():
    assert hard_limit(None, None) is None
    assert hard_limit(1.0, None) == 3.0  # at least 2 s of grace
    assert hard_limit(100.0, None) == pytest.approx(110.0)  # 10%
    assert hard_limit(100.0, 50.0) == 50.0
    assert hard_limit(None, 7.0) == 7.0


def test_ray_errors_are_classified():
    rex = ray.exceptions
    assert ray_failure(rex.WorkerCrashedError()).reason == "crash"
    assert ray_failure(rex.NodeDiedError("node 1 died")).reason == "crash"
    assert ray_failure(rex.ObjectLostError("ab" * 14, None, "")).reason == "crash"
    assert ray_failure(rex.LocalRayletDiedError()).reason == "crash"
    assert ray_failure(rex.OutOfMemoryError("task killed: node memory 96%")).reason == "oom"
    assert ray_failure(rex.TaskUnschedulableError("no node has 8 GPUs")).reason == "error"
    assert ray_failure(KeyError("x")).reason == "error"
    for result in (ray_failure(rex.WorkerCrashedError()), ray_failure(KeyError("x"))):
        assert result.status is TrialState.FAILED


@pytest.mark.slow
def test_errors_raised_by_trial_code_keep_their_reason(executor):
    base = good_call()
    for key, error in enumerate(("value", "nan", "memory")):
        executor.submit(key, variant(RaisingCall, base, error=error))
    results = drain(executor, timeout=120)
    assert results[0].reason == "error" and "ValueError: boom" in results[0].error
    assert results[1].reason == "nan" and results[1].error.startswith("nan: loss became nan")
    assert results[2].reason == "oom"


@pytest.mark.slow
def test_a_worker_killed_mid_trial_fails_only_that_trial(executor, tmp_path):
    pidfile = str(tmp_path / "pid")
    executor.submit(0, variant(HangingCall, good_call(), pidfile=pidfile))
    executor.submit(1, good_call())
    results: dict[int, EvalResult] = {}
    deadline = time.monotonic() + 120
    while not os.path.exists(pidfile) and time.monotonic() < deadline:
        results.update(dict(executor.wait(timeout=0.5)))
    pid = int(open(pidfile).read())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    results.update(drain(executor, timeout=120))
    assert results[0].status is TrialState.FAILED and results[0].reason == "crash", results[0].error
    assert results[1].status is TrialState.COMPLETE, results[1].error
    assert results[1].metrics["worker_pid"] != pid
    executor.submit(2, good_call(2))  # the executor goes on with a new worker
    assert drain(executor, timeout=120)[2].status is TrialState.COMPLETE


@pytest.mark.slow
def test_a_trial_past_its_hard_timeout_is_cancelled(executor, tmp_path):
    pidfile = str(tmp_path / "pid")
    executor.submit(0, variant(HangingCall, good_call(), pidfile=pidfile, timeout=1.0))
    executor.submit(1, good_call(1))
    results = drain(executor, timeout=30)  # the call sleeps 60 s; its limit is 1 s + 2 s of grace
    assert results[0].status is TrialState.FAILED and results[0].reason == "timeout", results[0].error
    assert results[1].status is TrialState.COMPLETE, results[1].error
    pid = int(open(pidfile).read())
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)  # its worker was killed, not left sleeping


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _node_of_worker(logs: str, pid: int) -> str:
    """The node a Ray worker ran on, from its own log (``python-core-worker-<id>_<pid>.log`` says
    ``node_id=...``): the worker is gone once the search's driver has exited."""
    names = [n for n in os.listdir(logs) if n.startswith("python-core-worker-") and n.endswith(f"_{pid}.log")]
    assert len(names) == 1, (pid, names)
    text = open(os.path.join(logs, names[0])).read()
    return text.split("node_id=", 1)[1].split()[0]


def _stop_cluster(temp_dir: str) -> None:
    """Stop the cluster started in ``temp_dir`` and only it (``ray stop`` would stop every Ray on the
    machine): its daemons name that directory on their command lines; their children (agents,
    workers) go with them."""
    def pids() -> list[int]:
        found = []
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if name.isdigit() and temp_dir.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
        return found

    daemons = pids()
    children = []
    for pid in daemons:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    children += [int(c) for c in f.read().split()]
        except OSError:
            pass
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        left = [p for p in daemons + children if _alive(p)]
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while any(_alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.mark.slow
def test_search_on_a_two_node_local_cluster(tmp_path):
    """A head and a second node with one CPU each, both on loopback: a two-worker search runs its
    trials on both, end to end, and the cluster stays usable for the next search."""
    import tempfile

    from conftest import TINY_ARGS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    import archsearch

    # the nodes' workers import this archsearch (not another install) and reach the token the driver uses
    src = os.path.dirname(os.path.dirname(os.path.abspath(archsearch.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="ray2n")  # short: Ray's unix sockets live there
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", *common,
                        "--include-dashboard=false"], check=True, env=env, capture_output=True, timeout=120)
        subprocess.run([ray_cli, "start", f"--address={address}", *common], check=True, env=env,
                       capture_output=True, timeout=120)
        out = str(tmp_path / "run")
        result = subprocess.run(
            # the first two trials start together (once both workers are warm): one on each node
            [sys.executable, "-m", "archsearch", "search", "--out", out, "--budget", "6", "--workers", "2",
             "--executor", "ray", "--ray-address", address, *TINY_ARGS, "--epochs", "3", "--data-fraction", "1"],
            env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        shown = subprocess.run([sys.executable, "-m", "archsearch", "show", out, "--json"], env=env,
                               capture_output=True, text=True, timeout=120)
        trials = json.loads(shown.stdout)["trials"]
        assert [t["state"] for t in trials] == ["complete"] * 6
        logs = os.path.join(temp_dir, "session_latest", "logs")
        nodes = {_node_of_worker(logs, int(t["metrics"]["worker_pid"])) for t in trials}
        assert len(nodes) == 2, nodes  # each node has one CPU: two trials at once need both
    finally:
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
