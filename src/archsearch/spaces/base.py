"""The search-space protocol: an architecture is plain data, a space describes and builds it.

Every space exposes one canonical encoding: a fixed-length sequence of categorical
decisions (:meth:`SearchSpace.decisions`, :meth:`encode`, :meth:`decode`). Sampling,
mutation, neighbours and crossover default to operations on that sequence, so a new
space gets every strategy for free and overrides only what its structure needs.
RL controllers and Optuna-style samplers consume the same sequence.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import torch.nn as nn

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.options import Configurable
from archsearch.registry import Registry
from archsearch.spaces.diagram import Diagram

if TYPE_CHECKING:
    from archsearch.spaces.supernet import Supernet


class Architecture(ABC):
    """An immutable genotype. Subclasses are frozen dataclasses.

    ``str(arch)`` is the human-readable form and ``type(arch).parse`` reads it back;
    ``to_dict``/``from_dict`` give the JSON form (the genotype as proposed, kept in the journal);
    ``id`` hashes :meth:`canonical`, so architectures that build the same network share one id.
    """

    space: ClassVar[str] = ""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture": ...

    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> "Architecture": ...

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def canonical(self) -> dict[str, Any]:
        """The JSON form with every field that does not change the built network normalised, and
        equivalent orderings sorted: two architectures with equal canonical forms build networks with
        the same modules, parameter names and shapes, and function. Default: :meth:`to_dict` (no
        redundancy); a space overrides it only for what its builder provably ignores."""
        return self.to_dict()

    @property
    def id(self) -> str:
        canonical = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.space}:{canonical}".encode()).hexdigest()[:16]


class DecisionKind(str, enum.Enum):
    """What a decision's index means, so strategies read it instead of guessing from names.

    * ``CATEGORICAL``: unordered choices (operations);
    * ``ORDINAL``: ordered choices where neighbours are similar (channel counts, kernel sizes);
    * ``NUMERIC``: ordered numbers (a hyper-parameter grid): ordinal, and the values are numbers;
    * ``INPUTS``: whether earlier output ``source`` feeds node ``node`` (choices :data:`INPUT_CHOICES`),
      the anchor-point decisions of chains with skips that an RL controller attends over.
    """

    CATEGORICAL = "categorical"
    ORDINAL = "ordinal"
    NUMERIC = "numeric"
    INPUTS = "inputs"

    @property
    def ordered(self) -> bool:
        return self in (DecisionKind.ORDINAL, DecisionKind.NUMERIC)


INPUT_CHOICES = (False, True)  # an INPUTS decision's choices: index 1 means "source feeds node"


def sized_kind(choices: Sequence[Any], kind: "DecisionKind" = DecisionKind.ORDINAL) -> DecisionKind:
    """``kind`` (ordinal or numeric) for a size-like option whose values the user lists (kernel
    sizes, channel counts, a learning-rate grid) when they increase, else CATEGORICAL: an
    unsorted list has no order for a strategy to exploit."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in choices)
    if numbers and all(a < b for a, b in zip(choices, choices[1:])):
        return kind
    return DecisionKind.CATEGORICAL


@dataclass(frozen=True)
class Decision:
    """One choice of the canonical encoding. ``kind`` says how its choices relate; an ``INPUTS``
    decision also names the ``node`` it belongs to and the earlier output ``source`` it may read."""

    name: str
    choices: tuple[Any, ...]
    kind: DecisionKind = DecisionKind.CATEGORICAL
    node: Optional[int] = None
    source: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kind is DecisionKind.INPUTS and (self.node is None or self.source is None
                                                 or tuple(self.choices) != INPUT_CHOICES):
            raise ValueError(f"decision {self.name}: an INPUTS decision needs node, source and choices "
                             f"{INPUT_CHOICES}")


class SearchSpace(Configurable, ABC):
    """Describes a set of architectures and builds networks from them.

    Constructor keyword arguments are the space's options (``--set space.KEY=VALUE``).
    """

    arch_type: ClassVar[type[Architecture]]

    def __init__(self, **options: Any) -> None:
        self.configure(options)  # ``self.opts``: the parsed ``Options``
        self._options = dict(options)  # as the user gave them: what configs and checkpoints store

    small_supernet_options: ClassVar[Mapping[str, Any]] = {}  # a supernet a test trains quickly ({}: small_options)

    # -- the canonical encoding --------------------------------------------------
    @abstractmethod
    def decisions(self) -> list[Decision]:
        """The fixed decision sequence of this space (depends on the options)."""

    @abstractmethod
    def encode(self, arch: Architecture) -> list[int]:
        """Choice indices, one per decision. Raises ParseError if ``arch`` is not in the space."""

    @abstractmethod
    def decode(self, indices: Sequence[int]) -> Architecture: ...

    # -- building ----------------------------------------------------------------
    @abstractmethod
    def build(self, arch: Architecture, task: Task) -> nn.Module:
        """A fresh, randomly initialised network for ``task``."""

    def final_space(self) -> "SearchSpace":
        """The space final training builds in ("search small, train big"). Default: this one."""
        return self

    def scaled(self, width: float = 1.0, depth: float = 1.0) -> "SearchSpace":
        """The space that builds every architecture ``width`` times as wide (channels) and ``depth``
        times as deep (layers, cells): a fidelity's network scale (rounded, never below the
        space's minimum). Same decisions, so the same architectures. Default: only 1.0 and 1.0."""
        if width == 1.0 and depth == 1.0:
            return self
        raise ConfigError(f"space {self.name!r} cannot scale width/depth (fidelity.width={width:g}, "
                          f"fidelity.depth={depth:g}); leave them at 1")

    def supernet(self, task: Task, partial_channels: Optional[int] = None) -> "Supernet":
        """A weight-sharing network over every architecture (one-shot search); not every space has
        one (``has_supernet``). ``partial_channels`` K builds PC-DARTS's partial-channel edges, only
        where ``supernet_partial_channels`` says so."""
        with_one = [n for n in SPACES.names() if SPACES.get(n).has_supernet]
        raise ConfigError(f"space {self.name!r} has no supernet for one-shot search "
                          f"(spaces with one: {', '.join(with_one) or 'none'})")

    # what the space's supernet can do, read by one-shot methods before they build it
    has_supernet: ClassVar[bool] = False
    supernet_partial_channels: ClassVar[bool] = False  # supernet(task, partial_channels=K) (PC-DARTS)
    supernet_node_groups: ClassVar[bool] = False  # its supernet sets node_groups (PC-DARTS edge normalisation)

    def check_partial_channels(self, partial_channels: int) -> None:
        """Raise ConfigError unless this space's supernet can use PC-DARTS's K = ``partial_channels``."""
        valid = [n for n in SPACES.names() if SPACES.get(n).supernet_partial_channels]
        raise ConfigError(f"strategy.partial_channels: the {self.name!r} supernet has no partial channels "
                          f"(valid spaces: {', '.join(valid)})")

    # -- encodings for predictors and pictures -----------------------------------
    def feature_kinds(self) -> tuple[str, ...]:
        """Names accepted by :meth:`features`; cell spaces add ``"path"``."""
        return ("onehot",)

    def features(self, arch: Architecture, kind: str = "onehot") -> np.ndarray:
        """A fixed-length float vector for predictors. ``onehot``: one block per decision."""
        if kind not in self.feature_kinds():
            raise ConfigError(f"space {self.name!r} has no {kind!r} encoding "
                              f"(valid: {', '.join(self.feature_kinds())})")
        decisions = self.decisions()
        out = np.zeros(sum(len(d.choices) for d in decisions), dtype=np.float32)
        offset = 0
        for d, i in zip(decisions, self.encode(arch)):
            out[offset + i] = 1.0
            offset += len(d.choices)
        return out

    def diagram(self, arch: Architecture) -> Diagram:
        """A picture of the architecture. Default: the decision sequence as a chain."""
        d = Diagram(title=f"{self.name}: {arch}")
        prev = d.node("input")
        for dec, i in zip(self.decisions(), self.encode(arch)):
            prev_next = d.node(dec.name, f"{dec.name}={dec.choices[i]}")
            d.edge(prev, prev_next)
            prev = prev_next
        d.edge(prev, "output")
        return d

    def options(self) -> dict[str, Any]:
        """The constructor options, to store in configs and checkpoints."""
        return dict(self._options)

    # -- parsing and validation --------------------------------------------------
    def validate(self, arch: Architecture) -> Architecture:
        if not isinstance(arch, self.arch_type):
            raise ParseError(f"expected a {self.name!r} architecture, got {type(arch).__name__}")
        self.encode(arch)
        return arch

    def parse(self, text: str) -> Architecture:
        if not isinstance(text, str) or not text.strip():
            raise ParseError(f"empty architecture string for space {self.name!r}")
        return self.validate(self.arch_type.parse(text))

    def from_dict(self, data: dict[str, Any]) -> Architecture:
        try:
            return self.validate(self.arch_type.from_dict(data))
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError(f"malformed {self.name!r} architecture JSON: {exc!r}") from exc

    # -- search operators (defaults over the decision sequence) ------------------
    def _choice_counts(self) -> np.ndarray:
        """Choices per decision, cached: options are fixed once a space is built."""
        counts = self.__dict__.get("_counts_cache")
        if counts is None:
            counts = np.array([len(d.choices) for d in self.decisions()], dtype=np.int64)
            self.__dict__["_counts_cache"] = counts
        return counts

    def sample(self, rng: np.random.Generator) -> Architecture:
        counts = self._choice_counts()
        # floor(u * k) is uniform on 0..k-1; one vector draw beats a call per decision
        return self.decode((rng.random(len(counts)) * counts).astype(np.int64).tolist())

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change exactly one decision to a different choice."""
        counts = self._choice_counts()
        idx = self.encode(arch)
        mutable = self.__dict__.get("_mutable_cache")
        if mutable is None:
            mutable = self.__dict__["_mutable_cache"] = np.flatnonzero(counts > 1)
        if len(mutable) == 0:
            return arch
        i = int(mutable[rng.integers(len(mutable))])
        new = int(rng.integers(counts[i] - 1))
        idx[i] = new if new < idx[i] else new + 1
        return self.decode(idx)

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """Every architecture one decision away, in a fixed order."""
        idx = self.encode(arch)
        out = []
        for i, d in enumerate(self.decisions()):
            for c in range(len(d.choices)):
                if c != idx[i]:
                    out.append(self.decode(idx[:i] + [c] + idx[i + 1 :]))
        return out

    def crossover(self, a: Architecture, b: Architecture, rng: np.random.Generator) -> Architecture:
        """Uniform crossover: each decision from either parent."""
        ia, ib = self.encode(a), self.encode(b)
        take = rng.random(len(ia)) < 0.5
        return self.decode([x if t else y for x, y, t in zip(ia, ib, take)])

    def size(self) -> int:
        """Number of points in the decision encoding (an upper bound on distinct networks)."""
        n = 1
        for d in self.decisions():
            n *= len(d.choices)
        return n


SPACES: Registry[SearchSpace] = Registry("space", package="archsearch.spaces", group="archsearch.spaces")
register_space = SPACES.register


def scale_count(value: int, factor: float, minimum: int = 1, even: bool = False) -> int:
    """``value * factor`` rounded half up (to an even number if ``even``), at least ``minimum``."""
    if factor == 1.0:
        return value
    n = 2 * math.floor(value * factor / 2 + 0.5) if even else math.floor(value * factor + 0.5)
    return max(minimum, int(n))


def scaled_copy(space: SearchSpace, **attributes: Any) -> SearchSpace:
    """A shallow copy of ``space`` with ``attributes`` set: :meth:`SearchSpace.scaled` for spaces
    whose scale lives in the architecture (channel choices), applied by their builder."""
    import copy

    out = copy.copy(space)
    out.__dict__.update(attributes)
    return out


def count_params_without_aux(model: nn.Module) -> int:
    """Parameters excluding auxiliary heads (submodules named ``auxiliary_head``), as papers report."""
    aux = {id(p) for name, m in model.named_modules() if name.split(".")[-1] == "auxiliary_head"
           for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in aux)


def create_space(name: str, **options: Any) -> SearchSpace:
    return SPACES.create(name, **options)


def list_spaces() -> list[str]:
    return SPACES.names()
