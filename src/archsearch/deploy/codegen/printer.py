"""Expressions as small trees (atoms, calls, sequences, dicts) and the pretty printer that writes them
within the line length, black-style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from archsearch.deploy.codegen.origins import _WIDTH


# -- expressions and the pretty printer ----------------------------------------------------
@dataclass
class _Atom:
    text: str


@dataclass
class _Call:
    func: str
    args: list = field(default_factory=list)
    kwargs: list = field(default_factory=list)  # (name, node); name None: a ``**{...}`` entry


@dataclass
class _Seq:
    open: str
    close: str
    items: list
    tuple1: bool = False  # a one-element tuple needs its trailing comma


@dataclass
class _Dict:
    items: list  # (key node, value node)


def _flat(node: Any) -> str:
    if isinstance(node, _Atom):
        return node.text
    if isinstance(node, _Call):
        parts = [_flat(a) for a in node.args] + [f"{k}={_flat(v)}" if k else f"**{_flat(v)}" for k, v in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    if isinstance(node, _Seq):
        inner = ", ".join(_flat(i) for i in node.items)
        return f"{node.open}{inner}{',' if node.tuple1 and len(node.items) == 1 else ''}{node.close}"
    return "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in node.items) + "}"


def _render(node: Any, indent: int, used: int) -> str:
    """``node`` as code starting ``used`` columns into a line indented by ``indent``; broken over
    lines (one item per line, trailing commas) when it does not fit."""
    flat = _flat(node)
    if isinstance(node, _Atom) or indent + used + len(flat) + 1 <= _WIDTH:
        return flat
    if isinstance(node, _Call) and len(node.args) == 1 and not node.kwargs and isinstance(node.args[0], (_Seq, _Dict)):
        # hug a lone list/dict argument: ``nn.ModuleList([`` ... ``])``
        return f"{node.func}(" + _render(node.args[0], indent, used + len(node.func) + 1) + ")"
    if isinstance(node, _Call):
        head, close = f"{node.func}(", ")"
        entries = [("", a) for a in node.args] + [(f"{k}=" if k else "**", v) for k, v in node.kwargs]
    elif isinstance(node, _Seq):
        head, close = node.open, node.close
        entries = [("", i) for i in node.items]
    else:
        head, close = "{", "}"
        entries = [(f"{_flat(k)}: ", v) for k, v in node.items]
    if not entries:
        return flat
    pad = " " * (indent + 4)
    lines = [f"{pad}{prefix}{_render(value, indent + 4, len(prefix))}," for prefix, value in entries]
    return head + "\n" + "\n".join(lines) + "\n" + " " * indent + close


def _string(text: str) -> str:
    """A string literal, double-quoted where that needs no escapes (as black writes them)."""
    literal = repr(text)
    if literal.startswith("'") and '"' not in text:
        return '"' + literal[1:-1].replace("\\'", "'") + '"'
    return literal


def _names_in(node: Any) -> Iterator[str]:
    """Names a node's code reads (the first part of each atom or called name)."""
    if isinstance(node, _Atom):
        if node.text[:1].isalpha() or node.text[:1] == "_":
            yield node.text.split("(")[0]
    elif isinstance(node, _Call):
        yield node.func
        for a in node.args:
            yield from _names_in(a)
        for _, v in node.kwargs:
            yield from _names_in(v)
    elif isinstance(node, _Seq):
        for i in node.items:
            yield from _names_in(i)
    elif isinstance(node, _Dict):
        for k, v in node.items:
            yield from _names_in(k)
            yield from _names_in(v)
