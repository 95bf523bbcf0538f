"""``import archsearch`` is cheap: its public names load on first use, so no heavy library comes
with the import (benchmarks/startup.py measures the time; this checks the behaviour)."""

from __future__ import annotations

import subprocess
import sys

import archsearch


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in ('torch', 'optuna', 'ray', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_import_archsearch_loads_no_heavy_library():
    assert _loaded_after("import archsearch") == set()


def test_the_cli_help_loads_no_heavy_library():
    assert _loaded_after("import sys; sys.argv = ['archsearch', '--help']\nfrom archsearch.cli import app") == set()


def test_a_public_name_loads_its_module_on_first_use():
    assert {"optuna", "ray"}.isdisjoint(_loaded_after("from archsearch import Config, SPACES; SPACES.names()"))
    for name in archsearch.__all__:
        assert getattr(archsearch, name) is not None
    assert "registries" in dir(archsearch)
    assert set(archsearch.__all__) == set(archsearch._LAZY) | {"__version__"}


def test_an_unknown_name_is_an_attribute_error():
    try:
        archsearch.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_help_exits_zero():
    r = subprocess.run([sys.executable, "-m", "archsearch", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "search" in r.stdout
