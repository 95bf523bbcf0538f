"""The command line: thin commands over the library, one module per group of commands.

``base`` holds the app, error handling and option groups; ``search`` (search, resume), ``inspect``
(list, describe, show, report), ``measure`` (score, calibrate, benchmark) and ``deploy`` (predict,
export) add their commands to it on import. Heavy libraries load inside the commands, so
``archsearch --help`` stays fast. Bad input is one line and exit code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

# each registers its commands, in the order --help lists them
from archsearch.cli import search  # noqa: F401,I001  # isort: skip
from archsearch.cli import inspect, measure, calibrate, deploy  # noqa: F401,I001  # isort: skip
from archsearch.cli.base import app
from archsearch.cli.search import _next_steps

__all__ = ["app", "main", "_command", "_next_steps"]

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
