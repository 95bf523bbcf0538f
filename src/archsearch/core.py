"""Plain value types shared by every part: the task, the fidelity, a proposal, a result, a trial."""

from __future__ import annotations

import enum
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

from archsearch.errors import ConfigError

if TYPE_CHECKING:
    from archsearch.spaces.base import Architecture


@dataclass(frozen=True)
class Task:
    """What a network is built for: input shape (C, H, W) and number of classes."""

    input_shape: tuple[int, ...]
    num_classes: int
    kind: str = "classification"

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(tuple(d["input_shape"]), int(d["num_classes"]), d.get("kind", "classification"))


MAX_SCALE = 16.0  # largest fidelity.width / fidelity.depth multiplier


@dataclass(frozen=True)
class Fidelity:
    """How much effort one evaluation spends. Lower fidelity is cheaper and (one hopes) keeps the ranking.

    ``resolution`` resizes square image inputs (None keeps the native size). ``width`` and
    ``depth`` scale the network: channels and layers/cells are multiplied by them and rounded, never
    below the space's minimum (:meth:`SearchSpace.scaled`); above 1 makes it larger.
    """

    epochs: int = 10
    data_fraction: float = 1.0
    resolution: Optional[int] = None
    width: float = 1.0
    depth: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise ConfigError(f"fidelity.epochs must be an integer >= 1, got {self.epochs!r}")
        if (not isinstance(self.data_fraction, (int, float)) or isinstance(self.data_fraction, bool)
                or not 0.0 < float(self.data_fraction) <= 1.0):
            raise ConfigError(f"fidelity.data_fraction must be in (0, 1], got {self.data_fraction!r}")
        if self.resolution is not None and (not isinstance(self.resolution, int) or self.resolution < 1):
            raise ConfigError(f"fidelity.resolution must be a positive integer or null, got {self.resolution!r}")
        for key in ("width", "depth"):
            value = getattr(self, key)
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                    or not 0.0 < value <= MAX_SCALE):
                raise ConfigError(f"fidelity.{key} must be a number in (0, {MAX_SCALE:g}] (a multiplier), "
                                  f"got {value!r}")
            object.__setattr__(self, key, float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def refined(self, changes: Optional[dict[str, Any]]) -> "Fidelity":
        """This fidelity with only the fields in ``changes`` replaced (a proposal refines the configured
        fidelity: successive halving sets the epochs, and the width, resolution or data fraction the
        user configured stay)."""
        if not changes:
            return self
        valid = [f.name for f in fields(self)]
        unknown = [k for k in changes if k not in valid]
        if unknown:
            raise ConfigError(f"unknown fidelity field(s) {', '.join(map(repr, unknown))} (valid: {', '.join(valid)})")
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fidelity":
        return cls(**d)  # journals written before width/depth existed lack them: the defaults apply


def incumbent(trials: Sequence[tuple[Any, ...]]) -> Optional[int]:
    """The number of the search's best trial among ``(number, reward, fidelity dict[, params])`` of complete ones.

    Rewards measured at different fidelities are not comparable (multi-fidelity strategies train
    most architectures briefly): the best is the highest reward among the trials at the highest
    fidelity reached, by training effort epochs x data_fraction x width x depth. Ties go to the
    smaller model (fewer ``params``, when given), then to the earlier trial. With one fidelity
    throughout, that is simply the highest reward.
    """
    if not trials:
        return None

    def effort(f: dict[str, Any]) -> float:
        return (float(f.get("epochs", 1)) * float(f.get("data_fraction", 1.0)) * float(f.get("width", 1.0))
                * float(f.get("depth", 1.0)))

    def params(t: tuple[Any, ...]) -> float:
        value = t[3] if len(t) > 3 else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf

    top = max(effort(t[2]) for t in trials)
    at_top = [(t[1], -params(t), -t[0]) for t in trials if effort(t[2]) >= top * (1 - 1e-9)]
    return -int(max(at_top)[2])


@dataclass(frozen=True)
class Proposal:
    """What a strategy asks to evaluate. ``fidelity`` holds only the fidelity fields the strategy
    sets (``{"epochs": 3}``); the trial runs at the configured fidelity refined by them
    (:meth:`Fidelity.refined`), None meaning the configured one as it is. ``parent`` is the id of
    the architecture it was derived from (for weight inheritance). ``ask_id`` numbers the
    strategy's asks and is required: make proposals with :meth:`Strategy.propose`, which stamps
    it. The trial made from the proposal carries it back in :meth:`Strategy.tell`, so a strategy
    matches tells to asks by id, never by architecture or order."""

    arch: "Architecture"
    fidelity: Optional[dict[str, Any]] = None
    parent: Optional[str] = None
    ask_id: int = field(kw_only=True)


class TrialState(str, enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.FAILED)


# Why a trial failed: its error starts with "<reason>: ". The reason decides what happens next:
# only a crash (the machinery failed, not the architecture) is retried, up to budget.max_retries.
FAILURE_REASONS: dict[str, str] = {
    "memory": "estimated to need more than evaluator.max_memory; not trained",
    "oom": "ran out of memory while training",
    "timeout": "passed its time limit (evaluator.timeout)",
    "crash": "its worker process died or its Ray node was lost",
    "nan": "its loss became NaN or infinite",
    "skipped": "not run: over a constraint, or too costly for the time left",
    "error": "any other exception (the error keeps where it happened)",
}
RETRYABLE_REASONS = frozenset({"crash"})


def failure_reason(error: Optional[str]) -> str:
    """The reason a failed trial's error names (``"error"`` when it names none)."""
    head = (error or "").split(":", 1)[0].strip()
    return head if head in FAILURE_REASONS and head != "error" and ":" in (error or "") else "error"


@dataclass
class EvalResult:
    """What an evaluator returns. ``curve`` holds intermediate values: one dict per step (epoch).

    ``weights`` (a CPU state dict) is set only by an evaluator asked to support weight
    inheritance; the experiment saves it to ``OUT/weights/<arch_id>.pt``, never to the journal.
    """

    status: TrialState
    metrics: dict[str, float] = field(default_factory=dict)
    cost: float = 0.0
    error: Optional[str] = None
    curve: list[dict[str, float]] = field(default_factory=list)
    weights: Optional[dict[str, Any]] = None

    @classmethod
    def failed(cls, error: str, cost: float = 0.0, curve: Optional[list[dict[str, float]]] = None,
               reason: Optional[str] = None, metrics: Optional[dict[str, float]] = None) -> "EvalResult":
        """A failed result; ``reason`` (a key of :data:`FAILURE_REASONS`) prefixes the error. ``metrics``
        keeps what was measured before the failure (the memory estimate, peak memory, CPU time)."""
        if reason is not None:
            assert reason in FAILURE_REASONS, reason
            error = f"{reason}: {error}"
        return cls(TrialState.FAILED, dict(metrics or {}), cost, error, curve or [])

    @property
    def reason(self) -> Optional[str]:
        """Why it failed (None when it did not)."""
        return failure_reason(self.error) if self.status is TrialState.FAILED else None


@dataclass
class Trial:
    """One row of the journal."""

    number: int
    arch: "Architecture"
    state: TrialState
    fidelity: Fidelity
    parent: Optional[str] = None
    metrics: dict[str, float] = field(default_factory=dict)
    reward: Optional[float] = None
    error: Optional[str] = None
    cost: float = 0.0
    attempts: int = 0
    ask_seq: int = 0
    tell_seq: Optional[int] = None
    curve: list[dict[str, float]] = field(default_factory=list)
    ask_id: Optional[int] = None  # the proposal's, when a strategy asked for this trial


@dataclass
class Summary:
    """What a finished search returns: ``best`` is the best trial (``best.arch``, ``best.metrics``,
    ``best.reward``), ``final`` the final training's record (``final["metrics"]["test_acc"]``; None
    without final training), ``model_path`` the found model's ``best_model.pt`` (None when no model
    was trained; load it with :func:`archsearch.load_model`)."""

    out_dir: str
    complete: int
    failed: int
    best: Optional[Trial]
    final: Optional[dict[str, Any]]

    @property
    def model_path(self) -> Optional[str]:
        path = os.path.join(self.out_dir, "best_model.pt")
        return path if os.path.isfile(path) else None


def trial_seed(seed: int, number: int) -> int:
    """A per-trial seed: the same trial gets the same seed when it is run again.

    Drawn through SeedSequence, so seeds of neighbouring trials (and the sub-seeds an
    evaluator derives from them) are unrelated. ``number`` -1 is the final training.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, number + 1]).generate_state(1)[0] % (2**31 - 1))
