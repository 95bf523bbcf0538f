"""Reading code: a function's or class's source, its compiled code objects, the imports and globals it
uses (:mod:`dis`), the attributes it reads (:mod:`ast`), renaming and indenting it.
"""

from __future__ import annotations

import ast
import dis
import inspect
import io
import textwrap
import tokenize
import types
from typing import Any, Iterator, Optional

from archsearch.deploy.codegen.origins import _FUTURE, _LOADS, _MODULE_DUNDERS
from archsearch.errors import ExportError


# -- reading source ------------------------------------------------------------------------
def _source(obj: Any, what: str) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as exc:
        raise ExportError(f"code export cannot copy {what}: its source is not available ({exc})") from None


def _compile(src: str, what: str) -> types.CodeType:
    try:
        return compile(src, f"<{what}>", "exec", flags=_FUTURE, dont_inherit=True)
    except SyntaxError as exc:
        raise ExportError(f"code export cannot copy {what}: its source does not compile alone ({exc.msg})") from None


def _code_objects(code: types.CodeType, body: bool) -> Iterator[tuple[types.CodeType, bool]]:
    """Every code object in ``code``; the flag says whether it runs when the snippet is defined
    (the snippet's top level and class bodies) rather than when a function is called."""
    yield code, body
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const, body and not const.co_flags & inspect.CO_OPTIMIZED)


def _imports(code: types.CodeType) -> list[tuple[str, int]]:
    """The modules an ``import`` statement inside the snippet imports (name, relative level)."""
    out = []
    for co, _ in _code_objects(code, True):
        previous: list[Any] = []
        for ins in dis.get_instructions(co):
            if ins.opname == "IMPORT_NAME":
                level = previous[-2].argval if len(previous) >= 2 and previous[-2].opname == "LOAD_CONST" else 0
                out.append((ins.argval, level if isinstance(level, int) else 0))
            previous.append(ins)
    return out


def _global_names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The global names a compiled snippet reads (and the ones read when it is defined)."""
    names: set[str] = set()
    at_definition: set[str] = set()
    for co, body in _code_objects(code, True):
        instructions = list(dis.get_instructions(co))
        stored = {i.argval for i in instructions if i.opname == "STORE_NAME"} if body else set()
        for ins in instructions:
            if ins.opname in _LOADS and isinstance(ins.argval, str):
                name = ins.argval
                if name in _MODULE_DUNDERS or (ins.opname == "LOAD_NAME" and name in stored):
                    continue
                names.add(name)
                if body:
                    at_definition.add(name)
    return names, at_definition


def _attribute_names(src: str, class_name: Optional[str] = None) -> set[str]:
    """Names the code reads as attributes (``x.NAME``, ``getattr(x, "NAME")``), mangled too."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2
              and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            out.add(node.args[1].value)
    if class_name:
        out |= {f"_{class_name.lstrip('_')}{n}" for n in out if n.startswith("__") and not n.endswith("__")}
    return out


def _rename(src: str, renames: dict[str, str]) -> str:
    """Replace the global names in ``renames`` (not attributes, not keyword arguments)."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(src).readline)
              if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE)]
    edits = []
    for k, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or tok.string not in renames:
            continue
        if k and tokens[k - 1].string == ".":
            continue
        if k + 1 < len(tokens) and tokens[k + 1].string == "=":
            continue
        edits.append((tok.start, tok.end, renames[tok.string]))
    lines = src.splitlines(keepends=True)
    for (row, col), (_, end), text in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + text + line[end:]
    return "".join(lines)


def _indent(src: str, spaces: int) -> str:
    return textwrap.indent(src, " " * spaces, lambda line: bool(line.strip()))
