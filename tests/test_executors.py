"""Every executor returns the same results as in-process evaluation; machinery failures become failed trials."""

from __future__ import annotations

import os

import pytest

from archsearch.core import EvalResult, Fidelity, TrialState
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator
from archsearch.execution import TrialCall, create_executor
from archsearch.spaces import create_space
from archsearch.testing.executors import drain

ARCHS = ["conv:3:16:relu|conv:3:16:relu", "sep_conv:3:16:gelu|max_pool:3:16:relu",
         "conv:1:16:tanh|identity:3:16:relu"]


def calls() -> list[TrialCall]:
    space = create_space("chain", layers=2, channels=[16], stem_channels=8)
    ev = TrainingEvaluator({"name": "digits"})
    return [TrialCall(ev, space, space.parse(a), Fidelity(epochs=1, data_fraction=0.3), seed=i)
            for i, a in enumerate(ARCHS)]



@pytest.fixture(scope="module")
def reference() -> dict[int, EvalResult]:
    return {i: call(threads=1) for i, call in enumerate(calls())}


def _same(results: dict[int, EvalResult], reference: dict[int, EvalResult]) -> None:
    assert sorted(results) == sorted(reference)
    for k, r in results.items():
        assert r.status is TrialState.COMPLETE, r.error
        assert r.metrics["valid_acc"] == reference[k].metrics["valid_acc"]
        assert r.metrics["train_loss"] == pytest.approx(reference[k].metrics["train_loss"], rel=1e-6)


def test_inline_executor(reference):
    with create_executor("inline", threads=1) as ex:
        for i, call in enumerate(calls()):
            ex.submit(i, call)
        assert ex.running() == 3
        _same(drain(ex), reference)
    with pytest.raises(ConfigError, match="one trial at a time"):
        create_executor("inline", workers=2)


@pytest.mark.slow
def test_process_executor_runs_in_parallel_and_matches(reference):
    with create_executor("process", workers=2, threads=1) as ex:
        for i, call in enumerate(calls()):
            ex.submit(i, call)
        _same(drain(ex), reference)


class DyingCall(TrialCall):
    """A worker killed mid-trial (as by the OOM killer)."""

    def __call__(self, threads=None):
        os._exit(9)


@pytest.mark.slow
def test_process_executor_survives_a_killed_worker(reference):
    good = calls()
    bad = DyingCall(*[getattr(good[0], f) for f in ("evaluator", "space", "arch", "fidelity", "seed")])
    with create_executor("process", workers=2, threads=1) as ex:
        ex.submit(99, bad)
        ex.submit(0, good[0])  # shares the pool the dying trial breaks
        results = drain(ex)
        assert results[99].reason == "crash" and "worker process died" in results[99].error
        assert "exit code 9" in results[99].error
        _same({0: results[0]}, {0: reference[0]})  # its own worker: not failed with the other
        ex.submit(1, good[1])
        _same(drain(ex), {1: reference[1]})


@pytest.mark.slow
def test_ray_executor_on_a_local_two_cpu_ray(reference):
    ray = pytest.importorskip("ray")
    with create_executor("ray", workers=2) as ex:
        for i, call in enumerate(calls()):
            ex.submit(i, call)
        results = drain(ex, timeout=180)
        assert ray.is_initialized()
        assert ray.cluster_resources().get("CPU") == 2
        _same(results, reference)
    assert not ray.is_initialized()  # the executor shuts down the Ray it started


@pytest.mark.slow
def test_search_joins_an_existing_ray_cluster(tmp_path):
    """``--ray-address`` connects to a running cluster (a token-authenticated head node on loopback,
    as Ray starts them by default) and leaves it running for the next search."""
    import json
    import secrets
    import socket
    import subprocess
    import sys

    from conftest import TINY_ARGS

    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    # the cluster's token reaches the driver through the environment, as it would for a user
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    "--include-dashboard=false"], check=True, env=env, capture_output=True, timeout=120)
    try:
        for run in ("first", "second"):  # the second search finds the cluster still up
            out = str(tmp_path / run)
            result = subprocess.run(
                [sys.executable, "-m", "archsearch", "search", "--out", out, "--budget", "2", "--workers", "2",
                 "--ray-address", f"127.0.0.1:{port}", *TINY_ARGS], env=env, capture_output=True, text=True,
                timeout=300)
            assert result.returncode == 0, result.stderr[-2000:]
            config = open(os.path.join(out, "config.yaml")).read()
            assert "name: ray" in config and f"ray_address: 127.0.0.1:{port}" in config
            shown = subprocess.run([sys.executable, "-m", "archsearch", "show", out, "--json"], env=env,
                                   capture_output=True, text=True, timeout=120)
            assert [t["state"] for t in json.loads(shown.stdout)["trials"]] == ["complete", "complete"]
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
