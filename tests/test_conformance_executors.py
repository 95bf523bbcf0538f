"""Every registered executor passes the shipped executor suite (archsearch.testing)."""

from __future__ import annotations

from archsearch.execution import EXECUTORS
from archsearch.testing import ExecutorSuite, suites

suites(ExecutorSuite, EXECUTORS.names(), globals())
