"""What a calibration measured and how it is judged and shown: the result, its statistics (rank
correlations with bootstrap intervals), the verdict against the threshold, the table and the plot.

:mod:`archsearch.calibrate` does the measuring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.6
DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
MIN_PAIRS = 3  # fewer pairs than this and a rank correlation says nothing


@dataclass(frozen=True)
class Correlation:
    """A rank correlation and its bootstrap interval (NaN when undefined, e.g. a constant column)."""

    estimate: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else v)
                for k, v in (("estimate", self.estimate), ("ci_low", self.ci_low), ("ci_high", self.ci_high))}


@dataclass
class CalibrationResult:
    """What :func:`calibrate` measured. ``low``/``high`` are parallel to ``archs`` (completed pairs only)."""

    space: str
    low_name: str
    high_name: str
    archs: list[str]
    low: list[float]
    high: list[float]
    spearman: Correlation
    kendall: Correlation
    k: int  # architectures asked for
    failures: int  # architectures dropped because one end failed
    errors: list[str] = field(default_factory=list)  # "ARCH: reason", one per dropped architecture
    threshold: float = DEFAULT_THRESHOLD
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    seconds: float = 0.0  # wall time of the whole calibration
    low_cost: float = 0.0  # summed evaluation cost (s) of the low end
    high_cost: float = 0.0

    @property
    def pairs(self) -> list[tuple[str, float, float]]:
        return list(zip(self.archs, self.low, self.high))

    @property
    def passed(self) -> bool:
        """Spearman's rho reaches the threshold (False when it is undefined)."""
        return not math.isnan(self.spearman.estimate) and self.spearman.estimate >= self.threshold

    @property
    def verdict(self) -> str:
        rho = self.spearman
        if math.isnan(rho.estimate):
            return (f"undetermined: no rank correlation from {len(self.archs)} pairs "
                    "(too few, or one side gives every architecture the same value)")
        level = f"{self.confidence:.0%} interval"
        if not self.passed:
            return (f"do not trust {self.low_name} to rank like {self.high_name}: "
                    f"Spearman {rho.estimate:.2f} < {self.threshold:g}")
        if rho.ci_low >= self.threshold:
            return (f"trust {self.low_name} to rank like {self.high_name}: "
                    f"Spearman {rho.estimate:.2f} >= {self.threshold:g}, and so is the {level}'s lower end")
        return (f"probably trust {self.low_name}: Spearman {rho.estimate:.2f} >= {self.threshold:g}, "
                f"but the {level} reaches down to {rho.ci_low:.2f} (more architectures, --k, narrow it)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space, "low": self.low_name, "high": self.high_name, "k": self.k,
            "pairs": [{"arch": a, "low": lo, "high": hi} for a, lo, hi in self.pairs],
            "spearman": self.spearman.to_dict(), "kendall": self.kendall.to_dict(),
            "failures": self.failures, "errors": self.errors, "threshold": self.threshold,
            "confidence": self.confidence, "resamples": self.resamples, "seed": self.seed,
            "passed": self.passed, "verdict": self.verdict, "seconds": self.seconds,
            "low_cost": self.low_cost, "high_cost": self.high_cost,
        }


# -- statistics --------------------------------------------------------------------------------
def rank_correlations(low: Sequence[float], high: Sequence[float]) -> tuple[float, float]:
    """(Spearman rho, Kendall tau-b); NaN where undefined (fewer than 2 pairs, or a constant side)."""
    from scipy.stats import kendalltau, spearmanr

    x, y = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, math.nan
    return float(spearmanr(x, y)[0]), float(kendalltau(x, y)[0])


def bootstrap(low: Sequence[float], high: Sequence[float], resamples: int = DEFAULT_RESAMPLES,
              confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> tuple[Correlation, Correlation]:
    """Spearman and Kendall with percentile bootstrap intervals (pairs resampled, generator seeded)."""
    rho, tau = rank_correlations(low, high)
    x, y = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if math.isnan(rho) or len(x) < MIN_PAIRS:
        return Correlation(rho, math.nan, math.nan), Correlation(tau, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    rhos, taus = [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(x), len(x))
        r, t = rank_correlations(x[idx], y[idx])
        if not math.isnan(r):  # all-tied resample: the correlation is undefined, skip it
            rhos.append(r)
            taus.append(t)
    if not rhos:
        return Correlation(rho, math.nan, math.nan), Correlation(tau, math.nan, math.nan)
    tail = 100 * (1 - confidence) / 2
    lo_r, hi_r = np.percentile(rhos, [tail, 100 - tail])
    lo_t, hi_t = np.percentile(taus, [tail, 100 - tail])
    return Correlation(rho, float(lo_r), float(hi_r)), Correlation(tau, float(lo_t), float(hi_t))


# -- reporting ---------------------------------------------------------------------------------
def summary_table(result: CalibrationResult) -> Any:
    """A rich table: rho, tau, their intervals, K used, failures, time."""
    from rich.table import Table

    def fmt(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:+.3f}"

    table = Table(title=f"calibration on {result.space}: {result.low_name} vs {result.high_name}")
    for col in ("statistic", "value", f"{result.confidence:.0%} CI"):
        table.add_column(col, justify="left" if col == "statistic" else "right")
    for name, c in (("Spearman rho", result.spearman), ("Kendall tau-b", result.kendall)):
        table.add_row(name, fmt(c.estimate), f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]")
    table.add_row("architectures used", f"{len(result.archs)} of {result.k}", "")
    table.add_row("failures", str(result.failures), "")
    table.add_row("time", f"{result.seconds:.1f} s", f"low {result.low_cost:.1f} s, high {result.high_cost:.1f} s")
    return table


def plot(result: CalibrationResult, path: str) -> None:
    """A scatter of the low against the high values, the correlations in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def fmt(c: Correlation) -> str:
        if math.isnan(c.estimate):
            return "n/a"
        return f"{c.estimate:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}]"

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    try:
        ax.scatter(result.low, result.high, s=28, alpha=0.8)
        ax.set_xlabel(result.low_name)
        ax.set_ylabel(result.high_name)
        ax.set_title(f"{result.space}, K={len(result.archs)}: Spearman {fmt(result.spearman)}\n"
                     f"Kendall {fmt(result.kendall)} ({result.confidence:.0%} bootstrap CI)", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
