"""Typed options: one declaration per component gives the checks, the messages, the defaults and
the help text; random bad values for every option of every registered component are a
ConfigError naming the option, never a traceback."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Optional, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch import registries
from archsearch.config import Config
from archsearch.errors import ConfigError
from archsearch.options import Declared, Options, invalid, option, parse


@dataclass(frozen=True)
class Demo(Options):
    count: int = option(3, "how many", low=1, high=10)
    rate: float = option(0.5, "a share", above=0, below=1)
    mode: str = option("fast", "how", choices=("fast", "slow"))
    sizes: tuple[int, ...] = option((8, 16), "widths")
    limit: Optional[int] = option(None, "a cap or none", low=0)
    flag: bool = option(False, "on or off")

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit > self.count:
            raise invalid("limit", f"must be at most count ({self.count}), got {self.limit}")


def test_parse_converts_and_keeps_defaults():
    opts = parse(Demo, {"count": 4, "rate": 0.25, "sizes": [4, 8], "flag": True}, "strategy")
    assert (opts.count, opts.rate, opts.sizes, opts.flag, opts.mode) == (4, 0.25, (4, 8), True, "fast")
    assert isinstance(opts.rate, float)


@pytest.mark.parametrize("raw, message", [
    ({"count": 0}, "strategy.count must be an integer in [1, 10], got 0"),
    ({"count": True}, "strategy.count must be an integer in [1, 10], got True"),
    ({"count": "abc"}, "strategy.count must be an integer in [1, 10], got 'abc'"),
    ({"rate": 1.0}, "strategy.rate must be a number in (0, 1), got 1.0"),
    ({"mode": "medium"}, "strategy.mode must be one of: fast, slow (got 'medium')"),
    ({"sizes": [8, "x"]}, "strategy.sizes must be a list of integers, got [8, 'x']"),
    ({"limit": -1}, "strategy.limit must be an integer >= 0 or null, got -1"),
    ({"limit": 5, "count": 4}, "strategy.limit must be at most count (4), got 5"),
    ({"flag": "yes"}, "strategy.flag must be true or false, got 'yes'"),
    ({"bogus": 1}, "unknown option 'bogus' for strategy (valid: count, rate, mode, sizes, limit, flag)"),
])
def test_bad_values_name_the_option_the_value_and_what_is_valid(raw, message):
    with pytest.raises(ConfigError) as info:
        parse(Demo, raw, "strategy")
    assert str(info.value) == message


def _components() -> list[tuple[str, str, Declared]]:
    out = []
    for section, registry in registries().items():
        for name in registry.names():
            for d in registry.options(name):
                if d.type is not Any:
                    out.append((section, name, d))
    return out


def _bad_values(d: Declared) -> st.SearchStrategy[Any]:
    """Values that break ``d``'s declared type, bounds or choices."""
    tp, spec = d.type, d.spec
    arms = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
        Union, types.UnionType) else [tp]
    nullable = len(arms) < len(typing.get_args(tp) or (tp,))
    base = arms[0] if len(arms) == 1 else None
    wrong: list[st.SearchStrategy[Any]] = [st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2)]
    if base is int:
        wrong += [st.text(max_size=5), st.booleans(), st.floats(allow_nan=False).filter(lambda x: not x.is_integer())]
        if spec.low is not None:
            wrong.append(st.integers(max_value=int(spec.low) - 1))
        if spec.high is not None:
            wrong.append(st.integers(min_value=int(spec.high) + 1))
    elif base is float:
        wrong += [st.text(max_size=5), st.booleans(), st.lists(st.floats(), min_size=1, max_size=2)]
        if spec.low is not None:
            wrong.append(st.floats(max_value=spec.low, exclude_max=not spec.low_open, allow_nan=False))
        if spec.high is not None:
            wrong.append(st.floats(min_value=spec.high, exclude_min=not spec.high_open, allow_nan=False))
    elif base is bool:
        wrong += [st.text(max_size=5), st.integers(), st.floats(allow_nan=False)]
    elif base is str:
        wrong += [st.integers(), st.booleans(), st.lists(st.integers(), min_size=1, max_size=2)]
        if spec.choices is not None:
            wrong.append(st.text(max_size=8).filter(lambda s: s not in spec.choices))
    elif typing.get_origin(base) in (tuple, list):
        wrong += [st.integers(), st.booleans()]
        item = (typing.get_args(base) or (Any,))[0]
        if item in (int, float):
            wrong.append(st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=3))
        elif item is str:
            wrong.append(st.lists(st.integers(), min_size=1, max_size=3))
    if not nullable and base is not None:
        wrong.append(st.none())
    return st.one_of(*wrong)


COMPONENTS = _components()


@pytest.mark.parametrize("section, name, declared", COMPONENTS,
                         ids=[f"{s}-{n}-{d.name}" for s, n, d in COMPONENTS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_bad_values_are_a_config_error_naming_the_option(section, name, declared, data):
    bad = data.draw(_bad_values(declared))
    with pytest.raises(ConfigError) as info:
        Config.from_dict({section: {"name": name, declared.name: bad}})
    assert declared.name in str(info.value) and "\n" not in str(info.value)


def test_every_registered_component_declares_help_for_each_option():
    missing = [f"{s}.{n}.{d.name}" for s, n, d in COMPONENTS if not d.spec.help]
    assert not missing, f"options without a one-line help: {missing}"
