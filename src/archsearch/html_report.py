"""``archsearch report``: one self-contained HTML page for a search directory.

The page is rendered from ``templates/report.html.j2`` (jinja2) with every plot drawn by
matplotlib as inline SVG and the best architecture's diagram inline too, so it opens from a
file with no network (no CDN, no external URL). Sections, each with a stable id:

``summary`` (data, space and its size, strategy, budget and time, the best architecture with
its metrics, parameters, FLOPs, CPU latency and how to use it), ``diagram``, ``curve``,
``trials`` (sortable top-k table), ``failed``, ``learning-curves``, ``pareto``, ``calibration``,
``oneshot`` and ``config``. Every section is always present; one that does not apply to the
search (no failed trial, a single objective, no calibration, not a one-shot search, no learning
curve recorded yet) holds one line saying so.

:func:`write_report` reads the journal without its lock (a running search keeps writing it;
SQLite's WAL mode lets readers in) and writes the page atomically. :class:`LiveReport` rewrites
``RUN/report.html`` during a search, throttled to a small share of the search's time, and never
raises.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shlex
import sqlite3
import time
import warnings
from typing import Any, Callable, Optional

from archsearch.errors import ArchsearchError, JournalError

FILENAME = "report.html"
TEMPLATE = "report.html.j2"
TOP_K = 50  # rows of the trials table; the rest are counted
MAX_FAILED = 50  # failed trials listed (newest first)
MAX_CURVES = 5  # learning curves of the top trials
MAX_EPOCH_ROWS = 200  # one-shot epochs listed
RELOAD_SECONDS = 5  # a live page reloads itself this often
FIRST_COST = 0.5  # seconds a first write is assumed to take (imports matplotlib and jinja2) until measured
SHARE = 0.02  # LiveReport: writing may cost at most this share of the search's time
MAX_ERROR_CHARS = 4000  # of a failed trial's error text
MAX_CONFIG_CHARS = 100_000

SECTIONS = ("summary", "diagram", "curve", "trials", "failed", "learning-curves", "pareto", "calibration",
            "oneshot", "config")
ONESHOT_STRATEGIES = ("darts", "gdas", "enas", "spos")


# -- public API ---------------------------------------------------------------------------------
def write_report(run_dir: str, out: Optional[str] = None, live: bool = False) -> str:
    """Write the report of the search in ``run_dir`` to ``out`` (default ``run_dir/report.html``)
    atomically (a temporary file beside it, then ``os.replace``); return the path written.

    ``live``: the page reloads itself every few seconds and says the search is running.
    Bad input (not a search directory, a corrupt journal, an unwritable ``out``) raises an
    :class:`ArchsearchError` with a one-line message and leaves ``run_dir`` as it was; with
    ``out`` given nothing is written into ``run_dir``.
    """
    return _write(run_dir, out, live, {})


class LiveReport:
    """Rewrites ``run_dir/report.html`` during a search.

    :meth:`update` (after each completed trial) writes only when the time since the last write
    times :data:`SHARE` (0.02) is at least what the last write cost (measured), or with
    ``force``. It also keeps the running total in budget: no write unless what all writes cost so
    far plus two more like the last (this one and the final page) stays within 2% of the time
    since the report was created, so an expensive first write (imports) and the final page are
    paid for too; before any write has been measured, one is assumed to cost :data:`FIRST_COST`,
    so the first page appears once 2% of the search's time covers it and the final page (after
    about 50 s: a shorter search gets its page at the end only). :meth:`close` writes the final
    page, which does not reload. Never raises: a
    failed write is reported once through ``warn`` (one line, without a ``warning:`` prefix) and
    the search goes on. ``writes`` and ``seconds`` count what writing cost.
    """

    def __init__(self, run_dir: str, warn: Callable[[str], None] = lambda s: None) -> None:
        self.run_dir = run_dir
        self.warn = warn
        self.writes = 0
        self.seconds = 0.0
        self.last_cost = 0.0
        self._last_end: Optional[float] = None
        self._created = time.monotonic()
        self._warned = False
        self._cache: dict[str, Any] = {}  # space, diagram and latency of the best, kept between writes

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force:
            if self._last_end is None:  # not measured yet: assume a first write's cost (imports included)
                if 2 * FIRST_COST > SHARE * (now - self._created):
                    return
            elif (now - self._last_end) * SHARE < self.last_cost \
                    or self.seconds + 2 * self.last_cost > SHARE * (now - self._created):
                return
        self._write(live=True)

    def close(self) -> None:
        self._write(live=False)

    def _write(self, live: bool) -> None:
        start = time.perf_counter()
        try:
            _write(self.run_dir, None, live, self._cache)
        except Exception as exc:  # noqa: BLE001 - a report must never stop a search
            if not self._warned:
                self._warned = True
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                try:
                    self.warn(f"could not write {os.path.join(self.run_dir, FILENAME)}: {first}")
                except Exception:  # noqa: BLE001
                    pass
        finally:
            self.last_cost = time.perf_counter() - start
            self.seconds += self.last_cost
            self.writes += 1
            self._last_end = time.monotonic()


# -- writing ------------------------------------------------------------------------------------
def _write(run_dir: str, out: Optional[str], live: bool, cache: dict[str, Any]) -> str:
    journal_path = _check_run_dir(run_dir)
    path = out if out is not None else os.path.join(run_dir, FILENAME)
    _check_out(path)
    context = _gather(run_dir, journal_path, live, cache)
    html = _template().render(**context)
    _atomic_write(path, html)
    return path


def _check_run_dir(run_dir: str) -> str:
    from archsearch.storage.journal import Journal

    if not os.path.isdir(run_dir):
        raise JournalError(f"{run_dir} is not a search directory (no such directory)")
    path = os.path.join(run_dir, Journal.FILENAME)
    if not os.path.isfile(path):
        raise JournalError(f"{run_dir} is not a search directory (no {Journal.FILENAME} in it)")
    return path


def _check_out(path: str) -> None:
    if os.path.isdir(path):
        raise ArchsearchError(f"cannot write the report to {path}: it is a directory (give a file name)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ArchsearchError(f"cannot write the report to {path}: {parent} {what}")


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise ArchsearchError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


_TEMPLATE_CACHE: list[Any] = []


def _template() -> Any:
    if not _TEMPLATE_CACHE:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")),
            autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        _TEMPLATE_CACHE.append(env.get_template(TEMPLATE))
    return _TEMPLATE_CACHE[0]


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
    budget_trials = budget.get("trials")
    budget_time = budget.get("time")
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
            "time": (f"{t['cost']:.2f}" if t["cost"] < 10 else f"{t['cost']:.1f}") if _finite(t["cost"]) else "-", "time_key": _key(t["cost"]),
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


# -- formatting ---------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _key(value: Any) -> str:
    return repr(float(value)) if _finite(value) else ""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def _fmt_int(value: Any) -> str:
    return f"{int(round(value)):,}" if _finite(value) else "-"


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _fmt_size(n: Any) -> str:
    try:
        value = float(n)
    except (TypeError, ValueError, OverflowError):
        return str(n)
    if math.isinf(value):
        return "infinite"
    if value < 1e9:
        return f"{int(n):,}"
    return f"{value:.3g}".replace("e+", " x 10^")


def _fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def _effort(f: dict[str, Any]) -> float:
    try:
        return (float(f.get("epochs", 1)) * float(f.get("data_fraction", 1.0)) * float(f.get("width", 1.0))
                * float(f.get("depth", 1.0)))
    except (TypeError, ValueError):
        return 0.0


def _fmt_fidelity(f: dict[str, Any]) -> str:
    parts = [f"{f.get('epochs', '?')} ep"]
    if f.get("data_fraction") not in (None, 1, 1.0):
        parts.append(f"{float(f['data_fraction']):.0%} data")
    if f.get("resolution"):
        parts.append(f"res {f['resolution']}")
    for k in ("width", "depth"):
        if f.get(k) not in (None, 1, 1.0):
            parts.append(f"{k} x{f[k]:g}")
    return ", ".join(parts)


def _options(section: dict[str, Any]) -> str:
    options = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in section.items() if k != "name"]
    return f" ({', '.join(options)})" if options else ""


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:300]


__all__ = ["LiveReport", "write_report", "SECTIONS", "FILENAME"]
