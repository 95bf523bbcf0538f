"""Reading the run (journal, config, space) into the template's context: status, summary, latency and diagram."""

from __future__ import annotations

import json
import math
import os
import shlex
import sqlite3
import time
import warnings
from typing import Any, Callable, Optional

from archsearch.config import DEFAULT_TRIALS
from archsearch.errors import JournalError
from archsearch.html_report.constants import MAX_CURVES, ONESHOT_STRATEGIES, RELOAD_SECONDS, SECTIONS
from archsearch.html_report.format import (
    _finite,
    _fmt,
    _fmt_fidelity,
    _fmt_int,
    _fmt_ms,
    _fmt_seconds,
    _fmt_size,
    _one_line,
    _options,
)
from archsearch.html_report.plots import (
    _clean_svg,
    _plot_calibration,
    _plot_curve,
    _plot_learning,
    _plot_oneshot,
    _plot_pareto,
)
from archsearch.html_report.tables import (
    _calibration, _config_text, _failed, _oneshot, _pareto_rows, _plan, _table,
)


# -- reading the run ----------------------------------------------------------------------------
def _read_journal(journal_path: str) -> dict[str, Any]:
    """Everything the page needs from the journal, read in one go and the connection closed."""
    from archsearch import report
    from archsearch.storage.journal import Journal

    journal = Journal(journal_path)  # no lock: a running search holds it; WAL lets readers in
    try:
        if journal.get_meta("config") is None:
            raise JournalError(f"{journal_path} holds no config; it was not written by archsearch")
        data = report.summary(journal)
        rows = journal.raw_trials()
        curves = {t.number: t.curve for t in journal.trials(lambda d: d, with_curves=True)}
        meta = {k: journal.get_meta(k) for k in ("data", "elapsed", "created_at", "final")}
    except JournalError:
        raise
    except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise JournalError(f"{journal_path} is corrupt ({first[:200]})") from None
    finally:
        journal.close()
    extra = {r["number"]: r for r in rows}
    for t in data["trials"]:
        row = extra.get(t["number"], {})
        t["arch_json"] = row.get("arch_json")
        t["created_at"] = row.get("created_at")
        t["finished_at"] = row.get("finished_at")
        t["curve"] = curves.get(t["number"], [])
    data["meta"] = meta
    return data


def _gather(run_dir: str, journal_path: str, live: bool, cache: dict[str, Any]) -> dict[str, Any]:
    from archsearch import report

    data = _read_journal(journal_path)
    config = data.get("config") or {}
    trials = data["trials"]
    meta = data["meta"]
    complete = [t for t in trials if t["state"] == "complete" and _finite(t["reward"])]
    failed = [t for t in trials if t["state"] == "failed"]
    in_flight = [t for t in trials if t["state"] in ("waiting", "running")]
    strategy = _section(config, "strategy")
    oneshot = strategy.get("name") in ONESHOT_STRATEGIES or bool(data.get("oneshot_epochs"))
    has_model = os.path.isfile(os.path.join(run_dir, "best_model.pt"))
    space, space_error = _space(config, cache)
    best = data.get("best")
    best_trial = next((t for t in trials if best and t["number"] == best["number"]), None)

    status = _status(data, live, complete, in_flight, oneshot, run_dir)
    plots: dict[str, Any] = {name: {"svg": None, "error": None}
                             for name in ("curve", "learning", "pareto", "calibration", "oneshot")}

    def plot(name: str, draw: Callable[[], Optional[str]], *inputs: Any) -> None:
        """Draw a plot, or reuse the one drawn from the same inputs by an earlier write (LiveReport)."""
        key = json.dumps(inputs, sort_keys=True, default=str)
        cached = cache.get(f"plot:{name}")
        if cached is not None and cached[0] == key:
            plots[name] = cached[1]
            return
        try:
            with warnings.catch_warnings():  # matplotlib's notes must not clutter a search's output
                warnings.simplefilter("ignore")
                plots[name] = {"svg": draw(), "error": None}
        except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn is reported, not fatal
            plots[name] = {"svg": None, "error": _one_line(exc)}
        cache[f"plot:{name}"] = (key, plots[name])

    plot("curve", lambda: _plot_curve(trials, meta.get("created_at"), best),
         [(t["number"], t["state"], t["reward"], t["finished_at"], t["fidelity"]) for t in trials],
         meta.get("created_at"), best and best["number"])
    # as the incumbent breaks ties: the smaller model, then the earlier trial
    top = sorted(complete, key=lambda t: (-t["reward"], float(t["metrics"]["params"]) if _finite(
        t["metrics"].get("params")) else math.inf, t["number"]))
    curve_trials = [t for t in top[:MAX_CURVES] if t.get("curve")]
    plot("learning", lambda: _plot_learning(curve_trials) if curve_trials else None,
         [(t["number"], t["curve"]) for t in curve_trials])

    multi = False
    front: dict[str, Any] = {"objectives": [], "trials": []}
    pareto_error = None
    try:
        multi = report.is_multi_objective(data)
        if multi:
            front = report.pareto(data)
            plot("pareto", lambda: _plot_pareto(trials, front), front,
                 [(t["number"], t["state"], t["metrics"]) for t in trials])
    except Exception as exc:  # noqa: BLE001
        pareto_error = _one_line(exc)
    calibration = data.get("calibration")
    if calibration and calibration.get("pairs"):
        plot("calibration", lambda: _plot_calibration(calibration), calibration)
    epochs = data.get("oneshot_epochs") or []
    if epochs:
        plot("oneshot", lambda: _plot_oneshot(epochs),
             [{k: v for k, v in r.items() if k != "alphas"} for r in epochs])

    return {
        "title": f"archsearch report: {os.path.basename(os.path.abspath(run_dir))}",
        "run_dir": run_dir,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "live": live,
        "reload_seconds": RELOAD_SECONDS,
        "status": status,
        "sections": SECTIONS,
        "summary": _summary(data, config, run_dir, complete, failed, in_flight, oneshot, space, space_error,
                            cache, has_model, best_trial, live),
        "diagram": _diagram(space, space_error, best_trial, cache),
        "plots": plots,
        "table": _table(top, best),
        "failed": _failed(failed),
        "curve_trials": [t["number"] for t in curve_trials],
        "multi": multi,
        "pareto": _pareto_rows(front),
        "pareto_error": pareto_error,
        "calibration": _calibration(calibration),
        "plan": _plan(data.get("plan")),
        "oneshot": _oneshot(epochs, oneshot, data.get("oneshot_stopped")),
        "config_text": _config_text(run_dir, config),
    }


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name) or {}
    return value if isinstance(value, dict) else {"name": str(value)}


def _space(config: dict[str, Any], cache: dict[str, Any]) -> tuple[Any, Optional[str]]:
    section = _section(config, "space")
    key = json.dumps(section, sort_keys=True, default=str)
    if cache.get("space_key") != key:
        from archsearch.spaces import create_space

        try:
            cache["space"] = (create_space(section["name"], **{k: v for k, v in section.items() if k != "name"}),
                              None)
        except Exception as exc:  # noqa: BLE001 - a plugin space not imported here, say
            cache["space"] = (None, _one_line(exc))
        cache["space_key"] = key
    return cache["space"]


def _status(data: dict[str, Any], live: bool, complete: list[Any], in_flight: list[Any], oneshot: bool,
            run_dir: str) -> dict[str, str]:
    run = shlex.quote(run_dir)
    final = data["meta"].get("final")
    best = data.get("best")
    if live:
        return {"kind": "running", "text": f"the search is running; this page reloads every {RELOAD_SECONDS} s"}
    if final is not None and best is not None and final.get("trial") == best["number"]:
        return {"kind": "finished", "text": "the search is finished"}
    if in_flight:
        return {"kind": "stopped", "text": f"not finished: {len(in_flight)} trial(s) in flight (the search runs "
                                           f"elsewhere, or it was interrupted: archsearch resume {run})"}
    return {"kind": "stopped", "text": f"not finished (interrupted or stopped before its budget; "
                                       f"archsearch resume {run} continues it)"}


# -- sections -----------------------------------------------------------------------------------
def _summary(data: dict[str, Any], config: dict[str, Any], run_dir: str, complete: list[Any], failed: list[Any],
             in_flight: list[Any], oneshot: bool, space: Any, space_error: Optional[str], cache: dict[str, Any],
             has_model: bool, best_trial: Optional[dict[str, Any]], live: bool) -> dict[str, Any]:
    meta = data["meta"]
    info = meta.get("data")
    rows: list[tuple[str, str]] = []
    dataset = _section(config, "dataset")
    if isinstance(info, dict) and info:
        splits = ", ".join(f"{info[k]:,} {k}" for k in ("train", "valid", "test") if isinstance(info.get(k), int))
        shape = "x".join(str(s) for s in info.get("input_shape") or []) or "?"
        what = f"{info.get('name', dataset.get('name', '?'))}: input {shape}"
        if info.get("num_classes") is not None:
            what += f", {info['num_classes']} classes"
        if info.get("kind") and info.get("kind") != "classification":
            what += f" ({info['kind']})"
        if info.get("in_memory"):
            what += " (passed in memory from Python)"
        rows.append(("data", what + (f"; splits {splits}" if splits else "")))
    else:
        options = ", ".join(f"{k}={v}" for k, v in dataset.items() if k != "name")
        rows.append(("data", f"{dataset.get('name', '?')}" + (f" ({options})" if options else "")
                     + " (shapes and split sizes not recorded by this search)"))
    space_section = _section(config, "space")
    if space is not None:
        try:
            size = _fmt_size(space.size())
        except Exception as exc:  # noqa: BLE001
            size = f"unknown ({_one_line(exc)})"
        rows.append(("space", f"{space_section.get('name', '?')}{_options(space_section)}; size {size}"))
    else:
        rows.append(("space", f"{space_section.get('name', '?')}{_options(space_section)} "
                              f"(size unknown: {space_error})"))
    strategy = _section(config, "strategy")
    rows.append(("strategy", f"{strategy.get('name', '?')}{_options(strategy)}"))
    evaluator = _section(config, "evaluator")
    rows.append(("evaluator", f"{evaluator.get('name', '?')}{_options(evaluator)}"))
    executor = _section(config, "executor")
    rows.append(("executor", f"{executor.get('name', '?')}{_options(executor)}"))
    fidelity = config.get("fidelity")
    if isinstance(fidelity, dict):
        rows.append(("search fidelity", _fmt_fidelity(fidelity)))

    budget = config.get("budget") or {}
    budget_time = budget.get("time")
    budget_trials = budget.get("trials")
    if budget_trials is None and budget_time is None:
        budget_trials = DEFAULT_TRIALS
    elapsed = meta.get("elapsed")
    elapsed = float(elapsed) if _finite(elapsed) else None
    epochs = data.get("oneshot_epochs") or []
    if oneshot:
        total = strategy.get("epochs")
        used = f"{len(epochs)}" + (f" / {total}" if total is not None else "") + " one-shot epochs"
        done, todo = len(epochs), (int(total) - len(epochs) if isinstance(total, int) else None)
    else:
        used = f"{len(complete)}" + (f" / {budget_trials}" if budget_trials is not None else "") + " complete trials"
        done, todo = len(complete), (int(budget_trials) - len(complete) if isinstance(budget_trials, int) else None)
    extra = []
    if failed:
        extra.append(f"{len(failed)} failed")
    if in_flight:
        extra.append(f"{len(in_flight)} in flight")
    rows.append(("budget used", used + (f" ({', '.join(extra)})" if extra else "")))
    time_text = "not recorded" if elapsed is None else _fmt_seconds(elapsed)
    if budget_time is not None:
        time_text += f" of {_fmt_seconds(float(budget_time))}"
    rows.append(("time spent", time_text))
    left = None
    if live or in_flight:
        if budget_time is not None and elapsed is not None:
            left = f"{_fmt_seconds(max(0.0, float(budget_time) - elapsed))} at most (time budget)"
        if todo is not None and done > 0 and elapsed is not None:
            estimate = f"about {_fmt_seconds(elapsed / done * max(0, todo))} (at the pace so far)"
            left = estimate if left is None else f"{left}; {estimate}"
        rows.append(("time left", left or "unknown"))
    else:
        rows.append(("time left", "none: the search is not running"))
    if in_flight:
        rows.append(("in flight", ", ".join(f"#{t['number']}" for t in in_flight[:20])
                     + (" ..." if len(in_flight) > 20 else "")))

    best = data.get("best")
    best_out = None
    if best is not None:
        metrics = best.get("metrics") or {}
        final_metrics = best.get("final_metrics") or {}
        best_out = {
            "number": best["number"], "arch": best["arch"], "reward": _fmt(best["reward"]),
            "params": _fmt_int(metrics.get("params")), "flops": _fmt_int(metrics.get("flops")),
            "latency": _latency(run_dir, best_trial, metrics, space, info, has_model, cache),
            "metrics": [(k, _fmt(v)) for k, v in sorted(metrics.items())],
            "final_metrics": [(k, _fmt(v)) for k, v in sorted(final_metrics.items())],
        }
    run = shlex.quote(run_dir)
    if has_model:
        usage = {"model": os.path.join(run_dir, "best_model.pt"),
                 "commands": [f"archsearch predict {run} INPUTS", f"archsearch export {run} --format all"],
                 "python": f"archsearch.load_model({run_dir!r})  # raw inputs in, logits out"}
    else:
        final = config.get("final") or {}
        why = ("final training is off (final.enabled=false)" if final.get("enabled") is False
               else "the search has not finished yet" if live or in_flight or best is None
               else "no model was saved")
        usage = {"model": None, "why": why, "commands": [f"archsearch show {run}"]}
    return {"rows": rows, "best": best_out, "usage": usage}


def _latency(run_dir: str, best_trial: Optional[dict[str, Any]], metrics: dict[str, Any], space: Any,
             info: Any, has_model: bool, cache: dict[str, Any]) -> str:
    """CPU latency at batch 1: the final model's (measured now), else the search's own measurement,
    else the best architecture built at the search size (untrained weights, measured now)."""
    key = (best_trial or {}).get("arch", "") + f"|model={has_model}"
    if cache.get("latency_key") == key:
        return cache["latency"]
    text = "not measured"
    try:
        import torch

        from archsearch.estimation.objectives import measure_latency

        if has_model:
            from archsearch.deploy.checkpoint import build_network, read_checkpoint

            ckpt = read_checkpoint(os.path.join(run_dir, "best_model.pt"))
            network = build_network(ckpt)
            shape = ckpt["task"]["input_shape"]
            dtype = torch.long if ckpt["task"].get("kind", "classification") != "classification" else None
            seconds = measure_latency(network, shape, (1,), repeats=10, warmup=2,
                                      device=torch.device("cpu"), dtype=dtype)[1]
            text = f"{_fmt_ms(seconds)} (final model, batch 1, measured when this page was written)"
        elif _finite(metrics.get("latency_b1")):
            text = f"{_fmt_ms(metrics['latency_b1'])} (batch 1, measured during the search)"
        elif space is not None and best_trial is not None and isinstance(info, dict) \
                and info.get("input_shape") and info.get("num_classes") \
                and info.get("kind", "classification") == "classification":
            from archsearch.core import Task

            arch = space.from_dict(json.loads(best_trial["arch_json"]))
            task = Task(tuple(info["input_shape"]), int(info["num_classes"]))
            network = space.build(arch, task)
            seconds = measure_latency(network, task.input_shape, (1,), repeats=10, warmup=2,
                                      device=torch.device("cpu"))[1]
            text = f"{_fmt_ms(seconds)} (search-size network, batch 1, measured when this page was written)"
    except Exception as exc:  # noqa: BLE001 - latency is information, never a reason to fail
        text = f"not measured ({_one_line(exc)})"
    cache["latency_key"], cache["latency"] = key, text
    return text


def _diagram(space: Any, space_error: Optional[str], best_trial: Optional[dict[str, Any]],
             cache: dict[str, Any]) -> dict[str, Any]:
    if best_trial is None:
        return {"svg": None, "error": None, "note": "no complete trial yet"}
    key = best_trial["arch"]
    if cache.get("diagram_key") == key:
        return cache["diagram"]
    out: dict[str, Any] = {"svg": None, "error": None, "note": None}
    if space is None:
        out["error"] = f"cannot draw: {space_error}"
    else:
        try:
            diagram = space.diagram(space.from_dict(json.loads(best_trial["arch_json"])))
            out["svg"] = _clean_svg(diagram.svg(), "diagram")
        except Exception as exc:  # noqa: BLE001 - a diagram that cannot be drawn is shown as its error
            out["error"] = f"cannot draw the diagram: {_one_line(exc)}"
    cache["diagram_key"], cache["diagram"] = key, out
    return out
