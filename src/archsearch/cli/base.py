"""What every command shares: the app, error handling, option groups and small flag parsers.

Bad input of any kind prints one line (``error: ...``) and exits with code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from typing import Any, Callable, Optional

import typer

from archsearch.errors import ArchsearchError, ConfigError, SearchAborted

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="archsearch: neural architecture search on PyTorch.")

DebugOpt = typer.Option(False, "--debug", help="Show tracebacks.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output.")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


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


def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
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
            raise typer.Exit(2) from None
        except SearchAborted as exc:
            if debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def grouped(*groups: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let a command take option groups (dataclasses whose field defaults are ``typer.Option``s)
    instead of one long parameter list: typer sees every field as a flag, the body gets one
    instance per group, in order, followed by the command's own parameters."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        own_params = list(own.parameters.values())[len(groups):]
        hints = typing.get_type_hints(fn)
        params: list[inspect.Parameter] = []
        owners: list[tuple[type, list[str]]] = []
        for group in groups:
            group_hints = typing.get_type_hints(group)
            names = [f.name for f in dataclasses.fields(group)]
            owners.append((group, names))
            for f in dataclasses.fields(group):
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                                annotation=group_hints[f.name]))
                hints[f.name] = group_hints[f.name]
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own_params]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            instances = [group(**{n: kwargs.pop(n) for n in names}) for group, names in owners]
            return fn(*instances, **kwargs)

        del wrapper.__wrapped__  # typer must read the signature below, not fn's
        wrapper.body = fn  # type: ignore[attr-defined]  # what the command's own code takes
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: hints[p.name] for p in params}
        return wrapper

    return decorate


def csv_list(flag: str, text: str, cast: Callable[[str], Any] = str) -> list[Any]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"{flag} expects a comma-separated list of integers, got {text!r}") from None


def at_least(flag: str, value: Optional[int], low: int, what: str = "an integer") -> None:
    """One line for a flag below its minimum (``None`` means not given)."""
    if value is not None and value < low:
        raise ConfigError(f"{flag} must be {what} >= {low}, got {value!r}")


def check_plot_path(flag: str, path: Optional[str]) -> None:
    if path and not path.lower().endswith(PLOT_SUFFIXES):
        raise ArchsearchError(f"{flag} {path}: the file name must end in .png, .svg or .pdf")


def write_or_fail(what: str, path: str, write: Callable[[str], Any]) -> None:
    """Run ``write(path)``; an OSError becomes one line naming the file."""
    try:
        write(path)
    except OSError as exc:
        raise ArchsearchError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from None


def progress_printer(quiet: bool, unit: str) -> Callable[[int, int], None]:
    """``progress(done, total)``: a counter on a terminal, a few lines when piped, nothing when quiet."""
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if quiet:
            return
        if tty:
            print(f"\r{done}/{total} {unit}", end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total or done % max(total // 4, 1) == 0:
            print(f"{done}/{total} {unit}", file=sys.stderr, flush=True)

    return progress
