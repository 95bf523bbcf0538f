"""``archsearch search`` and ``resume``: build the config from flags, a YAML file and ``--set``, then run.

``search`` takes its flags in groups (the parts, the run, the parallelism, a warm start and a
calibration first), each a dataclass, so no function carries two dozen parameters.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, List, Optional

import typer

from archsearch.cli.base import DebugOpt, QuietOpt, app, grouped, guard
from archsearch.errors import ConfigError


@dataclass
class Parts:
    """What is searched, with what and on which data."""

    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config file.")
    space: Optional[str] = typer.Option(None, help="Search space name, see archsearch list (default: chain)")
    strategy: Optional[str] = typer.Option(None, help="Search strategy name, see archsearch list "
                                           "(default: evolution)")
    dataset: Optional[str] = typer.Option(None, help="Dataset name, NAME:PATH, or a path (default: digits)")
    evaluator: Optional[str] = typer.Option(None, help="Evaluator name (train, tabular, proxy) (default: train)")
    table: Optional[str] = typer.Option(None, help="Results table (CSV) for --evaluator tabular.")
    reward: Optional[str] = typer.Option(None, help="The table column to maximise (--evaluator tabular).")


@dataclass
class Run:
    """How long, how hard and where the search runs."""

    budget: Optional[int] = typer.Option(None, help="Number of complete trials (budget.trials) (default: 30, "
                                         "or no limit with --time)")
    time_: Optional[str] = typer.Option(None, "--time", help="Time for the whole job, search and final training: "
                                        "90s, 10m, 2h (budget.time); with --budget, whichever comes first")
    seed: Optional[int] = typer.Option(None, help="Seed of every random choice (default: 0)")
    executor: Optional[str] = typer.Option(None, help="inline, process or ray (default: inline; process with "
                                           "--workers > 1)")
    workers: Optional[int] = typer.Option(None, help="Trials run at once (default: 1)")
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster.")
    epochs: Optional[int] = typer.Option(None, help="Training epochs per trial (fidelity.epochs) (default: 10)")
    data_fraction: Optional[float] = typer.Option(None, "--data-fraction", help="Share of training data per "
                                                  "trial (fidelity.data_fraction) (default: 1.0)")
    set_: List[str] = typer.Option([], "--set", help="Override any config key: KEY=VALUE (repeatable).")
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Directory for the journal and results "
                                      "(default: runs/SPACE-STRATEGY-DATE-TIME)")


@dataclass
class Start:
    """Start from a finished search, and first check that the search fidelity can be trusted."""

    warm_start: Optional[str] = typer.Option(None, "--warm-start", help="Start from the best architectures of "
                                             "this finished search (same space).")
    warm_start_top: int = typer.Option(10, "--warm-start-top", help="How many of them (--warm-start).")
    calibrate: Optional[int] = typer.Option(None, "--calibrate", help="First train K sampled architectures at "
                                            "the search fidelity and at --calibrate-epochs and report their rank "
                                            "correlation (a warning when below --calibrate-threshold).")
    calibrate_epochs: Optional[int] = typer.Option(None, "--calibrate-epochs", help="The high fidelity's epochs "
                                                   "(default: final.epochs).")
    calibrate_threshold: float = typer.Option(0.6, "--calibrate-threshold", help="Spearman rho to trust the "
                                              "fidelity.")


def build_config(parts: Parts, run: Run) -> Any:
    """The Config of a search: the YAML file, then the flags, then ``--set`` (the shared parser)."""
    from archsearch.config import Config, apply_sets, load_yaml

    data: dict[str, Any] = load_yaml(parts.config) if parts.config else {}
    if parts.space:
        _set_name(data, "space", parts.space)
    if parts.strategy:
        _set_name(data, "strategy", parts.strategy)
    if parts.dataset:
        from archsearch.data.files import dataset_spec

        data["dataset"] = dataset_spec(parts.dataset)
    if parts.evaluator or parts.table or parts.reward:
        _set_name(data, "evaluator", parts.evaluator or ("tabular" if parts.table or parts.reward else "train"))
        for key, value in (("table", parts.table), ("reward", parts.reward)):
            if value is not None:
                data["evaluator"][key] = value
    if run.seed is not None:
        data["seed"] = run.seed
    nested = {("budget", "trials"): run.budget, ("budget", "time"): run.time_, ("fidelity", "epochs"): run.epochs,
              ("fidelity", "data_fraction"): run.data_fraction}
    for (section, key), value in nested.items():
        if value is not None:
            if not isinstance(data.get(section) or {}, dict):
                raise ConfigError(f"config section {section!r} must be a mapping")
            data[section] = {**(data.get(section) or {}), key: value}
    _apply_executor_flags(data, run.executor, run.workers, run.ray_address)
    return Config.from_dict(apply_sets(data, run.set_))


@app.command()
@guard
@grouped(Parts, Run, Start)
def search(parts: Parts, run: Run, start: Start, quiet: bool = QuietOpt, debug: bool = DebugOpt) -> None:
    """Run a search (no arguments: the main job on the built-in digits data)."""
    from archsearch.experiment import Experiment

    cfg = build_config(parts, run)
    if start.warm_start is not None:
        cfg = _warm_started(cfg, start.warm_start, start.warm_start_top)
    out_dir = run.out or os.path.join(
        "runs", f"{cfg.space['name']}-{cfg.strategy['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
    fidelities = (_calibration_fidelities(cfg, start.calibrate, start.calibrate_epochs)
                  if start.calibrate is not None else None)
    experiment = Experiment.create(cfg, out_dir, quiet=quiet)
    if start.warm_start is not None and cfg.strategy.get("weights"):
        from archsearch.strategies.warm_start import copy_weights

        copied = copy_weights(start.warm_start, out_dir, experiment.space, cfg.strategy["archs"])
        if not quiet:
            typer.echo(f"warm start: {len(cfg.strategy['archs'])} architecture(s), trained weights for {copied}")
    if fidelities is not None:
        _calibrate_first(experiment, start.calibrate, *fidelities, start.calibrate_threshold,  # type: ignore[arg-type]
                         quiet)
    _run(experiment, quiet)


def _set_name(data: dict[str, Any], section: str, name: str) -> None:
    current = data.get(section)
    if isinstance(current, dict) and current.get("name") == name:
        return
    data[section] = {"name": name}


def _apply_executor_flags(data: dict[str, Any], executor: Optional[str], workers: Optional[int],
                          ray_address: Optional[str]) -> None:
    """Pick the executor first (an explicit --executor; else ray when an address is given; else a
    process pool when several workers are asked of the in-process executor), then set its options."""
    current = data.get("executor")
    if isinstance(current, str):
        current = {"name": current}
    if current is not None and not isinstance(current, dict):
        raise ConfigError("config section 'executor' must be a mapping with a 'name'")
    name = (current or {}).get("name", "inline")
    if executor:
        name = executor
    elif ray_address:
        name = "ray"
    elif workers is not None and workers > 1 and name == "inline":
        name = "process"
    section = dict(current) if current and current.get("name", "inline") == name else {"name": name}
    if workers is not None:
        section["workers"] = workers
    if ray_address:
        section["ray_address"] = ray_address
    data["executor"] = section


def _calibration_fidelities(cfg: Any, k: int, epochs: Optional[int]) -> tuple[Any, Any]:
    """(low, high) for ``search --calibrate``: the search's fidelity and full data at ``epochs``
    (default final.epochs); checked before anything is written."""
    from archsearch.core import Fidelity

    if not isinstance(k, int) or k < 3:
        raise ConfigError(f"--calibrate must be an integer >= 3 (architectures to train twice), got {k!r}")
    if cfg.evaluator["name"] != "train":
        raise ConfigError(f"--calibrate trains architectures at two fidelities: it needs --evaluator train, "
                          f"not {cfg.evaluator['name']!r} (archsearch calibrate compares tables and proxies)")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(f"--calibrate-epochs must be an integer >= 1, got {epochs!r}")
    high = Fidelity(epochs=epochs if epochs is not None else cfg.final.epochs, data_fraction=1.0,
                    resolution=cfg.fidelity.resolution)
    if cfg.fidelity == high:
        raise ConfigError(f"--calibrate compares the search fidelity with a higher one, but both are "
                          f"{high.epochs} epochs on all the data: set --calibrate-epochs")
    return cfg.fidelity, high


def _calibrate_first(experiment: Any, k: int, low: Any, high: Any, threshold: float, quiet: bool) -> None:
    """The trust meter before a search: does the search fidelity rank architectures like a higher one?
    The result goes in the journal (``calibration``, shown by ``show``); a failed check warns but
    does not stop the search."""
    from archsearch.calibrate import calibrate as run_calibration
    from archsearch.calibrate import summary_table
    from archsearch.errors import SearchAborted

    cfg = experiment.config
    try:
        result = run_calibration(experiment.space, experiment.evaluator, low, high, k, cfg.seed,
                                 threshold=threshold)
    except SearchAborted as exc:
        experiment.journal.set_meta("calibration", {"verdict": f"undetermined: {exc}", "passed": False})
        typer.echo(f"warning: calibration failed: {exc}", err=True)
        return
    experiment.journal.set_meta("calibration", result.to_dict())
    if not quiet:
        from rich.console import Console

        Console().print(summary_table(result))
    if not result.passed:
        typer.echo(f"warning: {result.verdict}", err=True)
    elif not quiet:
        typer.echo(result.verdict)


def _warm_started(cfg: Any, directory: str, top: int) -> Any:
    """``cfg`` with its strategy wrapped in ``warm_start``, seeded with ``directory``'s best architectures."""
    from archsearch.config import Config
    from archsearch.spaces import create_space
    from archsearch.strategies.warm_start import best_architectures

    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"--warm-start-top must be an integer >= 1, got {top!r}")
    space = create_space(cfg.space["name"], **cfg.options("space"))
    data = cfg.to_dict()
    data["strategy"] = {"name": "warm_start", "inner": data["strategy"],
                        "archs": best_architectures(directory, space, top),
                        "weights": bool(cfg.evaluator.get("inherit"))}  # start from their trained weights
    return Config.from_dict(data)


def _run(experiment: Any, quiet: bool) -> None:
    import shlex

    from archsearch import report

    if not quiet:
        print(f"search directory: {experiment.out_dir}", file=sys.stderr, flush=True)
    try:
        summary = experiment.run()
    except KeyboardInterrupt:
        print(f"interrupted; the journal is intact: archsearch resume {shlex.quote(experiment.out_dir)} continues",
              file=sys.stderr)
        raise typer.Exit(130) from None
    finally:
        experiment.close()
    if not quiet:
        from archsearch.storage.journal import Journal

        journal = Journal(os.path.join(summary.out_dir, Journal.FILENAME))
        print(report.best_text(report.summary(journal)))
        journal.close()
        print(_next_steps(summary.out_dir))


def _next_steps(out_dir: str) -> str:
    """Where the results are and what to do with them; claims a model only when one was trained."""
    import shlex

    run = shlex.quote(out_dir)
    model = os.path.join(out_dir, "best_model.pt")
    if not os.path.isfile(model):
        return (f"results in {out_dir} (best.json, journal.sqlite); no model was trained (final training is off: "
                f"final.enabled=false)\nnext: archsearch show {run}")
    return (f"the found model: {model} (archsearch.load_model('{out_dir}') takes raw inputs)\n"
            f"results in {out_dir} (best.json, best_model.pt, journal.sqlite)\nnext:\n"
            f"  archsearch predict {run} INPUTS        # an image, a folder of images, .npz, idx or text file\n"
            f"  archsearch export {run} --format all   # ONNX, TorchScript and model.py, each checked\n"
            f"  archsearch show {run}")


@app.command()
@guard
def resume(
    directory: str = typer.Argument(..., help="A search directory."),
    budget: Optional[int] = typer.Option(None, help="Change the number of complete trials."),
    set_: List[str] = typer.Option([], "--set", help="Change budget.* or executor.* keys: KEY=VALUE."),
    quiet: bool = QuietOpt,
    debug: bool = DebugOpt,
) -> None:
    """Continue a search after a crash, Ctrl-C or kill -9 (or raise its budget)."""
    from archsearch.experiment import Experiment

    _run(Experiment.open(directory, quiet=quiet, budget=budget, overrides=set_), quiet)
