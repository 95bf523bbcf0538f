"""Commands that use the found model: ``predict`` and ``export``."""

from __future__ import annotations

from typing import Optional

import typer

from archsearch.cli.base import DebugOpt, QuietOpt, app, guard
from archsearch.errors import ConfigError


@app.command()
@guard
def predict(
    run: str = typer.Argument(..., help="A search directory or its best_model.pt."),
    inputs: Optional[str] = typer.Argument(None, help="An image file, a folder of images, an .npz (x, optional y), "
                                           "an idx file or a text file (one input per line). Default: the run's "
                                           "own test split, read again from its data."),
    top: int = typer.Option(1, "--top", "-k", help="Show the K most likely classes per input."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the predictions to this CSV instead of a "
                                      "table."),
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
@guard
def export(
    run: str = typer.Argument(..., help="A search directory or its best_model.pt."),
    format_: str = typer.Option("all", "--format", "-f", help="onnx, torchscript, code or all (comma-separated)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory (default: RUN/export)."),
    check_limit: Optional[int] = typer.Option(None, "--check-limit", help="Check each format on at most this many "
                                              "test inputs (default: all)."),
    quiet: bool = QuietOpt,
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
