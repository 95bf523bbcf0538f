"""Multiple objectives: latency measured on this machine, MnasNet's weighted reward, hard
constraints, and the Pareto machinery (non-dominated sorting, crowding, 2-D hypervolume)
that the ``nsga2`` strategy and ``archsearch show`` share.

Conventions. An objective is written ``METRIC:max`` or ``METRIC:min`` (``valid_acc:max``,
``params:min``). Internally every point is a tuple to *minimise*: a maximised metric enters
negated (:func:`as_minimised`). Everything but :func:`measure_latency` is plain Python.

Constraints (``max_params``, ``max_flops``, ``max_latency``) never fail a trial: a violating
trial completes with ``feasible`` 0 and ``violation`` > 0 (the summed relative excess over
each limit), so NSGA-II can still rank it by Deb's constrained domination (feasible before
infeasible, infeasible by smaller violation) and learn which way the limit lies. For the
scalar reward other strategies maximise, an infeasible trial gets :func:`penalised`, which is
below every feasible reward of a non-negative objective (accuracy, MnasNet reward).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from archsearch.errors import ConfigError
from archsearch.options import OptionError, Options, finite, invalid, option

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

# MnasNet (Tan et al., CVPR 2019, eq. 2): reward = ACC(m) * (LAT(m) / T) ** w, w = alpha if
# LAT(m) <= T else beta. Soft constraint alpha = beta = -0.07 (doubling the latency should be
# worth about 5% relative accuracy: 1.05 * 2 ** beta = 1 gives beta = -0.07); latency as a
# hard constraint: alpha = 0, beta = -1 (accuracy alone under the target, sharply penalised above).
MNAS_SOFT = (-0.07, -0.07)
MNAS_HARD = (0.0, -1.0)
CONSTRAINT_KEYS = ("max_params", "max_flops", "max_latency")
CONSTRAINT_METRICS = {"max_params": "params", "max_flops": "flops", "max_latency": "latency_b1"}
DIRECTIONS = ("max", "min")


# -- latency --------------------------------------------------------------------------------
def measure_latency(model: "nn.Module", input_shape: Sequence[int], batch_sizes: Sequence[int] = (1, 64),
                    repeats: int = 10, warmup: int = 2, device: Optional["torch.device"] = None,
                    dtype: Optional["torch.dtype"] = None) -> dict[int, float]:
    """Median wall seconds of one forward pass, per batch size: ``{1: s, 64: s}``.

    The model runs in eval mode under no_grad on ``device`` (default: where its parameters
    are) with an all-zeros input of shape (batch, *input_shape) (``dtype`` long for token
    inputs); ``warmup`` passes are discarded, then ``repeats`` are timed one by one and the
    median kept (robust to a stray slow pass on a shared machine). CUDA is synchronised around
    each pass. The model's train/eval mode is restored.
    """
    import torch

    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"latency repeats must be an integer >= 1, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"latency warmup must be an integer >= 0, got {warmup!r}")
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    out: dict[int, float] = {}
    try:
        with torch.no_grad():
            for batch in batch_sizes:
                x = torch.zeros(int(batch), *input_shape, device=device, dtype=dtype or torch.float32)
                for _ in range(warmup):
                    model(x)
                sync()
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    model(x)
                    sync()
                    times.append(time.perf_counter() - start)
                out[int(batch)] = statistics.median(times)
    finally:
        model.train(was_training)
    return out


# -- scalar rewards and constraints ----------------------------------------------------------
def mnas_reward(acc: float, latency: float, target: float, alpha: float = MNAS_SOFT[0],
                beta: float = MNAS_SOFT[1]) -> float:
    """MnasNet's weighted product ``acc * (latency / target) ** w``, w = alpha if latency <= target else beta."""
    if not latency > 0 or not target > 0:
        raise ValueError(f"latency and target must be positive, got {latency!r} and {target!r}")
    w = alpha if latency <= target else beta
    return acc * (latency / target) ** w


def check_constraints(constraints: Any, where: str = "evaluator.constraints") -> dict[str, float]:
    """Validate ``{max_params: .., max_flops: .., max_latency: ..}`` (positive numbers; null entries dropped)."""
    if constraints is None:
        return {}
    if not isinstance(constraints, dict):
        raise ConfigError(f"{where} must be a mapping of {', '.join(CONSTRAINT_KEYS)}, got {constraints!r}")
    out: dict[str, float] = {}
    for key, value in constraints.items():
        if key not in CONSTRAINT_KEYS:
            raise ConfigError(f"{where}: unknown constraint {key!r} (valid: {', '.join(CONSTRAINT_KEYS)})")
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
            raise ConfigError(f"{where}.{key} must be a positive number, got {value!r}")
        out[key] = float(value)
    return out


def violation(metrics: dict[str, float], constraints: dict[str, float]) -> float:
    """Summed relative excess over each limit: 0 when every constraint holds."""
    total = 0.0
    for key, limit in constraints.items():
        value = metrics[CONSTRAINT_METRICS[key]]
        if value > limit:
            total += (value - limit) / limit
    return total


def penalised(value_violation: float) -> float:
    """The scalar reward of an infeasible trial: -1 - violation, below any non-negative reward."""
    return -1.0 - value_violation


REWARDS = ("valid_acc", "mnas")


@dataclass(frozen=True)
class ObjectiveOptions(Options):
    """The training evaluator's multi-objective options (all off by default)."""

    latency: bool = option(False, "measure forward latency after training (latency_b1, latency_bN)")
    latency_batch: int = option(64, "the second batch size latency is measured at", low=1)
    latency_repeats: int = option(10, "timed forward passes per batch size (the median counts)", low=1)
    reward: str = option("valid_acc", "the objective: validation accuracy, or MnasNet's latency-weighted reward",
                         choices=REWARDS)
    target_latency: Optional[float] = option(None, "MnasNet's target latency in seconds (reward mnas)", above=0)
    alpha: float = option(MNAS_SOFT[0], "MnasNet exponent at or under the target (-0.07 soft, 0 hard)",
                          check=finite)
    beta: float = option(MNAS_SOFT[1], "MnasNet exponent over the target (-0.07 soft, -1 hard)", check=finite)
    constraints: Optional[dict[str, Any]] = option(None, "limits: max_params, max_flops, max_latency (seconds)")

    def __post_init__(self) -> None:
        if self.reward == "mnas" and self.target_latency is None:
            raise invalid("target_latency", "must be a positive number of seconds with reward mnas, got null")
        try:
            check_constraints(self.constraints, "constraints")
        except ConfigError as exc:
            raise OptionError(str(exc)) from None

    def limits(self) -> dict[str, float]:
        """The constraints that are set, as numbers."""
        return check_constraints(self.constraints)

    def measures_latency(self) -> bool:
        """Latency is measured when asked, or when the reward or a constraint needs it."""
        return self.latency or self.reward == "mnas" or "max_latency" in self.limits()


# -- objectives and Pareto fronts ------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str = "max"

    @property
    def sign(self) -> float:
        """Multiplier turning the metric into a value to minimise."""
        return -1.0 if self.direction == "max" else 1.0

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


def parse_objective(text: Any, where: str = "objectives") -> Objective:
    """``"valid_acc:max"`` -> Objective; a bare metric name means max."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: an objective is METRIC:max or METRIC:min, got {text!r}")
    metric, _, direction = text.strip().partition(":")
    direction = direction.strip() or "max"
    if not metric.strip() or direction not in DIRECTIONS:
        raise ConfigError(f"{where}: an objective is METRIC:max or METRIC:min (direction one of: max, min), "
                          f"got {text!r}")
    return Objective(metric.strip(), direction)


def parse_objectives(items: Any, where: str = "objectives") -> list[Objective]:
    """A list (or comma-separated string) of objectives, at least two, no metric twice."""
    if isinstance(items, str):
        items = [t for t in items.split(",") if t.strip()]
    if not isinstance(items, (list, tuple)) or len(items) < 2:
        raise ConfigError(f"{where} must list at least two objectives like valid_acc:max, params:min (got {items!r})")
    objectives = [parse_objective(t, where) for t in items]
    metrics = [o.metric for o in objectives]
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"{where}: a metric appears twice in {items!r}")
    return objectives


def as_minimised(metrics: dict[str, float], objectives: Sequence[Objective]) -> Optional[tuple[float, ...]]:
    """The point to minimise for these metrics, or None when one is missing or not finite."""
    point = []
    for o in objectives:
        value = metrics.get(o.metric)
        if value is None or not math.isfinite(value):
            return None
        point.append(o.sign * float(value))
    return tuple(point)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is no worse than b everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Deb et al.'s fast non-dominated sort: fronts of indices, best first (minimisation).

    Equal points do not dominate each other, so duplicates share a front.
    """
    n = len(points)
    dominated_by: list[list[int]] = [[] for _ in range(n)]  # i dominates these
    counts = [0] * n  # how many dominate i
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by[i].append(j)
                counts[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by[j].append(i)
                counts[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if counts[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in dominated_by[i]:
                counts[j] -= 1
                if counts[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return fronts


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """Crowding distance of each point within one front (boundary points, and fronts of <= 2: inf).

    Per objective, points are sorted (stably, by value then index, so ties and duplicates get
    a deterministic order); each inner point adds the normalised gap between its neighbours.
    """
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    dist = [0.0] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][k], i))
        lo, hi = points[order[0]][k], points[order[-1]][k]
        if hi == lo:  # a constant objective says nothing (and has no true boundary points)
            continue
        dist[order[0]] = dist[order[-1]] = math.inf
        for r in range(1, n - 1):
            i = order[r]
            dist[i] += (points[order[r + 1]][k] - points[order[r - 1]][k]) / (hi - lo)
    return dist


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (minimisation), in input order."""
    return sorted(non_dominated_sort(points)[0]) if points else []


def hypervolume_2d(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Area dominated by 2-D points (minimisation) and bounded by ``reference``."""
    inside = sorted((float(x), float(y)) for x, y in points if x < reference[0] and y < reference[1])
    # sweep by x: a point below the best y so far adds the strip [x, ref_x] x [y, best_y]
    area, best_y = 0.0, float(reference[1])
    for x, y in inside:
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area
