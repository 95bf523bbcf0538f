"""Reports: functions from a journal to a table, a JSON object or a figure.

They read the journal only (architectures as their stored strings), so a finished search
can be inspected on a machine without its data or its space's options.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from archsearch.storage.journal import Journal


def summary(journal: Journal) -> dict[str, Any]:
    """The ``show --json`` object: ``trials`` (number, state, arch, metrics, ...) and ``best``."""
    trials = []
    for row in journal.raw_trials():
        trials.append({
            "number": row["number"], "state": row["state"], "arch": row["arch"],
            "metrics": json.loads(row["metrics"]), "reward": row["reward"], "error": row["error"],
            "cost": row["cost"], "attempts": row["attempts"], "parent": row["parent"],
            "fidelity": json.loads(row["fidelity"]),
        })
    done = [t for t in trials if t["state"] == "complete" and t["reward"] is not None]
    best = max(done, key=lambda t: (t["reward"], -t["number"])) if done else None
    final = journal.get_meta("final")
    config = journal.get_meta("config") or {}
    out: dict[str, Any] = {"trials": trials, "best": None, "config": config,
                           "budget": (config.get("budget") or {}).get("trials")}
    if best is not None:
        out["best"] = {"number": best["number"], "arch": best["arch"], "reward": best["reward"],
                       "metrics": best["metrics"]}
        if final is not None and final.get("trial") == best["number"]:
            out["best"]["final_metrics"] = final.get("final_metrics", {})
    return out


def trials_table(data: dict[str, Any], limit: Optional[int] = None) -> Any:
    from rich.table import Table

    table = Table(title="trials")
    for col in ("#", "state", "reward", "params", "time s", "architecture / error"):
        table.add_column(col, overflow="fold")
    rows = data["trials"][-limit:] if limit else data["trials"]
    for t in rows:
        m = t["metrics"]
        detail = t["arch"] if t["state"] != "failed" else f"{t['arch']}\n[red]{(t['error'] or '').splitlines()[0]}"
        table.add_row(str(t["number"]), t["state"], "-" if t["reward"] is None else f"{t['reward']:.4f}",
                      f"{int(m['params']):,}" if "params" in m else "-", f"{t['cost']:.1f}", detail)
    return table


def best_text(data: dict[str, Any]) -> str:
    best = data["best"]
    if best is None:
        return "no complete trial yet"
    lines = [f"best: trial {best['number']}  reward {best['reward']:.4f}", f"  arch: {best['arch']}"]
    fm = best.get("final_metrics")
    if fm:
        lines.append("  final: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) and v != int(v) else f"{k} {v:g}"
                                               for k, v in sorted(fm.items())))
    return "\n".join(lines)


def plot_search(data: dict[str, Any], path: str) -> None:
    """Each trial's reward and the best so far against trial number; failed trials marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ok = [(t["number"], t["reward"]) for t in data["trials"] if t["state"] == "complete" and t["reward"] is not None]
    failed = [t["number"] for t in data["trials"] if t["state"] == "failed"]
    if ok:
        xs, ys = zip(*ok)
        ax.scatter(xs, ys, s=14, alpha=0.7, label="trial reward")
        best, run = [], -math.inf
        for y in ys:
            run = max(run, y)
            best.append(run)
        ax.step(xs, best, where="post", color="C1", label="best so far")
        lo = min(ys)
    else:
        lo = 0.0
    if failed:
        ax.scatter(failed, [lo] * len(failed), marker="x", color="red", label="failed")
    ax.set_xlabel("trial number")
    ax.set_ylabel("reward")
    ax.set_title("search curve")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
