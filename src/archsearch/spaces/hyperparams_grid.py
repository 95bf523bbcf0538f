"""The hyperparams space's grids: a spec (a list of values, or ``{type, low, high, log, steps}``)
becomes the ordered tuple of values one decision chooses from, checked with the training
evaluator's own rules for each setting."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from archsearch.errors import ConfigError
from archsearch.spaces.capabilities import TRAINING_KEYS, check_training_setting

DEFAULT_STEPS = 16
MAX_INT_VALUES = 256
SPEC_KEYS = {"float": ("type", "low", "high", "log", "steps"), "int": ("type", "low", "high", "log", "steps"),
             "categorical": ("type", "choices")}


TOKEN = re.compile(r"^[A-Za-z0-9_.+\-]+$")


def value_text(value: Any) -> str:
    """The canonical text of a value: ``repr`` for floats (exact round trip), ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def grid(name: str, spec: Any) -> tuple[Any, ...]:
    """The choices of one hyper-parameter from its spec (ConfigError naming space.params.NAME)."""
    where = f"space.params.{name}"
    if isinstance(spec, (list, tuple)):
        spec = {"type": "categorical", "choices": list(spec)}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping such as {{type: float, low: 0.0001, high: 0.1, log: true}} "
                          f"or a list of choices, got {spec!r}")
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    if kind not in SPEC_KEYS:
        raise ConfigError(f"{where}.type must be one of: {', '.join(SPEC_KEYS)} (got {kind!r})")
    for key in spec:
        if key not in SPEC_KEYS[kind]:
            raise ConfigError(f"{where}: unknown key {key!r} for type {kind} (valid: {', '.join(SPEC_KEYS[kind])})")
    if kind == "categorical":
        choices = spec.get("choices")
        if isinstance(choices, (str, bytes)) or not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list, got {choices!r}")
        for c in choices:
            if not isinstance(c, (str, int, float)) or (isinstance(c, float) and not math.isfinite(c)):
                raise ConfigError(f"{where}.choices: {c!r} is not a number, string or boolean")
            if isinstance(c, str) and not TOKEN.match(c):
                raise ConfigError(f"{where}.choices: {c!r} must be a word of letters, digits, '_', '.', '+', '-'")
        texts = [value_text(c) for c in choices]
        if len(set(texts)) != len(texts):
            raise ConfigError(f"{where}.choices lists a value twice: {list(choices)}")
        return tuple(choices)
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    integer = kind == "int"
    for key, value in (("low", low), ("high", high)):
        ok = (isinstance(value, int) and not isinstance(value, bool)) if integer else _number(value)
        if not ok or not math.isfinite(value):
            raise ConfigError(f"{where}.{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not low <= high:
        raise ConfigError(f"{where}: low must be <= high, got low={low!r}, high={high!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got low={low!r}")
    steps = spec.get("steps", None if integer else DEFAULT_STEPS)
    if steps is None:  # int: every value
        if high - low + 1 > MAX_INT_VALUES:
            raise ConfigError(f"{where}: {high - low + 1} integers is too many choices; give steps "
                              f"(at most {MAX_INT_VALUES} grid points)")
        return tuple(range(low, high + 1))
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_INT_VALUES:
        raise ConfigError(f"{where}.steps must be an integer in 1..{MAX_INT_VALUES}, got {steps!r}")
    if steps == 1 or low == high:
        points = [float(low)]
    elif log:
        points = np.geomspace(low, high, steps).tolist()
    else:
        points = np.linspace(low, high, steps).tolist()
    values = [int(round(p)) for p in points] if integer else [float(f"{p:.4g}") for p in points]
    return tuple(dict.fromkeys(values))  # drop duplicates made by rounding, keep order


def check_values(name: str, choices: Sequence[Any]) -> None:
    if name not in TRAINING_KEYS:
        raise ConfigError(f"space.params: unknown hyper-parameter {name!r} "
                          f"(valid: {', '.join(TRAINING_KEYS)}; the training evaluator's settings)")
    for value in choices:
        check_training_setting(name, value, "space.params")
