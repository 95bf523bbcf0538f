"""The page's tables: top trials, failed trials, Pareto front, calibration, one-shot epochs and the config text."""

from __future__ import annotations

import os
from typing import Any, Optional

from archsearch.html_report.constants import MAX_CONFIG_CHARS, MAX_EPOCH_ROWS, MAX_ERROR_CHARS, MAX_FAILED, TOP_K
from archsearch.html_report.format import _effort, _finite, _fmt, _fmt_fidelity, _fmt_int, _key


def _table(top: list[dict[str, Any]], best: Optional[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    best_number = best["number"] if best else None
    for rank, t in enumerate(top[:TOP_K], 1):
        m = t["metrics"]
        state = "complete"
        if m.get("stopped_early"):
            state = f"stopped early (epoch {int(m['stopped_early'])})"
        elif m.get("inherited"):
            state = "complete (inherited weights)"
        rows.append({
            "rank": rank, "number": t["number"], "best": t["number"] == best_number,
            "reward": _fmt(t["reward"]), "reward_key": t["reward"],
            "params": _fmt_int(m.get("params")), "params_key": _key(m.get("params")),
            "flops": _fmt_int(m.get("flops")), "flops_key": _key(m.get("flops")),
            "time": (f"{t['cost']:.2f}" if t["cost"] < 10 else f"{t['cost']:.1f}") if _finite(t["cost"]) else "-",
            "time_key": _key(t["cost"]),
            "fidelity": _fmt_fidelity(t.get("fidelity") or {}), "fidelity_key": _effort(t.get("fidelity") or {}),
            "state": state, "arch": t["arch"],
        })
    return {"rows": rows, "more": max(0, len(top) - TOP_K), "total": len(top)}


def _failed(failed: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for t in list(reversed(failed))[:MAX_FAILED]:
        error = (t.get("error") or "").strip() or "(no message)"
        rows.append({"number": t["number"], "arch": t["arch"], "reason": error.splitlines()[0][:300],
                     "detail": error[:MAX_ERROR_CHARS] if "\n" in error or len(error) > 300 else None,
                     "attempts": t.get("attempts")})
    return {"rows": rows, "more": max(0, len(failed) - MAX_FAILED), "total": len(failed)}


def _pareto_rows(front: dict[str, Any]) -> dict[str, Any]:
    names = [o.split(":")[0] for o in front.get("objectives", [])]
    return {"objectives": front.get("objectives", []), "names": names,
            "rows": [{"number": t["number"], "arch": t["arch"], "cells": [_fmt(t.get(n)) for n in names]}
                     for t in front.get("trials", [])[:TOP_K]],
            "more": max(0, len(front.get("trials", [])) - TOP_K)}


def _calibration(calibration: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if not calibration:
        return None

    def corr(c: Any) -> str:
        if not isinstance(c, dict) or c.get("estimate") is None:
            return "undefined"
        ci = ""
        if c.get("ci_low") is not None and c.get("ci_high") is not None:
            ci = f" (CI {c['ci_low']:.2f} to {c['ci_high']:.2f})"
        return f"{c['estimate']:.3f}{ci}"

    rows = [(k, v) for k, v in (
        ("low fidelity", calibration.get("low")), ("high fidelity", calibration.get("high")),
        ("architectures", calibration.get("k")), ("Spearman", corr(calibration.get("spearman"))),
        ("Kendall", corr(calibration.get("kendall"))), ("threshold", calibration.get("threshold")),
        ("failures", calibration.get("failures")),
        ("seconds", _fmt(calibration.get("seconds")) if calibration.get("seconds") is not None else None),
    ) if v is not None]
    return {"passed": bool(calibration.get("passed")), "verdict": calibration.get("verdict", ""), "rows": rows,
            "errors": list(calibration.get("errors") or [])[:20]}


def _replan(r: dict[str, Any]) -> str:
    if "final_seconds" in r:
        return f"trial {r.get('after_trial')} leads: final training {r['was']} s -> {r['final_seconds']} s"
    return (f"after {r.get('after_trials')} trials: typical trial {r.get('typical_trial_s')} s, "
            f"~{r.get('trials_left')} left")


def _plan(plan: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The time planner's decisions and its measured cost model (``--time``)."""
    if not plan:
        return None

    def sec(key: str) -> str:
        value = plan.get(key)
        return f"{float(value):.1f} s" if isinstance(value, (int, float)) else "-"

    cost = plan.get("cost_model") or {}
    coef = cost.get("train_coef") or [0.0, 0.0, 0.0]
    strategy = plan.get("strategy")
    how = (f"successive halving over epochs {plan.get('rungs')} (chosen by the planner)" if strategy
           else "the configured strategy")
    rows = [
        ("budget (whole job)", sec("total")), ("measuring (setup)", sec("setup")),
        ("search", f"{sec('search_seconds')}, ~{plan.get('trials')} trials of ~{sec('trial_seconds')}"),
        ("search fidelity", f"{plan.get('epochs')} epochs on {plan.get('data_fraction')} of the training data"),
        ("strategy", how), ("final training", f"{sec('final_seconds')}, {plan.get('final_epochs')} epochs"),
        ("cost model", f"{cost.get('model', '')}: a={coef[0]:.3g}, b={coef[1]:.3g}, c={coef[2]:.3g}; "
                       f"refitted on {len(cost.get('observed') or [])} trials"),
        ("networks timed", str(len(cost.get("samples") or []))),
        ("re-plans", "; ".join(_replan(r)
                               for r in (plan.get("replans") or [])[-5:]) or "none"),
    ]
    return {"summary": "the time budget (--time) as the planner split it", "rows": rows}


def _oneshot(epochs: list[dict[str, Any]], oneshot: bool, stopped: Optional[str]) -> Optional[dict[str, Any]]:
    if not oneshot and not epochs:
        return None
    losses = [k for k in epochs[0] if k.endswith("loss") or k in ("tau", "reward")] if epochs else []
    rows = []
    for r in epochs[-MAX_EPOCH_ROWS:]:
        rows.append({"epoch": r.get("epoch"), "losses": [_fmt(r.get(k)) for k in losses],
                     "valid_acc": _fmt(r.get("valid_acc")), "param_free": r.get("param_free", ""),
                     "skips": r.get("skips", ""), "seconds": _fmt(r.get("seconds")), "arch": r.get("arch", "")})
    return {"losses": losses, "rows": rows, "more": max(0, len(epochs) - MAX_EPOCH_ROWS), "stopped": stopped}


def _config_text(run_dir: str, config: dict[str, Any]) -> str:
    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as fh:
            text = fh.read(MAX_CONFIG_CHARS)
        if text.strip():
            return text
    except OSError:
        pass
    import yaml

    return "# from the journal (config.yaml is missing)\n" + yaml.safe_dump(config, sort_keys=False)
