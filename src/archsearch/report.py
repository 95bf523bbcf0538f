"""Reports: functions from a journal to a table, a JSON object or a figure.

They read the journal only (architectures as their stored strings), so a finished search
can be inspected on a machine without its data or its space's options.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from archsearch.core import failure_reason, incumbent
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
        if row["state"] == "failed":
            trials[-1]["reason"] = failure_reason(row["error"])
    done = {t["number"]: t for t in trials if t["state"] == "complete" and t["reward"] is not None}
    number = incumbent([(n, t["reward"], t["fidelity"], t["metrics"].get("params")) for n, t in done.items()])
    best = None if number is None else done[number]
    final = journal.get_meta("final")
    config = journal.get_meta("config") or {}
    out: dict[str, Any] = {"trials": trials, "best": None, "config": config,
                           "budget": (config.get("budget") or {}).get("trials"),
                           "budget_time": (config.get("budget") or {}).get("time")}
    if best is not None:
        out["best"] = {"number": best["number"], "arch": best["arch"], "reward": best["reward"],
                       "metrics": best["metrics"]}
        if final is not None and final.get("trial") == best["number"]:
            out["best"]["final_metrics"] = final.get("final_metrics", {})
    out["resources"] = resources(trials)
    plan = journal.get_meta("plan")  # search --time: the planner's split, fidelity and cost model
    if plan is not None:
        out["plan"] = plan
    calibration = journal.get_meta("calibration")  # search --calibrate K: the trust meter's result
    if calibration is not None:
        out["calibration"] = calibration
    epochs = journal.epochs()  # a one-shot search: one record per supernet epoch
    if epochs:
        out["oneshot_epochs"] = epochs
        stopped = journal.get_meta("oneshot_stopped")
        if stopped:
            out["oneshot_stopped"] = stopped
    return out


def resources(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """What the trials used, from their metrics (``peak_rss_mb``, ``cpu_s``, ``memory_estimate_mb``):
    the largest peak memory and its trial, the total CPU time, and the failures by reason."""
    out: dict[str, Any] = {"cpu_s": round(sum(t["metrics"].get("cpu_s", 0.0) for t in trials), 3),
                           "failures": {}}
    peaks = [(t["metrics"]["peak_rss_mb"], t["number"]) for t in trials if "peak_rss_mb" in t["metrics"]]
    if peaks:
        out["peak_rss_mb"], out["peak_trial"] = max(peaks)
    for t in trials:
        if "reason" in t:
            out["failures"][t["reason"]] = out["failures"].get(t["reason"], 0) + 1
    return out


def resources_text(data: dict[str, Any]) -> Optional[str]:
    """One line for ``show``: peak memory, CPU time, failures by reason (None when nothing was measured)."""
    res = data.get("resources") or {}
    parts = []
    if "peak_rss_mb" in res:
        parts.append(f"peak memory {res['peak_rss_mb']:.0f} MB (trial {res['peak_trial']})")
    if res.get("cpu_s"):
        parts.append(f"CPU {res['cpu_s']:.1f} s")
    if res.get("failures"):
        parts.append("failed: " + ", ".join(f"{n} {reason}" for reason, n in sorted(res["failures"].items())))
    return "resources: " + "; ".join(parts) if parts else None


def epochs_table(data: dict[str, Any]) -> Any:
    """A one-shot search's epochs: losses, supernet valid accuracy, skips, derived architecture."""
    from rich.table import Table

    records = data.get("oneshot_epochs", [])
    losses = [k for k in records[0] if k.endswith("loss") or k in ("tau", "reward")] if records else []
    table = Table(title="one-shot epochs")
    for col in ("epoch", *losses, "valid_acc", "param_free", "skips", "seconds", "derived architecture"):
        table.add_column(col, justify="left" if col == "derived architecture" else "right",
                         overflow="fold" if col == "derived architecture" else "ellipsis")
    for r in records:
        table.add_row(str(r["epoch"]), *(f"{r.get(k, float('nan')):.4f}" for k in losses),
                      f"{r.get('valid_acc', float('nan')):.4f}", str(r.get("param_free", "")), str(r.get("skips", "")),
                      f"{r.get('seconds', 0.0):.1f}", str(r.get("arch", "")))
    return table


MULTI_OBJECTIVE_METRICS = ("latency_b1", "mnas_reward", "violation")


def default_objectives(data: dict[str, Any]) -> list[str]:
    """The objectives a Pareto report uses by default: an ``nsga2`` search's own, else
    ``valid_acc:max, params:min``."""
    strategy = (data.get("config") or {}).get("strategy") or {}
    if isinstance(strategy, dict) and strategy.get("name") == "nsga2":
        from archsearch.strategies.nsga2 import DEFAULT_OBJECTIVES

        objectives = strategy.get("objectives", DEFAULT_OBJECTIVES)
        return [t.strip() for t in objectives.split(",")] if isinstance(objectives, str) else list(objectives)
    return ["valid_acc:max", "params:min"]


def is_multi_objective(data: dict[str, Any]) -> bool:
    """Whether the search itself was multi-objective (nsga2, latency, MnasNet reward, constraints)."""
    strategy = (data.get("config") or {}).get("strategy") or {}
    if isinstance(strategy, dict) and strategy.get("name") == "nsga2":
        return True
    return any(k in t["metrics"] for t in data["trials"] for k in MULTI_OBJECTIVE_METRICS)


def pareto(data: dict[str, Any], objectives: Optional[list[str]] = None) -> dict[str, Any]:
    """The non-dominated complete trials for ``objectives`` (``METRIC:max|min``; default
    :func:`default_objectives`): ``{"objectives": [...], "trials": [{number, arch, metric: value, ...}]}``,
    best first on the first objective. Trials that break a constraint (``violation`` > 0) or lack
    a metric are left out."""
    from archsearch.estimation.objectives import as_minimised, pareto_front, parse_objectives

    parsed = parse_objectives(objectives if objectives is not None else default_objectives(data), "--pareto")
    rows, points = [], []
    for t in data["trials"]:
        if t["state"] != "complete" or t["metrics"].get("violation", 0.0) > 0:
            continue
        point = as_minimised(t["metrics"], parsed)
        if point is not None:
            rows.append(t)
            points.append(point)
    front = sorted(pareto_front(points), key=lambda i: (points[i], rows[i]["number"]))
    return {"objectives": [str(o) for o in parsed],
            "trials": [{"number": rows[i]["number"], "arch": rows[i]["arch"],
                        **{o.metric: rows[i]["metrics"][o.metric] for o in parsed}} for i in front]}


def pareto_text(front: dict[str, Any]) -> str:
    names = [o.split(":")[0] for o in front["objectives"]]
    lines = [f"pareto front ({', '.join(front['objectives'])}): {len(front['trials'])} trial(s)"]
    for t in front["trials"]:
        values = "  ".join(f"{n} {t[n]:.4g}" for n in names)
        lines.append(f"  trial {t['number']}  {values}  {t['arch']}")
    return "\n".join(lines)


def draw_pareto(ax: Any, trials: list[dict[str, Any]], front: dict[str, Any]) -> None:
    """Every complete trial on the first two objectives (infeasible ones as red crosses), the front
    joined in order; shared by ``show --pareto-plot`` and the HTML report."""
    import math

    x_name, y_name = (o.split(":")[0] for o in front["objectives"][:2])

    def finite(value: Any) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value)

    pts = [(t["metrics"][x_name], t["metrics"][y_name], t["metrics"].get("violation", 0.0) > 0)
           for t in trials if t["state"] == "complete" and finite(t["metrics"].get(x_name))
           and finite(t["metrics"].get(y_name))]
    ok = [(x, y) for x, y, bad in pts if not bad]
    bad = [(x, y) for x, y, b in pts if b]
    if ok:
        ax.scatter(*zip(*ok), s=14, alpha=0.5, color="C0", label="trials")
    if bad:
        ax.scatter(*zip(*bad), s=14, marker="x", color="red", label="infeasible")
    if front["trials"]:
        fx = [t[x_name] for t in front["trials"]]
        fy = [t[y_name] for t in front["trials"]]
        order = sorted(range(len(fx)), key=lambda i: (fx[i], fy[i]))
        ax.plot([fx[i] for i in order], [fy[i] for i in order], "-o", color="C1", ms=5, label="pareto front")
    ax.set_xlabel(front["objectives"][0])
    ax.set_ylabel(front["objectives"][1])
    ax.grid(alpha=0.3)


def plot_pareto(data: dict[str, Any], front: dict[str, Any], path: str) -> None:
    """Every complete trial on the first two objectives, the front highlighted and joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    draw_pareto(ax, data["trials"], front)
    ax.set_title("pareto front")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def trials_table(data: dict[str, Any], limit: Optional[int] = None) -> Any:
    from rich.table import Table

    table = Table(title="trials")
    for col in ("#", "state", "reward", "params", "time s", "cpu s", "mem MB", "architecture / error"):
        table.add_column(col, overflow="fold")
    rows = data["trials"][-limit:] if limit else data["trials"]
    for t in rows:
        m = t["metrics"]
        detail = t["arch"] if t["state"] != "failed" else f"{t['arch']}\n[red]{(t['error'] or '').splitlines()[0]}"
        # the process's peak (+ what the trial added), else the estimate (a trial refused for memory never ran)
        mem = "-"
        if "peak_rss_mb" in m:
            mem = f"{m['peak_rss_mb']:.0f}" + (f" (+{m['trial_rss_mb']:.0f})" if "trial_rss_mb" in m else "")
        elif "memory_estimate_mb" in m:
            mem = f"~{m['memory_estimate_mb']:.0f}"
        table.add_row(str(t["number"]), t["state"], "-" if t["reward"] is None else f"{t['reward']:.4f}",
                      f"{int(m['params']):,}" if "params" in m else "-", f"{t['cost']:.1f}",
                      f"{m['cpu_s']:.1f}" if "cpu_s" in m else "-", mem, detail)
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
