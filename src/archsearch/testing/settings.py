"""Small instances built from what each component declares about itself (its ``small_options``)."""

from __future__ import annotations

import json
from typing import Any

from archsearch.spaces.base import SPACES, SearchSpace, create_space


def small_space(name: str, **overrides: Any) -> SearchSpace:
    """Space ``name`` built with its declared ``small_options`` (fast to build and train)."""
    return create_space(name, **{**SPACES.get(name).small_options, **overrides})


def small_supernet_space(name: str) -> SearchSpace:
    """Space ``name`` with its declared ``small_supernet_options`` (a supernet a test trains quickly;
    default: its ``small_options``)."""
    cls = SPACES.get(name)
    return create_space(name, **(cls.small_supernet_options or cls.small_options))


def small_strategy(name: str, space: SearchSpace, seed: int = 0, **overrides: Any) -> Any:
    from archsearch.strategies.base import STRATEGIES

    return STRATEGIES.create(name, space, seed, **{**STRATEGIES.get(name).small_options, **overrides})


def small_oneshot(name: str, space: SearchSpace, seed: int = 0, **overrides: Any) -> Any:
    from archsearch.oneshot.base import ONESHOT

    return ONESHOT.create(name, space, seed, **{**ONESHOT.get(name).small_options, **overrides})


def cli_space_args(name: str) -> list[str]:
    """CLI arguments selecting space ``name`` with its small options."""
    args = ["--space", name]
    for key, value in SPACES.get(name).small_options.items():
        args += ["--set", f"space.{key}={json.dumps(value)}"]
    return args
