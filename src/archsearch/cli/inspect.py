"""Commands that look at things: ``list`` (components and their options), ``describe``, ``show`` and ``report``."""

from __future__ import annotations

import os
import sys
from typing import Any, List, Optional

import typer

from archsearch.cli.base import DebugOpt, app, check_plot_path, guard, write_or_fail
from archsearch.errors import ConfigError


@app.command()
@guard
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
    check_plot_path("--plot", plot)
    check_plot_path("--pareto-plot", pareto_plot)
    for path, draw in ((plot, lambda p: report.plot_search(data, p)),
                       (pareto_plot, lambda p: report.plot_pareto(data, front, p))):
        if path:
            write_or_fail("plot", path, draw)
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
    used = report.resources_text(data)
    if used:
        console.print(used, highlight=False)
    if data.get("plan"):
        from archsearch.plan import TimePlan

        plan = TimePlan.from_dict(data["plan"])
        cost = plan.cost_model
        console.print(plan.summary() + f"; cost model refitted on {len(cost.get('observed') or [])} trials",
                      highlight=False)
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
@guard
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
@guard
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

    from archsearch.config import apply_sets, section_options
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
    apply_sets(data, set_, ("space",), "describe")
    if classes is not None and classes < 1:
        raise ConfigError(f"--classes must be a positive integer, got {classes}")
    the_space = create_space(data["space"]["name"], **section_options(data, "space"))
    the_arch = the_space.parse(arch)
    task = Task(parse_input_shape(input_shape) if input_shape else shape, classes or n_classes)
    info = describe_arch(the_space, the_arch, task)
    if diagram:
        write_or_fail("diagram", diagram, the_space.diagram(the_arch).render)
        info["diagram"] = diagram
    if json_:
        print(json.dumps(info, indent=2))
    else:
        print(describe_text(info))
        if diagram:
            print(f"diagram written to {diagram}")


def _plural(kind: str) -> str:
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


@app.command("list")
@guard
def list_(
    kind: Optional[str] = typer.Argument(None, help="space, strategy, dataset, evaluator or executor (plural "
                                         "too); default: every kind."),
    name: Optional[str] = typer.Argument(None, help="A component of KIND: show its options."),
    debug: bool = DebugOpt,
) -> None:
    """Registered spaces, strategies, evaluators, executors and datasets; with KIND NAME, that component's
    options (type and rule, default, help), read from its declarations."""
    from archsearch.catalog import registries

    kinds = registries()
    if kind is not None:
        key = {_plural(k): k for k in kinds}.get(kind.lower(), kind.lower())
        if key not in kinds:
            raise ConfigError(f"unknown kind {kind!r} (valid: {', '.join(kinds)})")
        kinds = {key: kinds[key]}
    if name is not None:
        (key, registry), = kinds.items()
        print(_options_text(key, name, registry))
        return
    for key, registry in kinds.items():
        print(f"{_plural(key)}:")
        names = registry.names()
        width = max(len(n) for n in names)
        for each in names:
            print(f"  {each:<{width}}  {_summary_line(registry.get(each))}")


def _options_text(kind: str, name: str, registry: Any) -> str:
    """``name``'s summary, then one line per option: name, type/rule, default (or required), help."""
    from dataclasses import MISSING

    from archsearch.options import _show

    cls = registry.get(name)
    declared = registry.options(name)
    lines = [f"{kind} {name}: {_summary_line(cls)}"]
    if not declared:
        return "\n".join(lines + ["  (no options)"])
    rows = [(d.name, d.rule_text(), "required" if d.default is MISSING else f"default {_show(d.default)}",
             d.spec.help) for d in declared]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines.append("options (config section '{0}', or --set {0}.NAME=VALUE):".format(kind))
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    return "\n".join(line.rstrip() for line in lines)


def _summary_line(cls: type) -> str:
    """The first sentence of a class's own docstring, else of its module's, on one line."""
    import inspect

    own = cls.__dict__.get("__doc__") or ""
    if not own.strip() or own.strip().startswith("Options"):
        own = sys.modules[cls.__module__].__doc__ or ""
    doc = " ".join(inspect.cleandoc(own).split("\n\n")[0].split())
    first = doc.split(". ")[0].rstrip(".")
    return first if len(first) <= 110 else first[:107] + "..."
