"""Executors: where trials run (in process, a local process pool, Ray)."""

from archsearch.execution.base import (
    EXECUTORS, Executor, TrialCall, create_executor, default_threads, list_executors, register_executor,
)
from archsearch.execution.local import InlineExecutor, ProcessExecutor
from archsearch.execution.ray import RayExecutor

__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "ProcessExecutor", "RayExecutor", "TrialCall",
           "create_executor", "default_threads", "list_executors", "register_executor"]
