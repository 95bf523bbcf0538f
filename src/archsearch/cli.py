"""The command line: thin commands over the library.

Bad input of any kind prints one line (``error: ...``) and exits with code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any, Callable, List, Optional

import typer

from archsearch.errors import ArchsearchError, ConfigError, SearchAborted

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="archsearch: neural architecture search on PyTorch.")


def _version(value: bool) -> None:
    if value:
        import torch

        from archsearch.version import __version__

        print(f"archsearch {__version__} (torch {torch.__version__}, python {sys.version.split()[0]})")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """archsearch: neural architecture search on PyTorch. Start with 'archsearch search' (the main job on
    the built-in digits data), then 'archsearch show RUN', 'predict' and 'export'."""

DebugOpt = typer.Option(False, "--debug", help="Show tracebacks.")


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map user errors to exit 2, aborted searches to exit 1, Ctrl-C to 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except ArchsearchError as exc:
            if debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        except SearchAborted as exc:
            if debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130)

    return wrapper


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


@app.command()
@_guard
def search(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config file."),
    space: Optional[str] = typer.Option(None, help="Search space name, see archsearch list (default: chain)"),
    strategy: Optional[str] = typer.Option(None, help="Search strategy name, see archsearch list (default: evolution)"),
    dataset: Optional[str] = typer.Option(None, help="Dataset name, NAME:PATH, or a path (default: digits)"),
    evaluator: Optional[str] = typer.Option(None, help="Evaluator name (train, tabular, proxy) (default: train)"),
    table: Optional[str] = typer.Option(None, help="Results table (CSV) for --evaluator tabular."),
    reward: Optional[str] = typer.Option(None, help="The table column to maximise (--evaluator tabular)."),
    budget: Optional[int] = typer.Option(None, help="Number of complete trials (budget.trials) (default: 30)"),
    seed: Optional[int] = typer.Option(None, help="Seed of every random choice (default: 0)"),
    executor: Optional[str] = typer.Option(None, help="inline, process or ray (default: inline; process with --workers > 1)"),
    workers: Optional[int] = typer.Option(None, help="Trials run at once (default: 1)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs per trial (fidelity.epochs) (default: 10)"),
    data_fraction: Optional[float] = typer.Option(None, "--data-fraction", help="Share of training data per trial (fidelity.data_fraction) (default: 1.0)"),
    set_: List[str] = typer.Option([], "--set", help="Override any config key: KEY=VALUE (repeatable)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Directory for the journal and results (default: runs/SPACE-STRATEGY-DATE-TIME)"),
    warm_start: Optional[str] = typer.Option(None, "--warm-start", help="Start from the best architectures of "
                                             "this finished search (same space)."),
    warm_start_top: int = typer.Option(10, "--warm-start-top", help="How many of them (--warm-start)."),
    calibrate: Optional[int] = typer.Option(None, "--calibrate", help="First train K sampled architectures at the "
                                            "search fidelity and at --calibrate-epochs and report their rank "
                                            "correlation (a warning when below --calibrate-threshold)."),
    calibrate_epochs: Optional[int] = typer.Option(None, "--calibrate-epochs", help="The high fidelity's epochs "
                                                   "(default: final.epochs)."),
    calibrate_threshold: float = typer.Option(0.6, "--calibrate-threshold", help="Spearman rho to trust the fidelity."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    debug: bool = DebugOpt,
) -> None:
    """Run a search (no arguments: the main job on the built-in digits data)."""
    from archsearch.config import Config, apply_override, load_yaml
    from archsearch.experiment import Experiment

    data: dict[str, Any] = load_yaml(config) if config else {}
    if space:
        _set_name(data, "space", space)
    if strategy:
        _set_name(data, "strategy", strategy)
    if dataset:
        from archsearch.data.files import dataset_spec

        data["dataset"] = dataset_spec(dataset)
    if evaluator or table or reward:
        _set_name(data, "evaluator", evaluator or ("tabular" if table or reward else "train"))
        for key, value in (("table", table), ("reward", reward)):
            if value is not None:
                data["evaluator"][key] = value
    for key, value in (("seed", seed),):
        if value is not None:
            data[key] = value
    nested = {("budget", "trials"): budget, ("fidelity", "epochs"): epochs,
              ("fidelity", "data_fraction"): data_fraction}
    for (section, key), value in nested.items():
        if value is not None:
            if not isinstance(data.get(section) or {}, dict):
                raise ConfigError(f"config section {section!r} must be a mapping")
            data[section] = {**(data.get(section) or {}), key: value}
    _apply_executor_flags(data, executor, workers, ray_address)
    for assignment in set_:
        apply_override(data, assignment)
    cfg = Config.from_dict(data)
    if warm_start is not None:
        cfg = _warm_started(cfg, warm_start, warm_start_top)
    out_dir = out or os.path.join(
        "runs", f"{cfg.space['name']}-{cfg.strategy['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
    fidelities = _calibration_fidelities(cfg, calibrate, calibrate_epochs) if calibrate is not None else None
    experiment = Experiment.create(cfg, out_dir, quiet=quiet)
    if warm_start is not None and cfg.strategy.get("weights"):
        from archsearch.strategies.warm_start import copy_weights

        copied = copy_weights(warm_start, out_dir, experiment.space, cfg.strategy["archs"])
        if not quiet:
            typer.echo(f"warm start: {len(cfg.strategy['archs'])} architecture(s), trained weights for {copied}")
    if fidelities is not None:
        _calibrate_first(experiment, calibrate, *fidelities, calibrate_threshold, quiet)  # type: ignore[arg-type]
    _run(experiment, quiet)


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
@_guard
def resume(
    directory: str = typer.Argument(..., help="A search directory."),
    budget: Optional[int] = typer.Option(None, help="Change the number of complete trials."),
    set_: List[str] = typer.Option([], "--set", help="Change budget.* or executor.* keys: KEY=VALUE."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    debug: bool = DebugOpt,
) -> None:
    """Continue a search after a crash, Ctrl-C or kill -9 (or raise its budget)."""
    from archsearch.experiment import Experiment

    _run(Experiment.open(directory, quiet=quiet, budget=budget, overrides=set_), quiet)


@app.command()
@_guard
def show(
    directory: str = typer.Argument(..., help="A search directory."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write the search curve to this PNG."),
    pareto: Optional[str] = typer.Option(None, "--pareto", help="Pareto front objectives METRIC:max|min,... "
                                         "(default: nsga2's own, else valid_acc:max,params:min)."),
    pareto_plot: Optional[str] = typer.Option(None, "--pareto-plot", help="Write the trials and the Pareto front "
                                              "(first two objectives) to this PNG."),
    debug: bool = DebugOpt,
) -> None:
    """The trials and the best architecture of a search (and its Pareto front)."""
    import json

    from archsearch import report
    from archsearch.errors import JournalError
    from archsearch.storage.journal import Journal

    if not os.path.isdir(directory):
        raise JournalError(f"no search directory at {directory}")
    journal = Journal(os.path.join(directory, Journal.FILENAME))
    try:
        data = report.summary(journal)
    finally:
        journal.close()
    front = report.pareto(data, pareto.split(",") if pareto is not None else None)
    for flag, path in (("--plot", plot), ("--pareto-plot", pareto_plot)):
        if path and not path.lower().endswith((".png", ".svg", ".pdf")):
            raise ArchsearchError(f"{flag} {path}: the file name must end in .png, .svg or .pdf")
    for path, draw in ((plot, lambda p: report.plot_search(data, p)),
                       (pareto_plot, lambda p: report.plot_pareto(data, front, p))):
        if path:
            try:
                draw(path)
            except OSError as exc:
                raise ArchsearchError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None
    if json_:
        data["pareto"] = front
        data.pop("config", None)
        print(json.dumps(data, indent=2))
        return
    from rich.console import Console

    # piped or redirected: whole lines, so an architecture string is never broken mid-token
    console = Console() if sys.stdout.isatty() else Console(width=100_000)
    if data.get("oneshot_epochs"):
        console.print(report.epochs_table(data))
        if data.get("oneshot_stopped"):
            console.print(data["oneshot_stopped"], highlight=False)
    console.print(report.trials_table(data))
    console.print(report.best_text(data), highlight=False)
    calibration = data.get("calibration")
    if calibration is not None:
        prefix = "calibration" if calibration.get("passed") else "warning: calibration"
        console.print(f"{prefix}: {calibration.get('verdict')}", highlight=False)
    if pareto is not None or pareto_plot or report.is_multi_objective(data):
        console.print(report.pareto_text(front), highlight=False)
    if plot:
        console.print(f"search curve written to {plot}")
    if pareto_plot:
        console.print(f"pareto front written to {pareto_plot}")


@app.command()
@_guard
def report(
    directory: str = typer.Argument(..., help="A search directory (finished or running)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="The HTML file to write (default: RUN/report.html)."),
    debug: bool = DebugOpt,
) -> None:
    """One self-contained HTML page of a search: summary, search curve, trials, learning curves, Pareto
    front, calibration, one-shot epochs, diagram and config (the search keeps RUN/report.html up to date)."""
    from archsearch.html_report import write_report

    path = write_report(directory, out)
    print(f"report written to {path}")


@app.command()
@_guard
def describe(
    run: Optional[str] = typer.Argument(None, help="A search directory: its best architecture, with the run's own "
                                        "space options, input shape and classes (instead of --space/--arch)."),
    space: Optional[str] = typer.Option(None, help="Search space name (required without RUN)."),
    arch: Optional[str] = typer.Option(None, help="Architecture string, the space's string form (required without "
                                       "RUN; with RUN: default the best)."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="C,H,W of one input (default: the run's, "
                                              "else 3,32,32)."),
    classes: Optional[int] = typer.Option(None, help="Number of classes (default: the run's, else 10)."),
    set_: List[str] = typer.Option([], "--set", help="Space options: space.KEY=VALUE (repeatable)."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
    diagram: Optional[str] = typer.Option(None, "--diagram", help="Write a diagram (.dot, .svg, .png, .pdf)."),
    debug: bool = DebugOpt,
) -> None:
    """An architecture's canonical string, parameters, FLOPs, layers and diagram."""
    import json

    from archsearch.config import apply_override
    from archsearch.core import Task
    from archsearch.describe import describe as describe_arch
    from archsearch.describe import describe_text, parse_input_shape
    from archsearch.spaces import create_space

    from archsearch.describe import run_target

    data: dict[str, Any] = {"space": {"name": space}}
    shape, n_classes = (3, 32, 32), 10
    if run is not None:
        target = run_target(run)
        data["space"] = {"name": target["space"], **target["space_options"]}
        arch = arch or target["arch"]
        shape, n_classes = tuple(target["input_shape"]), int(target["num_classes"])
    elif space is None or arch is None:
        raise ConfigError("describe needs a search directory RUN, or --space and --arch")
    for assignment in set_:
        if not assignment.strip().startswith("space."):
            raise ConfigError(f"describe --set takes space.KEY=VALUE, got {assignment!r}")
        apply_override(data, assignment)
    if classes is not None and classes < 1:
        raise ConfigError(f"--classes must be a positive integer, got {classes}")
    options = {k: v for k, v in data["space"].items() if k != "name"}
    the_space = create_space(data["space"]["name"], **options)
    the_arch = the_space.parse(arch)
    task = Task(parse_input_shape(input_shape) if input_shape else shape, classes or n_classes)
    info = describe_arch(the_space, the_arch, task)
    if diagram:
        try:
            the_space.diagram(the_arch).render(diagram)
        except OSError as exc:
            raise ArchsearchError(f"cannot write the diagram to {diagram}: {exc.strerror or exc}") from None
        info["diagram"] = diagram
    if json_:
        print(json.dumps(info, indent=2))
    else:
        print(describe_text(info))
        if diagram:
            print(f"diagram written to {diagram}")


def _csv_list(flag: str, text: str, cast: Callable[[str], Any] = str) -> list[Any]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"{flag} expects a comma-separated list of integers, got {text!r}") from None


@app.command()
@_guard
def benchmark(
    space: str = typer.Option("nb201", help="Search space whose string form the table's arch column holds."),
    table: str = typer.Option(..., help="Results table (CSV): an arch column and metric columns."),
    reward: str = typer.Option(..., help="The column strategies maximise (e.g. cifar10_valid_acc)."),
    strategies: str = typer.Option("random,evolution,local_search", help="Comma-separated strategy names."),
    budgets: str = typer.Option("50,100,150", help="Comma-separated numbers of queries."),
    seeds: int = typer.Option(10, help="Runs per strategy (seeds 0..N-1)."),
    out: str = typer.Option("benchmark.csv", "--out", "-o", help="CSV with one row per run and budget."),
    workers: int = typer.Option(1, help="Runs at once (processes)."),
    report: Optional[str] = typer.Option(None, help="Column summarised for the picked architecture "
                                                    "(default: the reward's test column, e.g. cifar10_test_acc)."),
    set_: List[str] = typer.Option([], "--set", help="space.KEY=VALUE or STRATEGY.KEY=VALUE (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    debug: bool = DebugOpt,
) -> None:
    """Run strategies × seeds × budgets against a results table; a CSV and a summary table."""
    from archsearch.benchmark import benchmark as run_benchmark
    from archsearch.benchmark import default_report_column, summarise
    from archsearch.config import apply_override
    from archsearch.estimation.tabular import load_table

    names = _csv_list("--strategies", strategies)
    sizes = _csv_list("--budgets", budgets, int)
    options: dict[str, Any] = {}
    for assignment in set_:
        apply_override(options, assignment)
    space_options = options.pop("space", {}) or {}
    loaded = load_table(table)
    column = report or default_report_column(reward, loaded.columns) or reward
    if column not in loaded.columns:
        raise ConfigError(f"--report: the table has no numeric column {column!r} (valid: {', '.join(loaded.columns)})")

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if quiet:
            return
        if tty:
            print(f"\r{done}/{total} runs", end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total or done % max(total // 4, 1) == 0:
            print(f"{done}/{total} runs", file=sys.stderr, flush=True)

    rows = run_benchmark(space, table, reward, names, sizes, seeds, out, workers, space_options, options,
                         progress=progress)
    from rich.console import Console
    from rich.table import Table as RichTable

    best_arch, best_row = loaded.best(reward)
    console = Console(width=None if sys.stdout.isatty() else 120)  # files and pipes get whole column names
    top = RichTable(title=f"{space}: picked architecture's {column} (reward {reward}), {seeds} seeds")
    for col in ("strategy", "queries", f"{column} mean ± std", "± s.e.", f"{reward} mean", "ms/query"):
        top.add_column(col, justify="right" if col != "strategy" else "left")
    by_reward = {(r["strategy"], r["budget"]): r for r in summarise(rows, "reward")}
    for r in summarise(rows, column):
        top.add_row(r["strategy"], str(r["budget"]), f"{r['mean']:.3f} ± {r['std']:.3f}", f"{r['sem']:.3f}",
                    f"{by_reward[(r['strategy'], r['budget'])]['mean']:.3f}", f"{r['ms_per_query']:.2f}")
    console.print(top)
    console.print(f"reference: best {reward} in the table {best_row[reward]:.3f} "
                  f"(its {column} {best_row[column]:.3f}); best {column} {max(v[column] for v in loaded.rows.values()):.3f}",
                  highlight=False)
    console.print(f"{len(rows)} rows written to {out}", highlight=False)


@app.command()
@_guard
def score(
    space: str = typer.Option(..., help="Search space name."),
    proxies: str = typer.Option("synflow,params", help="Comma-separated proxies (synflow, snip, grad_norm, "
                                                       "jacob_cov, params, flops)."),
    archs: Optional[str] = typer.Option(None, "--archs", help="File: one architecture string per line (# comments)."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Score N seeded random architectures instead."),
    out: str = typer.Option("scores.csv", "--out", "-o", help="CSV: arch plus one column per proxy."),
    input_shape: str = typer.Option("3,32,32", "--input-shape", help="C,H,W of one input."),
    classes: int = typer.Option(10, help="Number of classes."),
    set_: List[str] = typer.Option([], "--set", help="Space options: space.KEY=VALUE (repeatable)."),
    seed: int = typer.Option(0, help="Seed of the weights, the random minibatch and --sample."),
    threads: int = typer.Option(1, help="Torch threads (1 is fastest for batch-1 scoring on a busy machine)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    debug: bool = DebugOpt,
) -> None:
    """Zero-cost proxy scores (higher = better) of architectures from a file or sampled, to a CSV."""
    from archsearch.config import apply_override
    from archsearch.core import Task
    from archsearch.describe import parse_input_shape
    from archsearch.estimation.proxies import check_proxies
    from archsearch.score import read_archs, sample_archs, score_archs, write_scores
    from archsearch.spaces import create_space

    names = check_proxies(_csv_list("--proxies", proxies))
    shape = parse_input_shape(input_shape)
    if classes < 1:
        raise ConfigError(f"--classes must be a positive integer, got {classes}")
    if threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {threads}")
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    if (archs is None) == (sample is None):
        raise ConfigError("give either --archs FILE or --sample N")
    data: dict[str, Any] = {"space": {"name": space}}
    for assignment in set_:
        if not assignment.strip().startswith("space."):
            raise ConfigError(f"score --set takes space.KEY=VALUE, got {assignment!r}")
        apply_override(data, assignment)
    the_space = create_space(space, **{k: v for k, v in data["space"].items() if k != "name"})
    the_archs = read_archs(the_space, archs) if archs is not None else sample_archs(the_space, sample, seed)
    task = Task(shape, classes)
    import torch

    try:  # a shape the space cannot build or run fails here, as one line
        with torch.no_grad():
            the_space.build(the_archs[0], task).eval()(torch.zeros(1, *shape))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"space {space!r} cannot run input shape {input_shape} ({classes} classes): {first}") from None

    torch.set_num_threads(threads)
    if quiet or not sys.stderr.isatty():
        rows = score_archs(the_space, the_archs, task, names, seed)
    else:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            job = bar.add_task("scoring", total=len(the_archs))
            rows = score_archs(the_space, the_archs, task, names, seed, lambda done: bar.update(job, completed=done))
    write_scores(out, the_archs, rows, names)
    if not quiet:
        print(f"{len(rows)} architectures scored with {', '.join(names)}; written to {out}")


@app.command()
@_guard
def calibrate(
    space: str = typer.Option("chain", help="Search space name."),
    dataset: str = typer.Option("digits", help="Dataset name, NAME:PATH, or a path (training evaluator)."),
    k: int = typer.Option(10, "--k", help="Architectures to sample (distinct; table rows with --evaluator tabular)."),
    low_epochs: int = typer.Option(1, "--low-epochs", help="Epochs of the low fidelity."),
    low_data_fraction: float = typer.Option(1.0, "--low-data-fraction", help="Share of training data, low fidelity."),
    high_epochs: int = typer.Option(10, "--high-epochs", help="Epochs of the high fidelity."),
    high_data_fraction: float = typer.Option(1.0, "--high-data-fraction", help="Share of training data, high fidelity."),
    proxy: Optional[str] = typer.Option(None, help="Score with this zero-cost proxy instead of the low fidelity."),
    evaluator: str = typer.Option("train", help="train, or tabular (compare table columns)."),
    table: Optional[str] = typer.Option(None, help="Results table (CSV) for --evaluator tabular."),
    reward: Optional[str] = typer.Option(None, help="The table column taken as the truth (--evaluator tabular)."),
    low_column: Optional[str] = typer.Option(None, "--low-column", help="The table column taken as the cheap estimate."),
    seed: int = typer.Option(0, help="Seed of the sample, the weights and the bootstrap."),
    threshold: float = typer.Option(0.6, help="Spearman rho at or above which the low estimate is trusted."),
    resamples: int = typer.Option(1000, help="Bootstrap resamples for the confidence intervals."),
    workers: int = typer.Option(1, help="Trainings at once (a process pool when > 1)."),
    set_: List[str] = typer.Option([], "--set", help="space.KEY=VALUE or evaluator.KEY=VALUE (repeatable)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the report (JSON) here."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write a low-vs-high scatter to this PNG."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    debug: bool = DebugOpt,
) -> None:
    """The trust meter: rank correlation of a low fidelity (or proxy, or table column) with a high one.

    Exit 0 whatever the correlation (it is a measurement); 2 on bad input; 1 when fewer than 3
    architectures complete both ends."""
    import json

    from archsearch.calibrate import calibrate as run_calibration
    from archsearch.calibrate import plot as plot_calibration
    from archsearch.calibrate import summary_table
    from archsearch.config import apply_override
    from archsearch.core import Fidelity
    from archsearch.estimation.base import EVALUATORS
    from archsearch.spaces import create_space

    if evaluator not in ("train", "tabular"):
        raise ConfigError(f"calibrate --evaluator must be one of: train, tabular (got {evaluator!r})")
    for flag, value in (("--low-epochs", low_epochs), ("--high-epochs", high_epochs)):
        if value < 1:
            raise ConfigError(f"{flag} must be an integer >= 1, got {value}")
    for flag, fraction in (("--low-data-fraction", low_data_fraction), ("--high-data-fraction", high_data_fraction)):
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"{flag} must be in (0, 1], got {fraction}")
    if plot and not plot.lower().endswith((".png", ".svg", ".pdf")):
        raise ArchsearchError(f"--plot {plot}: the file name must end in .png, .svg or .pdf")
    if evaluator == "train" and (table or reward):
        raise ConfigError("--table and --reward need --evaluator tabular")
    data: dict[str, Any] = {"space": {"name": space}, "evaluator": {}}
    for assignment in set_:
        if not assignment.strip().startswith(("space.", "evaluator.")):
            raise ConfigError(f"calibrate --set takes space.KEY=VALUE or evaluator.KEY=VALUE, got {assignment!r}")
        apply_override(data, assignment)
    options = {key: value for key, value in data["evaluator"].items() if key != "name"}
    if evaluator == "tabular":
        options.update({key: value for key, value in (("table", table), ("reward", reward)) if value is not None})
    the_space = create_space(space, **{key: v for key, v in data["space"].items() if key != "name"})
    from archsearch.data.files import dataset_spec

    the_evaluator = EVALUATORS.create(evaluator, dataset_spec(dataset), seed, 
                                      **options)
    the_evaluator.task()  # load and check the data here: bad data is one line, before any training
    low = Fidelity(epochs=low_epochs, data_fraction=low_data_fraction)
    high = Fidelity(epochs=high_epochs, data_fraction=high_data_fraction)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if quiet:
            return
        if tty:
            print(f"\r{done}/{total} evaluations", end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total or done % max(total // 4, 1) == 0:
            print(f"{done}/{total} evaluations", file=sys.stderr, flush=True)

    result = run_calibration(the_space, the_evaluator, low, high, k, seed, proxy=proxy, workers=workers,
                             low_column=low_column, threshold=threshold, resamples=resamples, progress=progress)
    report = result.to_dict()
    if out:
        try:
            with open(out, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2)
        except OSError as exc:
            raise ArchsearchError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    if plot:
        try:
            plot_calibration(result, plot)
        except OSError as exc:
            raise ArchsearchError(f"cannot write the plot to {plot}: {exc.strerror or exc}") from None
    if json_:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(result))
    for error in result.errors[:3]:
        console.print(f"dropped: {error}", highlight=False)
    console.print(f"verdict: {result.verdict}", highlight=False)
    for flag, path in (("report", out), ("plot", plot)):
        if path:
            console.print(f"{flag} written to {path}", highlight=False)


@app.command()
@_guard
def predict(
    run: str = typer.Argument(..., help="A search directory or its best_model.pt."),
    inputs: Optional[str] = typer.Argument(None, help="An image file, a folder of images, an .npz (x, optional y), "
                                           "an idx file or a text file (one input per line). Default: the run's "
                                           "own test split, read again from its data."),
    top: int = typer.Option(1, "--top", "-k", help="Show the K most likely classes per input."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the predictions to this CSV instead of a table."),
    debug: bool = DebugOpt,
) -> None:
    """Predict with the found model: class, class name and probability per input."""
    from archsearch.deploy.predict import predict_run, write_csv

    result = predict_run(run, inputs, top)
    if result.warning:
        typer.echo(f"warning: {result.warning}", err=True)
    accuracy = result.accuracy()
    summary = f"{len(result.predictions)} inputs from {result.inputs.source}" + (
        f"; accuracy {accuracy:.4f} against their labels" if accuracy is not None else "")
    recorded = result.model.info.get("metrics", {}).get("test_acc")
    if inputs is None and recorded is not None:
        summary += f" (the search reported test_acc {recorded:.4f})"
    if out:
        write_csv(result, top, out)
        typer.echo(f"{summary}; predictions written to {out}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*result.header(top), title=None)
    for row in result.rows(top):
        table.add_row(*map(str, row))
    console = Console()
    console.print(table)
    console.print(summary, highlight=False)


@app.command()
@_guard
def export(
    run: str = typer.Argument(..., help="A search directory or its best_model.pt."),
    format_: str = typer.Option("all", "--format", "-f", help="onnx, torchscript, code or all (comma-separated)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory (default: RUN/export)."),
    check_limit: Optional[int] = typer.Option(None, "--check-limit", help="Check each format on at most this many "
                                              "test inputs (default: all)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    debug: bool = DebugOpt,
) -> None:
    """Export the found model (with its preprocessing) to ONNX, TorchScript and plain PyTorch code, each
    checked against the model on the run's test split, and write a model card (MODEL.md)."""
    from archsearch.deploy.export import export_run, parse_formats

    formats = parse_formats(format_)
    if check_limit is not None and check_limit < 1:
        raise ConfigError(f"--check-limit must be an integer >= 1, got {check_limit!r}")
    report = export_run(run, formats, out, check_limit, progress=(lambda s: None) if quiet else
                        (lambda s: typer.echo(s, err=True)))
    typer.echo(f"exported to {report.out_dir}: " + ", ".join(e.format for e in report.exported)
               + f"; checked on {report.check}; model card {report.card}")


@app.command("list")
@_guard
def list_(debug: bool = DebugOpt) -> None:
    """Registered spaces, strategies, evaluators, executors and datasets."""
    from archsearch.catalog import registries

    for kind, registry in registries().items():
        print(f"{kind + 's' if not kind.endswith('y') else kind[:-1] + 'ies'}:")
        names = registry.names()
        width = max(len(n) for n in names)
        for name in names:
            print(f"  {name:<{width}}  {_summary_line(registry.get(name))}")


def _summary_line(cls: type) -> str:
    """The first sentence of a class's own docstring, else of its module's, on one line."""
    import inspect

    own = cls.__dict__.get("__doc__") or ""
    if not own.strip() or own.strip().startswith("Options"):
        own = sys.modules[cls.__module__].__doc__ or ""
    doc = " ".join(inspect.cleandoc(own).split("\n\n")[0].split())
    first = doc.split(". ")[0].rstrip(".")
    return first if len(first) <= 110 else first[:107] + "..."


METAVARS = {"set_": "KEY=VALUE", "out": "DIR", "config": "FILE", "format_": "FORMAT", "table": "CSV"}


def _command() -> Any:
    """The click command behind ``app``, with readable placeholders: an option's value is named after
    the option (``--budget BUDGET``, ``--set KEY=VALUE``), never by its Python type."""
    group = typer.main.get_command(app)
    for command in [group, *getattr(group, "commands", {}).values()]:
        for param in command.params:
            if getattr(param, "is_flag", False):  # typer vendors click: its Option is not click.Option
                param.metavar = ""  # a flag takes no value
                continue
            if not getattr(param, "opts", [""])[0].startswith("-"):  # an argument: its name says it, not its type
                param.display_type = lambda ctx: ""  # type: ignore[method-assign]
                param.metavar = (param.name or "value").upper()
                continue
            param.metavar = METAVARS.get(param.name or "", (param.name or "value").strip("_").upper().replace("_", "-"))
    return group


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point. Usage errors (bad flag, bad number) are one line and exit 2, like all bad input."""
    try:
        code = _command().main(args=argv, standalone_mode=False, prog_name="archsearch")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # Click's UsageError/BadParameter (typer vendors its own click, so match on the API)
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        name = ctx.command_path if ctx is not None else "archsearch"
        print(f"error: {exc.format_message()} (see '{name} --help')", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
