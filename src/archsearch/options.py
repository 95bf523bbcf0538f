"""Typed options: every registered component declares its options once, as a dataclass.

A component class carries ``Options``, a frozen dataclass whose fields are made with
:func:`option` (default, one-line help, bounds, choices). :func:`parse` is the one place that
checks and converts user values (from YAML, ``--set`` or Python keywords) and words the
errors: the option's full name, the bad value and what is valid. The registry reads the same
fields for ``list``/``--help`` text and for a config's resolved defaults, so nothing about an
option is written twice.

Rules a component keeps: its ``__init__`` takes the framework's own arguments (space, seed,
data...) positionally and the user's options as ``**options``, and hands them to
:func:`parse` (the protocol base classes do this); it reads ``self.opts.NAME``. Rules that tie
two options together go in the dataclass's ``__post_init__`` and raise :func:`invalid`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar, Literal, Mapping, Optional, Sequence, Union

from archsearch.errors import ConfigError

Check = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class Spec:
    """What an option accepts besides its type: bounds, choices and an extra rule."""

    help: str
    low: Optional[float] = None  # inclusive unless low_open
    high: Optional[float] = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    choices: Optional[tuple[Any, ...]] = None
    check: Optional[Check] = None  # returns what is wrong with a value, or None

    def bounds(self) -> str:
        if self.low is None and self.high is None:
            return ""
        if self.high is None:
            return f" {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.low is None:
            return f" {'<' if self.high_open else '<='} {_num(self.high)}"
        return (f" in {'(' if self.low_open else '['}{_num(self.low)}, "
                f"{_num(self.high)}{')' if self.high_open else ']'}")


def _num(x: Optional[float]) -> str:
    return "" if x is None else (str(int(x)) if float(x).is_integer() else f"{x:g}")


def option(default: Any = MISSING, help: str = "", *, low: Optional[float] = None, high: Optional[float] = None,
           above: Optional[float] = None, below: Optional[float] = None, choices: Optional[Sequence[Any]] = None,
           check: Optional[Check] = None, factory: Optional[Callable[[], Any]] = None) -> Any:
    """A dataclass field for an option. ``low``/``high`` are inclusive bounds, ``above``/``below``
    exclusive ones; ``factory`` makes a mutable default."""
    if above is not None and low is not None or below is not None and high is not None:
        raise ValueError("give low or above, high or below, not both")
    spec = Spec(help=help, low=low if above is None else above, high=high if below is None else below,
                low_open=above is not None, high_open=below is not None,
                choices=tuple(choices) if choices is not None else None, check=check)
    if factory is not None:
        return field(default_factory=factory, metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


@dataclass(frozen=True)
class Options:
    """Base of every options dataclass: no options."""


class Configurable:
    """A registered component. ``Options`` declares its options; :meth:`configure` parses the
    user's keywords into ``opts``. The registry sets ``name`` and ``section`` (the config section
    its options live in) when it registers the class."""

    name: ClassVar[str] = ""
    section: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Options: ClassVar[type] = Options
    # options for a small, fast instance: what the conformance suites (archsearch.testing) build
    small_options: ClassVar[Mapping[str, Any]] = {}
    opts: Any

    def configure(self, options: Mapping[str, Any]) -> None:
        cls = type(self)
        label = f"{cls.kind} {cls.name!r}" if cls.name else cls.__name__
        self.opts = parse(cls.Options, options, cls.section or cls.__name__, label)


class OptionError(ConfigError):
    """One option's value is wrong (raised by :func:`invalid` inside ``__post_init__``)."""


def invalid(name: str, problem: str) -> OptionError:
    """An error for option ``name`` from a cross-option rule; :func:`parse` prefixes the section."""
    return OptionError(f"{name} {problem}")


# -- reading the declarations ------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """One option as declared: what ``list``/``--help`` show and what :func:`parse` enforces."""

    name: str
    type: Any
    default: Any  # MISSING when required
    spec: Spec

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def type_text(self) -> str:
        return _phrase(self.type)

    def rule_text(self) -> str:
        if self.spec.choices is not None:
            return "one of " + ", ".join(_show(c) for c in self.spec.choices)
        return _phrase(self.type, self.spec.bounds())


_HINTS: dict[type, dict[str, Any]] = {}


def declared(options_type: type) -> list[Declared]:
    """The options of an ``Options`` dataclass, in declaration order."""
    hints = _HINTS.get(options_type)
    if hints is None:
        hints = _HINTS[options_type] = typing.get_type_hints(options_type)
    out = []
    for f in fields(options_type):
        if f.name.startswith("_"):
            continue
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        out.append(Declared(f.name, hints[f.name], default, f.metadata.get("option") or Spec(help="")))
    return out


# -- checking and converting -------------------------------------------------------


def parse(options_type: type, raw: Mapping[str, Any], where: str, component: str = "") -> Any:
    """``options_type`` built from ``raw``: unknown names, wrong types, values out of bounds or
    not among the choices, and broken cross-option rules are a :class:`ConfigError` naming the
    option as ``where.NAME`` (e.g. ``strategy.population_size``)."""
    decl = declared(options_type)
    names = [d.name for d in decl]
    for key in raw:
        if key not in names:
            raise ConfigError(f"unknown option {key!r} for {component or where} "
                              f"(valid: {', '.join(names) if names else 'none'})")
    values: dict[str, Any] = {}
    for d in decl:
        if d.name in raw:
            values[d.name] = convert(d, raw[d.name], f"{where}.{d.name}")
        elif d.required:
            raise ConfigError(f"{where}.{d.name} is required ({d.rule_text()}: {d.spec.help})")
    try:
        return options_type(**values)
    except OptionError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def convert(d: Declared, value: Any, full_name: str) -> Any:
    """``value`` as option ``d`` holds it, or a ConfigError naming ``full_name``."""
    spec = d.spec
    ok, out = _coerce(d.type, value)
    if spec.choices is not None and (not ok or out not in spec.choices):
        raise ConfigError(f"{full_name} must be one of: {', '.join(_show(c) for c in spec.choices)} "
                          f"(got {value!r})")
    if not ok:
        raise ConfigError(f"{full_name} must be {_phrase(d.type, spec.bounds())}, got {value!r}")
    if isinstance(out, (int, float)) and not isinstance(out, bool) and not _in_bounds(spec, out):
        raise ConfigError(f"{full_name} must be {_phrase(d.type, spec.bounds())}, got {value!r}")
    if spec.check is not None and out is not None:
        problem = spec.check(out)
        if problem:
            raise ConfigError(f"{full_name} {problem}, got {value!r}")
    return out


def _in_bounds(spec: Spec, x: float) -> bool:
    if isinstance(x, float) and math.isnan(x):
        return spec.low is None and spec.high is None
    if spec.low is not None and (x <= spec.low if spec.low_open else x < spec.low):
        return False
    if spec.high is not None and (x >= spec.high if spec.high_open else x > spec.high):
        return False
    return True


def _coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """(accepted, converted): ints are not bools, floats take ints, sequences take lists or tuples."""
    if tp is Any:
        return True, value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, out = _coerce(arm, value)
            if ok:
                return True, out
        return False, None
    if tp is type(None):
        return value is None, None
    if origin is Literal:
        return (value in typing.get_args(tp)), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if tp is str:
        return isinstance(value, str), value
    if origin in (list, tuple, Sequence, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, None
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length
            if len(args) != len(value):
                return False, None
            items = [_coerce(a, v) for a, v in zip(args, value)]
        else:
            items = [_coerce(args[0] if args else Any, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, None
        converted = [v for _, v in items]
        return True, (list(converted) if origin is list or tp is list else tuple(converted))
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, dict):
            return False, None
        args = typing.get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            ok_k, k2 = _coerce(args[0], k)
            ok_v, v2 = _coerce(args[1], v)
            if not (ok_k and ok_v):
                return False, None
            out[k2] = v2
        return True, out
    if isinstance(tp, type):
        return isinstance(value, tp), value
    raise TypeError(f"option type {tp!r} is not supported")  # a declaration bug, not user input


def _phrase(tp: Any, bounds: str = "") -> str:
    """What a type accepts, in words: ``an integer >= 1``, ``a list of strings``, ``... or null``."""
    if tp is Any:
        return "any value"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        text = " or ".join(_phrase(a, bounds) for a in arms)
        return text + " or null" if len(arms) < len(typing.get_args(tp)) else text
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in typing.get_args(tp))
    if tp is bool:
        return "true or false"
    if tp in (int, float, str):
        return {int: "an integer", float: "a number", str: "a string"}[tp] + bounds
    if origin in (list, tuple, Sequence, typing.Sequence) or tp in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} ({', '.join(_phrase(a) for a in args)})"
        item = args[0] if args else Any
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(item)
        return f"a list of {plural or _phrase(item)}{bounds}"
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        return "a mapping"
    return f"a {getattr(tp, '__name__', str(tp))}"


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def as_dict(opts: Any) -> dict[str, Any]:
    """An options instance as plain keywords (what :func:`parse` reads back)."""
    return {f.name: getattr(opts, f.name) for f in fields(opts) if not f.name.startswith("_")}


def replace(opts: Any, **changes: Any) -> Any:
    return dataclasses.replace(opts, **changes)


# -- reusable rules for ``option(check=...)`` ------------------------------------------


def all_of(*checks: Check) -> Check:
    """The first problem any of ``checks`` finds."""
    def check(value: Any) -> Optional[str]:
        for c in checks:
            problem = c(value)
            if problem:
                return problem
        return None
    return check


def nonempty_distinct(values: Sequence[Any]) -> Optional[str]:
    """A list option that must name at least one value and none twice."""
    if not values:
        return "must be a non-empty list"
    if len(set(values)) != len(values):
        return f"lists a value twice: {list(values)}"
    return None


def each_in(valid: Sequence[Any]) -> Check:
    """Every item of a list option is one of ``valid``."""
    def check(values: Sequence[Any]) -> Optional[str]:
        for v in values:
            if v not in valid:
                return f"has unknown {v!r} (valid: {', '.join(map(str, valid))})"
        return None
    return check


def positive_ints(values: Sequence[int]) -> Optional[str]:
    """A non-empty list of integers >= 1 (shapes, sizes)."""
    return None if values and all(v >= 1 for v in values) else "must be a non-empty list of positive integers"


def finite(value: float) -> Optional[str]:
    """A number option that may not be NaN or infinite (bounds already exclude them)."""
    return None if math.isfinite(value) else "must be a finite number"


def each_between(low: float, high: float) -> Check:
    """Every number of a list option is in ``low..high``."""
    def check(values: Sequence[Any]) -> Optional[str]:
        for v in values:
            if not low <= v <= high:
                return f"must hold numbers in {_num(low)}..{_num(high)}"
        return None
    return check
