"""Conformance suites every component must pass, shipped with the package (as ``optuna.testing``).

A suite is a pytest class; subclass it and name the component::

    from archsearch.testing import SpaceSuite

    class TestMySpace(SpaceSuite):
        space_name = "my_space"

or generate one class per registered component with :func:`suites`. Each component declares
its own test settings (``small_options``: a fast instance; see the protocol classes), so a new
component needs no entry in any test table. Requires pytest (``archsearch[dev]``).
"""

from __future__ import annotations

from typing import Any, Iterable

from archsearch.testing.evaluators import EvaluatorSuite
from archsearch.testing.executors import ExecutorSuite
from archsearch.testing.oneshot import OneShotSuite
from archsearch.testing.settings import cli_space_args, small_oneshot, small_space, small_strategy, small_supernet_space
from archsearch.testing.spaces import SpaceSuite
from archsearch.testing.strategies import StrategySuite


def suites(suite: type, names: Iterable[str], namespace: dict[str, Any]) -> None:
    """Put one ``Test_<name>`` subclass of ``suite`` per name into ``namespace`` (a test module's
    ``globals()``): the suite's ``<kind>_name`` attribute is set from ``suite.names_attribute``."""
    for name in names:
        cls_name = f"Test_{name}"
        namespace[cls_name] = type(cls_name, (suite,), {suite.names_attribute: name, "__module__":
                                                        namespace.get("__name__", suite.__module__)})


__all__ = ["EvaluatorSuite", "ExecutorSuite", "OneShotSuite", "SpaceSuite", "StrategySuite", "cli_space_args",
           "small_oneshot", "small_space", "small_strategy", "small_supernet_space", "suites"]
