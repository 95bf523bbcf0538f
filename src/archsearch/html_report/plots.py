"""The page's plots, drawn by matplotlib as inline SVG cleaned of what a page cannot embed."""

from __future__ import annotations

import io
import math
import re
from typing import Any, Optional

from archsearch.html_report.format import _effort, _finite, _fmt_fidelity


# -- plots --------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _layout(fig: Any) -> None:
    """Fixed margins in inches (``tight_layout`` would measure every label: half a plot's cost)."""
    width, height = fig.get_size_inches()
    columns = max(1, len(fig.axes))
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.2 / width, bottom=0.6 / height, top=1 - 0.35 / height,
                        wspace=0.0 if columns == 1 else 1.0 / (width / columns))


def _fig_svg(fig: Any, name: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg",
                    metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    return _clean_svg(buf.getvalue(), name)


_SVG_STRIP = [re.compile(p, re.S) for p in (r"<\?xml.*?\?>", r"<!DOCTYPE.*?>", r"<!--.*?-->",
                                              r"<metadata>.*?</metadata>")]


def _clean_svg(text: str, name: str) -> str:
    """An SVG document as an inline ``<svg>`` element: no XML prolog, comments, metadata or
    namespace declarations (an HTML parser supplies them; they are the only URLs in an SVG)."""
    for pattern in _SVG_STRIP:
        text = pattern.sub("", text)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    start = text.find("<svg")
    if start < 0:
        raise ValueError("not an SVG document")
    text = text[start:].strip()
    return text.replace("<svg", f'<svg class="plot" data-plot="{name}" role="img"', 1)


def _zoom(values: list[float]) -> tuple[float, float]:
    """The y-range of the bulk of the rewards: from below the lower quartile (Tukey's fence at
    2 IQR, at least the minimum) to the maximum, with a margin; points below are outliers."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    hi, lo_all = float(v.max()), float(v.min())
    q1, q3 = (float(x) for x in np.percentile(v, [25, 75]))
    lo = max(lo_all, q1 - 2.0 * (q3 - q1))
    span = hi - lo
    if span <= 0:  # one value (or all equal): a small window around it
        pad = max(abs(hi) * 0.05, 1e-3)
        return hi - pad, hi + pad
    return lo - 0.08 * span, hi + 0.08 * span


def _plot_curve(trials: list[dict[str, Any]], created_at: Optional[float], best: Optional[dict[str, Any]]) -> Optional[str]:
    ok = [t for t in trials if t["state"] == "complete" and _finite(t["reward"])]
    failed = [t for t in trials if t["state"] == "failed"]
    if not ok and not failed:
        return None
    starts = [t["created_at"] for t in trials if _finite(t.get("created_at"))]
    t0 = created_at if _finite(created_at) else (min(starts) if starts else 0.0)
    finish = [t.get("finished_at") for t in ok + failed if _finite(t.get("finished_at"))]
    span = (max(finish) - t0) if finish else 0.0
    unit, scale = ("h", 3600.0) if span > 3 * 3600 else ("min", 60.0) if span > 180 else ("s", 1.0)
    rewards = [t["reward"] for t in ok]
    ylo, yhi = _zoom(rewards) if rewards else (0.0, 1.0)
    fig = _figure(10.5, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    fidelities = sorted({_fmt_fidelity(t.get("fidelity") or {}) for t in ok},
                        key=lambda f: min(_effort(t.get("fidelity") or {}) for t in ok
                                          if _fmt_fidelity(t.get("fidelity") or {}) == f))
    for ax, by_time in zip(axes, (False, True)):
        def x(t: dict[str, Any]) -> float:
            if by_time:
                return ((t.get("finished_at") or t0) - t0) / scale
            return float(t["number"])

        many = 1 < len(fidelities) <= 6
        for i, fid in enumerate(fidelities if many else [None]):
            pts = [t for t in ok if fid is None or _fmt_fidelity(t.get("fidelity") or {}) == fid]
            inside = [t for t in pts if t["reward"] >= ylo]
            if inside:
                ax.scatter([x(t) for t in inside], [t["reward"] for t in inside], s=16, alpha=0.7,
                           color=f"C{i if many else 0}", label=f"reward ({fid})" if many else "trial reward",
                           zorder=3)
        below = [t for t in ok if t["reward"] < ylo]
        edge = ylo + 0.015 * (yhi - ylo)
        if below:
            ax.scatter([x(t) for t in below], [edge] * len(below), marker="v", s=30, color="0.45", zorder=4,
                       label=f"{len(below)} below the range (outliers)")
        if failed:
            ax.scatter([x(t) for t in failed], [edge] * len(failed), marker="x", s=30, color="red", zorder=4,
                       label=f"{len(failed)} failed")
        if ok:
            order = sorted(ok, key=lambda t: (x(t), t["number"]))
            xs, run, best_so_far = [], -math.inf, []
            for t in order:
                run = max(run, t["reward"])
                xs.append(x(t))
                best_so_far.append(run)
            ax.step(xs, [max(b, ylo) for b in best_so_far], where="post", color="C1", lw=1.8, label="best so far",
                    zorder=5)
            if best is not None:
                bt = next((t for t in ok if t["number"] == best["number"]), None)
                if bt is not None:
                    ax.scatter([x(bt)], [bt["reward"]], marker="*", s=140, color="C3", zorder=6,
                               label=f"best (trial {bt['number']})")
        ax.set_ylim(ylo, yhi)
        ax.set_xlabel(f"wall time since the search started ({unit})" if by_time else "trial number")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("reward")
    axes[0].set_title("reward by trial number", fontsize=10)
    axes[1].set_title("reward by time", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, loc="lower right", fontsize=8, framealpha=0.8)
    _layout(fig)
    return _fig_svg(fig, "curve")


def _curve_metric(trials: list[dict[str, Any]]) -> Optional[str]:
    keys: set[str] = set()
    for t in trials:
        for point in t["curve"]:
            keys.update(point)
    for k in ("valid_acc", "valid_ppl", "valid_loss"):
        if k in keys:
            return k
    return next((k for k in sorted(keys) if k.startswith("valid")), None)


def _plot_learning(trials: list[dict[str, Any]]) -> Optional[str]:
    metric = _curve_metric(trials)
    panels = [k for k in (metric, "train_loss") if k]
    if not panels:
        return None
    fig = _figure(10.5, 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, key in zip(axes, panels):
        for i, t in enumerate(trials):
            pts = [(p.get("epoch", j + 1), p[key]) for j, p in enumerate(t["curve"]) if _finite(p.get(key))]
            if pts:
                ax.plot(*zip(*pts), "-o", ms=3, color=f"C{i}", label=f"trial {t['number']}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    _layout(fig)
    return _fig_svg(fig, "learning")


def _plot_pareto(trials: list[dict[str, Any]], front: dict[str, Any]) -> Optional[str]:
    objectives = front.get("objectives", [])
    if len(objectives) < 2:
        return None
    from archsearch import report

    fig = _figure(6.5, 4.2)
    ax = fig.subplots()
    report.draw_pareto(ax, trials, front)
    ax.legend(loc="best", fontsize=8)
    _layout(fig)
    return _fig_svg(fig, "pareto")


def _plot_calibration(calibration: dict[str, Any]) -> Optional[str]:
    pairs = [(p["low"], p["high"]) for p in calibration.get("pairs", []) if _finite(p.get("low"))
             and _finite(p.get("high"))]
    if not pairs:
        return None
    fig = _figure(5.0, 3.8)
    ax = fig.subplots()
    ax.scatter(*zip(*pairs), s=20, color="C0")
    ax.set_xlabel(f"low fidelity: {calibration.get('low', '')}")
    ax.set_ylabel(f"high fidelity: {calibration.get('high', '')}")
    ax.grid(alpha=0.3)
    _layout(fig)
    return _fig_svg(fig, "calibration")


def _plot_oneshot(epochs: list[dict[str, Any]]) -> Optional[str]:
    losses = [k for k in epochs[0] if k.endswith("loss")]
    fig = _figure(10.5, 3.2)
    ax1, ax2 = fig.subplots(1, 2)
    xs = [r.get("epoch", i + 1) for i, r in enumerate(epochs)]
    for i, k in enumerate(losses):
        ax1.plot(xs, [r.get(k, math.nan) for r in epochs], "-o", ms=3, color=f"C{i}", label=k)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.grid(alpha=0.3)
    if losses:
        ax1.legend(fontsize=8)
    ax2.plot(xs, [r.get("valid_acc", math.nan) for r in epochs], "-o", ms=3, color="C2", label="supernet valid_acc")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("supernet valid accuracy")
    ax2.grid(alpha=0.3)
    _layout(fig)
    return _fig_svg(fig, "oneshot")
