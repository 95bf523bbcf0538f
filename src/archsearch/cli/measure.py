"""Commands that measure: ``score`` (zero-cost proxies), ``calibrate`` (the trust meter) and
``benchmark`` (strategies against a results table)."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

from archsearch.cli.base import DebugOpt, QuietOpt, app, csv_list, guard, progress_printer
from archsearch.errors import ConfigError


@app.command()
@guard
def score(
    space: str = typer.Option(..., help="Search space name."),
    proxies: str = typer.Option("synflow,params", help="Comma-separated proxies (synflow, zen, snip, grad_norm, "
                                                       "jacob_cov, params, flops; vote: mean rank of "
                                                       "synflow, zen, params, flops over the architectures)."),
    archs: Optional[str] = typer.Option(None, "--archs", help="File: one architecture string per line (# comments)."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Score N seeded random architectures instead."),
    out: str = typer.Option("scores.csv", "--out", "-o", help="CSV: arch plus one column per proxy."),
    input_shape: str = typer.Option("3,32,32", "--input-shape", help="C,H,W of one input."),
    classes: int = typer.Option(10, help="Number of classes."),
    set_: List[str] = typer.Option([], "--set", help="Space options: space.KEY=VALUE (repeatable)."),
    seed: int = typer.Option(0, help="Seed of the weights, the random minibatch and --sample."),
    threads: int = typer.Option(1, help="Torch threads (1 is fastest for batch-1 scoring on a busy machine)."),
    quiet: bool = QuietOpt,
    debug: bool = DebugOpt,
) -> None:
    """Zero-cost proxy scores (higher = better) of architectures from a file or sampled, to a CSV."""
    from archsearch.config import apply_sets, section_options
    from archsearch.core import Task
    from archsearch.describe import parse_input_shape
    from archsearch.estimation.ensemble import check_scores
    from archsearch.score import read_archs, sample_archs, score_archs, write_scores
    from archsearch.spaces import create_space

    names = check_scores(csv_list("--proxies", proxies))
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
    apply_sets(data, set_, ("space",), "score")
    the_space = create_space(space, **section_options(data, "space"))
    the_archs = read_archs(the_space, archs) if archs is not None else sample_archs(the_space, sample, seed)
    task = Task(shape, classes)
    import torch

    try:  # a shape the space cannot build or run fails here, as one line
        with torch.no_grad():
            the_space.build(the_archs[0], task).eval()(torch.zeros(1, *shape))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"space {space!r} cannot run input shape {input_shape} ({classes} classes): "
                          f"{first}") from None

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
@guard
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
    quiet: bool = QuietOpt,
    debug: bool = DebugOpt,
) -> None:
    """Run strategies × seeds × budgets against a results table; a CSV and a summary table."""
    from archsearch.benchmark import benchmark as run_benchmark
    from archsearch.benchmark import default_report_column, summarise
    from archsearch.config import apply_sets
    from archsearch.estimation.tabular import load_table

    names = csv_list("--strategies", strategies)
    sizes = csv_list("--budgets", budgets, int)
    options: dict[str, Any] = apply_sets({}, set_)
    space_options = options.pop("space", {}) or {}
    loaded = load_table(table)
    column = report or default_report_column(reward, loaded.columns) or reward
    if column not in loaded.columns:
        raise ConfigError(f"--report: the table has no numeric column {column!r} (valid: {', '.join(loaded.columns)})")

    progress = progress_printer(quiet, "runs")

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
    best_column = max(v[column] for v in loaded.rows.values())
    console.print(f"reference: best {reward} in the table {best_row[reward]:.3f} "
                  f"(its {column} {best_row[column]:.3f}); best {column} {best_column:.3f}", highlight=False)
    console.print(f"{len(rows)} rows written to {out}", highlight=False)
