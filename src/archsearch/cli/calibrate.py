"""``archsearch calibrate``, the trust meter: does a cheap estimate (a low fidelity, a zero-cost proxy
or a table column) rank architectures like an expensive one? Its flags come in groups: the parts
measured, the two ends compared, the statistics and the output."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, List, Optional

import typer

from archsearch.cli.base import DebugOpt, QuietOpt, app, check_plot_path, grouped, guard, progress_printer, \
    write_or_fail
from archsearch.errors import ConfigError


@dataclass
class Parts:
    """The space sampled and the evaluator (with its data) that trains or looks up each architecture."""

    space: str = typer.Option("chain", help="Search space name.")
    dataset: str = typer.Option("digits", help="Dataset name, NAME:PATH, or a path (training evaluator).")
    evaluator: str = typer.Option("train", help="train, or tabular (compare table columns).")
    table: Optional[str] = typer.Option(None, help="Results table (CSV) for --evaluator tabular.")
    reward: Optional[str] = typer.Option(None, help="The table column taken as the truth (--evaluator tabular).")
    set_: List[str] = typer.Option([], "--set", help="space.KEY=VALUE or evaluator.KEY=VALUE (repeatable).")


@dataclass
class Ends:
    """The cheap end and the expensive end compared."""

    k: int = typer.Option(10, "--k", help="Architectures to sample (distinct; table rows with --evaluator tabular).")
    low_epochs: int = typer.Option(1, "--low-epochs", help="Epochs of the low fidelity.")
    low_data_fraction: float = typer.Option(1.0, "--low-data-fraction", help="Share of training data, low "
                                            "fidelity.")
    high_epochs: int = typer.Option(10, "--high-epochs", help="Epochs of the high fidelity.")
    high_data_fraction: float = typer.Option(1.0, "--high-data-fraction", help="Share of training data, high "
                                             "fidelity.")
    proxy: Optional[str] = typer.Option(None, help="Score with this zero-cost proxy instead of the low fidelity.")
    low_column: Optional[str] = typer.Option(None, "--low-column", help="The table column taken as the cheap "
                                             "estimate.")


@dataclass
class Stats:
    seed: int = typer.Option(0, help="Seed of the sample, the weights and the bootstrap.")
    threshold: float = typer.Option(0.6, help="Spearman rho at or above which the low estimate is trusted.")
    resamples: int = typer.Option(1000, help="Bootstrap resamples for the confidence intervals.")
    workers: int = typer.Option(1, help="Trainings at once (a process pool when > 1).")


@dataclass
class Output:
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the report (JSON) here.")
    plot: Optional[str] = typer.Option(None, "--plot", help="Write a low-vs-high scatter to this PNG.")
    json_: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table.")


def _check(parts: Parts, ends: Ends, output: Output) -> None:
    """Every flag checked before anything loads: one line naming the first bad one."""
    if parts.evaluator not in ("train", "tabular"):
        raise ConfigError(f"calibrate --evaluator must be one of: train, tabular (got {parts.evaluator!r})")
    for flag, value in (("--low-epochs", ends.low_epochs), ("--high-epochs", ends.high_epochs)):
        if value < 1:
            raise ConfigError(f"{flag} must be an integer >= 1, got {value}")
    for flag, fraction in (("--low-data-fraction", ends.low_data_fraction),
                           ("--high-data-fraction", ends.high_data_fraction)):
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"{flag} must be in (0, 1], got {fraction}")
    check_plot_path("--plot", output.plot)
    if parts.evaluator == "train" and (parts.table or parts.reward):
        raise ConfigError("--table and --reward need --evaluator tabular")


def _build(parts: Parts, seed: int) -> tuple[Any, Any]:
    """The space and the evaluator, through the shared ``--set`` parser; the data is loaded and checked."""
    from archsearch.config import apply_sets, section_options
    from archsearch.data.files import dataset_spec
    from archsearch.estimation.base import EVALUATORS
    from archsearch.spaces import create_space

    data: dict[str, Any] = apply_sets({"space": {"name": parts.space}, "evaluator": {}}, parts.set_,
                                      ("space", "evaluator"), "calibrate")
    options = section_options(data, "evaluator")
    if parts.evaluator == "tabular":
        options.update({key: value for key, value in (("table", parts.table), ("reward", parts.reward))
                        if value is not None})
    space = create_space(parts.space, **section_options(data, "space"))
    evaluator = EVALUATORS.create(parts.evaluator, dataset_spec(parts.dataset), seed, **options)
    evaluator.task()  # load and check the data here: bad data is one line, before any training
    return space, evaluator


@app.command()
@guard
@grouped(Parts, Ends, Stats, Output)
def calibrate(parts: Parts, ends: Ends, stats: Stats, output: Output, quiet: bool = QuietOpt,
              debug: bool = DebugOpt) -> None:
    """The trust meter: rank correlation of a low fidelity (or proxy, or table column) with a high one.

    Exit 0 whatever the correlation (it is a measurement); 2 on bad input; 1 when fewer than 3
    architectures complete both ends."""
    import json

    from archsearch.calibrate import calibrate as run_calibration
    from archsearch.calibrate import plot as plot_calibration
    from archsearch.calibrate import summary_table
    from archsearch.core import Fidelity

    _check(parts, ends, output)
    space, evaluator = _build(parts, stats.seed)
    low = Fidelity(epochs=ends.low_epochs, data_fraction=ends.low_data_fraction)
    high = Fidelity(epochs=ends.high_epochs, data_fraction=ends.high_data_fraction)
    result = run_calibration(space, evaluator, low, high, ends.k, stats.seed, proxy=ends.proxy,
                             workers=stats.workers, low_column=ends.low_column, threshold=stats.threshold,
                             resamples=stats.resamples, progress=progress_printer(quiet, "evaluations"))
    report = result.to_dict()

    def write_json(path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)

    if output.out:
        write_or_fail("report", output.out, write_json)
    if output.plot:
        write_or_fail("plot", output.plot, lambda path: plot_calibration(result, path))
    if output.json_:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(result))
    for error in result.errors[:3]:
        console.print(f"dropped: {error}", highlight=False)
    console.print(f"verdict: {result.verdict}", highlight=False)
    for flag, path in (("report", output.out), ("plot", output.plot)):
        if path:
            console.print(f"{flag} written to {path}", highlight=False)
