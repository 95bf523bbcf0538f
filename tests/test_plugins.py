"""Adding a component takes one file: a plugin package found through its entry points, or a module
dropped into archsearch's own package, is registered, listed by the CLI and passes the shipped
conformance suites (examples/plugin holds both components and their suite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"
SUITE = PLUGIN / "tests" / "test_conformance.py"
pytestmark = pytest.mark.slow


def _run(args: list[str], pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_an_installed_plugin_is_found_by_the_cli_and_passes_the_suite(tmp_path):
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            "--target", str(target), str(PLUGIN)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    path = [target, ROOT / "src"]
    listed = _run([sys.executable, "-m", "archsearch", "list"], path, tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "stack" in listed.stdout and "hill" in listed.stdout
    searched = _run([sys.executable, "-m", "archsearch", "search", "--space", "stack", "--strategy", "hill",
                     "--budget", "2", "--epochs", "1", "--data-fraction", "0.2", "--set", "final.enabled=false",
                     "--set", "report=false", "--out", str(tmp_path / "run"), "--quiet"], path, tmp_path)
    assert searched.returncode == 0, searched.stderr[-2000:]
    suite = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)], path, tmp_path)
    assert suite.returncode == 0, suite.stdout[-3000:]
    assert " passed" in suite.stdout and "failed" not in suite.stdout


def test_one_file_dropped_into_the_package_is_a_new_space_and_strategy(tmp_path):
    """No import line, no test table: copy the package, add one file per component, run the suite."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "archsearch", copy / "archsearch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PLUGIN / "archsearch_stack" / "space.py", copy / "archsearch" / "spaces" / "stack.py")
    shutil.copy(PLUGIN / "archsearch_stack" / "strategy.py", copy / "archsearch" / "strategies" / "hill.py")
    listed = _run([sys.executable, "-c", "import archsearch; r = archsearch.registries(); "
                   "print(r['space'].names(), r['strategy'].names())"], [copy], tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "'stack'" in listed.stdout and "'hill'" in listed.stdout
    suite = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)], [copy], tmp_path)
    assert suite.returncode == 0, suite.stdout[-3000:]
    assert " passed" in suite.stdout and "failed" not in suite.stdout
