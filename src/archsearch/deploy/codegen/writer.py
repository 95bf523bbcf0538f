"""Putting the file together: imports, helpers and classes in dependency order, then ``build_model()``."""

from __future__ import annotations

import inspect
import math
from typing import Any

from archsearch.deploy.codegen.classes import _ModuleClasses
from archsearch.deploy.codegen.copied import _CopiedCode
from archsearch.deploy.codegen.origins import _is_torch
from archsearch.deploy.codegen.printer import _render
from archsearch.deploy.codegen.source import _compile, _indent
from archsearch.deploy.codegen.state import _ClassInfo, _Item
from archsearch.deploy.codegen.tree import _access, _assign, _Tree
from archsearch.deploy.codegen.values import _Values
from archsearch.errors import ExportError


class _Writer(_Tree, _ModuleClasses, _CopiedCode, _Values):
    """Writes ``model.py`` for one network: the tree first, then every class and helper it needs."""

    def source(self, header: str) -> str:
        root = self.tree()
        self._complete_classes()
        read = {(c, a): d for c, a, d in self.skipped if a in self.attrs}
        if read:
            (cls_name, attr), desc = next(iter(read.items()))
            raise ExportError(f"code export cannot express {cls_name}.{attr} ({desc} used by its forward)")
        for info in self.classes.values():
            if not math.isfinite(info.order):
                info.order = self._next()

        body = ["    model = " + _render(root, 4, len("model = "))] if self.ties else []
        for path, same in self.ties:
            body.append(f"    {_assign(self.model, path, _access(self.model, same))}")
        body.append("    return model" if self.ties else "    return " + _render(root, 4, len("return ")))
        build = ("def build_model() -> nn.Module:\n"
                 '    """The network, its weights uninitialised: load a state dict into it."""\n'
                 + "\n".join(body) + "\n")

        blocks = [self.base_source.rstrip() + "\n"]
        previous_const = False
        for entry in self._ordered():
            text = entry.source if isinstance(entry, _Item) else self._class_source(entry)
            is_const = isinstance(entry, _Item) and entry.kind == "const"
            if is_const and previous_const:
                blocks[-1] += text.rstrip() + "\n"
            else:
                blocks.append(text.rstrip() + "\n")
            previous_const = is_const
        blocks.append(build)

        out = []
        if header.strip():
            text = header.strip("\n")
            if '"""' in text or "\\" in text or text.endswith('"'):
                out.append("\n".join(f"# {line}".rstrip() for line in text.splitlines()) + "\n")
            else:
                out.append(f'"""{text}\n"""\n' if "\n" in text else f'"""{text}"""\n')
        out.append("from __future__ import annotations\n")
        out.append(_import_block(self.imports))
        src = "\n".join(out) + "\n\n" + "\n\n".join(blocks)
        _compile(src, "the generated model.py")
        return src

    def _class_source(self, info: _ClassInfo) -> str:
        lines = [f"class {info.name}({', '.join(info.bases)}):\n"]
        doc = info.cls.__dict__.get("__doc__")
        parts = []
        if isinstance(doc, str) and doc.strip() and '"""' not in doc and "\\" not in doc:
            doc = inspect.cleandoc(doc)
            parts.append(_indent(f'"""{doc}{chr(10) if doc.endswith(chr(34)) else ""}"""\n', 4))
        for _, code in sorted(info.members.values(), key=lambda sk: sk[0]):
            parts.append(code)
        if not parts:
            parts.append("    pass\n")
        return lines[0] + "\n".join(parts)

    def _ordered(self) -> list[Any]:
        """Constants, functions, plain classes, then module classes (children before parents),
        each after what its definition needs."""
        entries: dict[str, Any] = {i.name: i for i in self.items.values()}
        entries.update({c.name: c for c in self.classes.values()})
        section = {"const": 0, "function": 1, "class": 2}
        rank = {name: (section[e.kind] if isinstance(e, _Item) else 3, e.order, name) for name, e in entries.items()}
        deps = {name: {d for d in e.deps if d in entries and d != name} for name, e in entries.items()}
        done: list[Any] = []
        placed: set[str] = set()
        while len(placed) < len(entries):
            ready = [n for n in entries if n not in placed and deps[n] <= placed]
            if not ready:  # a definition-time cycle cannot be written in any order
                cycle = sorted(n for n in entries if n not in placed)
                raise ExportError(f"code export cannot order the definitions of {', '.join(cycle)}")
            name = min(ready, key=rank.__getitem__)
            placed.add(name)
            done.append(entries[name])
        return done


def _import_block(imports: dict[str, None]) -> str:
    def module_of(line: str) -> str:
        return line.split()[1]

    merged: dict[str, list[str]] = {}  # ``from m import a`` + ``from m import b`` -> ``from m import a, b``
    lines = []
    for line in imports:
        if line.startswith("from "):
            merged.setdefault(module_of(line), []).append(line.split(" import ", 1)[1])
        else:
            lines.append(line)
    lines += [f"from {m} import {', '.join(sorted(names))}" for m, names in merged.items()]
    groups: list[list[str]] = [[], []]
    for line in lines:
        groups[1 if _is_torch(module_of(line)) else 0].append(line)

    def key(line: str) -> tuple:
        order = ["torch", "torch.nn", "torch.nn.functional"]
        m = module_of(line)
        return (line.startswith("from"), order.index(m) if m in order else len(order), m, line)

    return "\n".join("\n".join(sorted(g, key=key)) + "\n" for g in groups if g)
