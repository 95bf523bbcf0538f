"""Training hyper-parameters as a search space: plain HPO, or joint with an architecture space.

Seed 002, "NAS vs HPO": HPO tunes learning rate and the like for a fixed architecture;
NAS searches the architecture. This space does either, or both at once:

* ``params`` names the hyper-parameters, each a spec::

      lr:           {type: float, low: 1.0e-4, high: 0.1, log: true}     # steps: 16 grid points
      weight_decay: {type: float, low: 0, high: 1.0e-3, steps: 5}
      epochs:       {type: int, low: 2, high: 20}                        # every integer
      batch_size:   {type: categorical, choices: [32, 64, 128]}          # or just [32, 64, 128]

  Names are the training settings the evaluator knows (``lr``, ``weight_decay``,
  ``batch_size``, ``optimizer``, ``label_smoothing``, ``epochs``) and every value is checked
  with the evaluator's own rules. Floats (and ints given ``steps``) are discretised into
  ``steps`` grid points, evenly spaced or, with ``log: true``, geometrically, each rounded to
  4 significant digits (duplicates after rounding dropped): the canonical encoding every
  strategy and the RL controller consume is a sequence of categorical decisions, so a
  continuous range becomes an ordered choice (the ``tpe`` strategy models that order).
* ``space`` (a mapping ``{name: chain, layers: 4, ...}``) joins an architecture space: joint
  search, the architecture's decisions followed by one decision per hyper-parameter
  (``hp.NAME``, names sorted so the order does not depend on the config file).
* without ``space``, or with ``arch`` given, it is plain HPO on the fixed architecture
  ``arch`` (a string of the architecture space; default :data:`DEFAULT_ARCH`; without
  ``space``, a ``chain`` space with as many layers as the string and at most 2 reductions).

String form: the architecture, ``@``, then ``name=value`` pairs in name order::

    conv:3:32:relu|conv:3:64:relu|conv:3:64:relu @ batch_size=64,lr=0.003981,optimizer=adamw

Networks are built by the architecture space (``final_space`` wraps its final space); the
hyper-parameters reach the evaluator through :meth:`HyperArch.training_overrides`
(see :func:`archsearch.estimation.training.training_overrides`). ``epochs`` replaces the
fidelity's epochs, so do not search it with a multi-fidelity strategy. No supernet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ArchsearchError, ConfigError, ParseError
from archsearch.options import Options, option
from archsearch.spaces.base import (
    SPACES, Architecture, Decision, DecisionKind, SearchSpace, create_space, register_space,
    scaled_copy, sized_kind,
)
from archsearch.spaces.checks import check_indices
from archsearch.spaces.hyperparams_grid import value_text, check_values, grid
from archsearch.spaces.capabilities import TRAINING_KEYS, CarriesTrainingOverrides
from archsearch.spaces.diagram import Diagram

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True, "steps": 9},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
}
DEFAULT_ARCH = "conv:3:32:relu|conv:3:64:relu|conv:3:64:relu"  # in chain; ~98% on digits


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the genotype -----------------------------------------------------------------
@dataclass(frozen=True)
class HyperArch(Architecture, CarriesTrainingOverrides):
    """An architecture of the inner space plus ``(name, value)`` hyper-parameters, in name order."""

    arch: Architecture
    params: tuple[tuple[str, Any], ...]
    space = "hyperparams"

    def __str__(self) -> str:
        return f"{self.arch} @ " + ",".join(f"{k}={value_text(v)}" for k, v in self.params)

    def training_overrides(self) -> dict[str, Any]:
        """The training settings this architecture carries (read by the training evaluator)."""
        return dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.arch.space, "arch": self.arch.to_dict(), "params": dict(self.params)}

    def canonical(self) -> dict[str, Any]:  # the architecture's; every hyper-parameter changes training
        return {**self.to_dict(), "arch": self.arch.canonical()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HyperArch":
        """Reads the inner architecture by its space name; the space's ``from_dict`` also validates."""
        inner_space = data["space"]
        if not isinstance(inner_space, str) or inner_space == cls.space or inner_space not in SPACES:
            raise ParseError(f"hyperparams architecture JSON: unknown architecture space {inner_space!r}")
        params = data["params"]
        if not isinstance(params, dict):
            raise ParseError("hyperparams architecture JSON: 'params' must be a mapping")
        inner = SPACES.get(inner_space).arch_type.from_dict(data["arch"])
        return cls(inner, tuple(sorted(params.items())))

    @classmethod
    def parse(cls, text: str) -> "HyperArch":
        raise ParseError("a hyperparams architecture string is read by its space (space.parse), "
                         "which knows the architecture space it joins")


# -- the options ------------------------------------------------------------------
def _inner_space(space: Any, arch: Optional[str]) -> SearchSpace:
    if space is None:
        layers = max(1, min(len(arch.split("|")) if isinstance(arch, str) else 3, 64))
        return create_space("chain", layers=layers, reductions=min(2, layers))
    if isinstance(space, str):
        space = {"name": space}
    if not isinstance(space, Mapping) or not isinstance(space.get("name"), str):
        raise ConfigError(f"space.space must be a mapping with the architecture space's name and options, "
                          f"e.g. {{name: chain, layers: 4}}, got {space!r}")
    options = {k: v for k, v in space.items() if k != "name"}
    if space["name"] == "hyperparams":
        raise ConfigError("space.space: a hyperparams space cannot join another hyperparams space")
    try:
        return create_space(space["name"], **options)
    except ConfigError as exc:  # its messages say space.KEY; here that is space.space.KEY
        raise ConfigError(f"space.space ({space['name']}): {exc}") from None


def _params_problem(params: Mapping[str, Any]) -> Optional[str]:
    """What is wrong with the ``params`` option (checked with the options, before anything is built)."""
    if not params:
        return "must be a non-empty mapping of name -> spec"
    try:
        for name in params:
            if name not in TRAINING_KEYS:  # before the grid, whose messages quote the name as it is
                return f"has unknown hyper-parameter {name!r} (valid: {', '.join(TRAINING_KEYS)})"
            check_values(str(name), grid(str(name), params[name]))
    except ConfigError as exc:
        return f"is invalid ({exc})"
    return None


def _space_problem(space: Mapping[str, Any]) -> Optional[str]:
    try:
        _inner_space(space, None)
    except ConfigError as exc:
        return f"is invalid ({exc})"
    return None


# -- the space ------------------------------------------------------------------------
@register_space("hyperparams")
class HyperparamSpace(SearchSpace):
    """Named training hyper-parameters, alone (HPO on ``arch``) or joined with an architecture space."""

    arch_type = HyperArch

    @dataclass(frozen=True)
    class Options(Options):
        params: Optional[dict[str, Any]] = option(
            None, "hyper-parameter name -> a list of values or {type, low, high, steps, log} (null: lr and "
                  "batch_size grids)", check=_params_problem)
        space: Optional[dict[str, Any]] = option(None, "the architecture space searched jointly, {name: ..., "
                                                       "**options} (null: a fixed architecture, plain HPO)",
                                                 check=_space_problem)
        arch: Optional[str] = option(None, "the fixed architecture of plain HPO (null: a small chain)")

    opts: Options
    small_options: ClassVar[Mapping[str, Any]] = {
        "space": {"name": "chain", "layers": 2, "channels": [4, 8], "stem_channels": 4},
        "params": {"lr": {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True, "steps": 3},
                   "batch_size": [16, 32]}}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        params, space, arch = self.opts.params, self.opts.space, self.opts.arch
        if params is None:
            params = DEFAULT_PARAMS
        self.grids: dict[str, tuple[Any, ...]] = {}
        for name in sorted(params):
            values = grid(str(name), params[name])
            check_values(str(name), values)
            self.grids[str(name)] = values
        self.names = tuple(self.grids)
        self._lookup = {n: {value_text(v): i for i, v in enumerate(g)} for n, g in self.grids.items()}
        self.params_option = {n: params[n] for n in sorted(params)}
        self.space_option = space
        self.inner = _inner_space(space, arch)
        self.fixed: Optional[Architecture] = None
        if arch is not None or space is None:
            text = arch if arch is not None else DEFAULT_ARCH
            try:
                self.fixed = self.inner.parse(text)
            except ArchsearchError as exc:
                raise ConfigError(f"space.arch {text!r} is not in the {self.inner.name} space: {exc}") from None
        self.arch_option = arch
        self._inner_decisions = [] if self.fixed is not None else self.inner.decisions()

    @property
    def joint(self) -> bool:
        """Whether the architecture is searched too (otherwise it is fixed: plain HPO)."""
        return self.fixed is None

    # -- the canonical encoding -----------------------------------------------------
    def decisions(self) -> list[Decision]:
        hps = [Decision(f"hp.{n}", self.grids[n], sized_kind(self.grids[n], DecisionKind.NUMERIC)) for n in self.names]
        return list(self._inner_decisions) + hps

    def _index(self, name: str, value: Any) -> int:
        """The grid index of ``value`` (by its text, else numerically), or ParseError."""
        i = self._lookup[name].get(value_text(value))
        if i is not None:
            return i
        if _number(value):
            for j, c in enumerate(self.grids[name]):
                if _number(c) and math.isclose(float(value), float(c), rel_tol=1e-9, abs_tol=1e-300):
                    return j
        raise ParseError(f"hyper-parameter {name}={value_text(value)} is not in the space "
                         f"(valid: {', '.join(map(value_text, self.grids[name]))})")

    def encode(self, arch: Architecture) -> list[int]:
        if not isinstance(arch, HyperArch):
            raise ParseError(f"expected a 'hyperparams' architecture, got {type(arch).__name__}")
        self.inner.validate(arch.arch)
        if self.fixed is not None and arch.arch != self.fixed:
            raise ParseError(f"the architecture is fixed in this space (space.arch): expected {self.fixed}, "
                             f"got {arch.arch}")
        names = tuple(k for k, _ in arch.params)
        if names != self.names:
            raise ParseError(f"expected hyper-parameters {', '.join(self.names)}, got {', '.join(names) or 'none'}")
        idx = self.inner.encode(arch.arch) if self.joint else []
        return idx + [self._index(k, v) for k, v in arch.params]

    def _hp(self, indices: Sequence[int]) -> tuple[tuple[str, Any], ...]:
        return tuple((n, self.grids[n][int(i)]) for n, i in zip(self.names, indices))

    def decode(self, indices: Sequence[int]) -> HyperArch:
        k = len(self._inner_decisions)
        if len(indices) != k + len(self.names):
            raise ParseError(f"expected {k + len(self.names)} decisions, got {len(indices)}")
        hp = list(indices[k:])
        check_indices(hp, self._hp_counts(), [f"hp.{n}" for n in self.names])
        inner = self.inner.decode(list(indices[:k])) if self.joint else self.fixed
        assert inner is not None
        return HyperArch(inner, self._hp(hp))

    def _hp_counts(self) -> np.ndarray:
        return np.array([len(self.grids[n]) for n in self.names], dtype=np.int64)

    # -- reading ----------------------------------------------------------------------
    def parse(self, text: str) -> HyperArch:
        if not isinstance(text, str) or not text.strip():
            raise ParseError("empty architecture string for space 'hyperparams'")
        if "@" not in text:
            raise ParseError("expected 'ARCHITECTURE @ name=value,...' (e.g. '... @ lr=0.001,batch_size=64')")
        arch_text, hp_text = text.rsplit("@", 1)
        inner = self.inner.parse(arch_text)
        values: dict[str, Any] = {}
        for token in hp_text.split(","):
            name, eq, raw = (s.strip() for s in token.partition("="))
            if not eq or not name or not raw:
                raise ParseError(f"hyper-parameter {token.strip()!r}: expected name=value")
            if name not in self.grids:
                raise ParseError(f"unknown hyper-parameter {name!r} (valid: {', '.join(self.names)})")
            if name in values:
                raise ParseError(f"hyper-parameter {name!r} given twice")
            values[name] = self._read_value(name, raw)
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ParseError(f"missing hyper-parameter(s): {', '.join(missing)}")
        return self.validate(HyperArch(inner, tuple((n, values[n]) for n in self.names)))  # type: ignore[return-value]

    def _read_value(self, name: str, raw: str) -> Any:
        i = self._lookup[name].get(raw)
        if i is None:
            try:
                number = float(raw)
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                i = self._index(name, number)
            else:
                raise ParseError(f"hyper-parameter {name}={raw} is not in the space "
                                 f"(valid: {', '.join(map(value_text, self.grids[name]))})")
        return self.grids[name][i]

    def from_dict(self, data: dict[str, Any]) -> HyperArch:
        try:
            if not isinstance(data, dict):
                raise ParseError("hyperparams architecture JSON must be an object")
            params = data["params"]
            if not isinstance(params, dict):
                raise ParseError("hyperparams architecture JSON: 'params' must be a mapping")
            if data["space"] != self.inner.name:
                raise ParseError(f"hyperparams architecture JSON: architecture space {data['space']!r}, "
                                 f"expected {self.inner.name!r}")
            inner = self.inner.from_dict(data["arch"])
            missing = [n for n in self.names if n not in params]
            extra = [n for n in params if n not in self.grids]
            if missing or extra:
                raise ParseError(f"hyperparams architecture JSON: expected hyper-parameters {', '.join(self.names)}")
            hp = tuple((n, self.grids[n][self._index(n, params[n])]) for n in self.names)
            return self.validate(HyperArch(inner, hp))  # type: ignore[return-value]
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError(f"malformed 'hyperparams' architecture JSON: {exc!r}") from exc

    # -- search operators: the architecture space's own, plus uniform hyper-parameter moves ---
    def sample(self, rng: np.random.Generator) -> HyperArch:
        inner = self.inner.sample(rng) if self.joint else self.fixed
        assert inner is not None
        hp = (rng.random(len(self.names)) * self._hp_counts()).astype(np.int64).tolist()
        return HyperArch(inner, self._hp(hp))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> HyperArch:
        """One decision changes: the architecture's (its space's mutation) or a hyper-parameter's,
        in proportion to how many decisions of each can change."""
        idx = self.encode(arch)
        assert isinstance(arch, HyperArch)
        counts = self._hp_counts()
        hp_mutable = np.flatnonzero(counts > 1)
        inner_mutable = sum(len(d.choices) > 1 for d in self._inner_decisions)
        total = inner_mutable + len(hp_mutable)
        if total == 0:
            return arch
        pick = int(rng.integers(total))
        if pick < inner_mutable:
            return HyperArch(self.inner.mutate(arch.arch, rng), arch.params)
        hp = idx[len(self._inner_decisions):]
        j = int(hp_mutable[pick - inner_mutable])
        new = int(rng.integers(counts[j] - 1))
        hp[j] = new if new < hp[j] else new + 1
        return HyperArch(arch.arch, self._hp(hp))

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> HyperArch:
        assert isinstance(a, HyperArch) and isinstance(b, HyperArch)
        inner = self.inner.crossover(a.arch, b.arch, rng) if self.joint else a.arch
        take = rng.random(len(self.names)) < 0.5
        return HyperArch(inner, tuple(x if t else y for x, y, t in zip(a.params, b.params, take)))

    # -- building and pictures -------------------------------------------------------
    def build(self, arch: Architecture, task: Task) -> nn.Module:
        self.validate(arch)
        assert isinstance(arch, HyperArch)
        return self.inner.build(arch.arch, task)

    def final_space(self) -> SearchSpace:
        """This space over the architecture space's final space (same hyper-parameters)."""
        final = self.inner.final_space()
        if final is self.inner:
            return self
        options: dict[str, Any] = {"params": self.params_option,
                                   "space": {"name": final.name, **final.options()}}
        if self.fixed is not None:
            options["arch"] = str(self.fixed)
        return create_space("hyperparams", **options)

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> SearchSpace:
        """This space over the architecture space scaled (the architecture space says how, or refuses)."""
        inner = self.inner.scaled(width, depth)
        return self if inner is self.inner else scaled_copy(self, inner=inner)

    def feature_kinds(self) -> tuple[str, ...]:
        return self.inner.feature_kinds() if self.joint else ("onehot",)

    def features(self, arch: Architecture, kind: str = "onehot") -> np.ndarray:
        """The architecture space's features (joint search) followed by a one-hot block per hyper-parameter."""
        if kind not in self.feature_kinds():
            raise ConfigError(f"space {self.name!r} has no {kind!r} encoding "
                              f"(valid: {', '.join(self.feature_kinds())})")
        idx = self.encode(arch)
        assert isinstance(arch, HyperArch)
        counts = self._hp_counts()
        hp = np.zeros(int(counts.sum()), dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        hp[offsets + np.asarray(idx[len(self._inner_decisions):], dtype=np.int64)] = 1.0
        if not self.joint:
            return hp
        return np.concatenate([self.inner.features(arch.arch, kind).astype(np.float32), hp])

    def diagram(self, arch: Architecture) -> Diagram:
        """The architecture's diagram plus a node listing the training hyper-parameters."""
        self.validate(arch)
        assert isinstance(arch, HyperArch)
        d = self.inner.diagram(arch.arch)
        d.title = f"hyperparams: {arch}"
        label = "train: " + ", ".join(f"{k}={value_text(v)}" for k, v in arch.params)
        node = d.node("hyperparams", label)
        if d.nodes and d.nodes[0][0] != node:
            d.edge(node, d.nodes[0][0], "trains")
        return d
