"""Copying custom functions and plain classes verbatim, with the globals their code reads."""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import types
from typing import Any, Optional

import torch
import torch.nn as nn

from archsearch.deploy.codegen.origins import _Cannot, _is_custom, _is_stdlib, _is_torch, _top
from archsearch.deploy.codegen.printer import _names_in, _render
from archsearch.deploy.codegen.source import _attribute_names, _compile, _global_names, _imports, _rename, _source
from archsearch.deploy.codegen.state import _Item, _WriterState
from archsearch.errors import ExportError


class _CopiedCode(_WriterState):
    """Copying custom functions and plain classes verbatim, with the globals their code reads."""

    def _analyze(self, src: str, owner: str, globs: dict, class_name: Optional[str] = None,
                 own: Optional[dict[str, str]] = None) -> tuple[str, set[str]]:
        """Bind every global of a copied snippet; returns the snippet (renamed where a written
        name differs) and the written names it needs when it is defined."""
        code = _compile(src, owner)
        for module, level in _imports(code):
            if level or not (_is_torch(module) or _is_stdlib(module)):
                raise ExportError(f"code export cannot express {owner} (it imports {'.' * level}{module}; the "
                                  f"exported code may import only torch and the standard library)")
        names, at_definition = _global_names(code)
        for node in ast.walk(ast.parse(src)):  # the generic constructor cannot take the original's arguments
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
                value = globs.get(node.func.id)
                if (isinstance(value, type) and issubclass(value, nn.Module) and _is_custom(value.__module__)
                        and node.func.id not in (own or {})):
                    raise ExportError(f"code export cannot express {owner}: it constructs {value.__name__}, whose "
                                      f"constructor is not exported (only built networks are)")
        renames = dict(own or {})
        deps: set[str] = set()
        for name in sorted(names):
            if name in renames:
                continue
            bound = self._bind(name, globs, owner)
            if bound != name:
                renames[name] = bound
            if name in at_definition:
                deps.add(bound.partition(".")[0])
        renames = {k: v for k, v in renames.items() if k != v}
        if renames:
            src = _rename(src, renames)
            after, _ = _global_names(_compile(src, owner))
            if after != {renames.get(n, n).partition(".")[0] for n in names}:
                raise ExportError(f"code export cannot rename the globals {', '.join(sorted(renames))} "
                                  f"in {owner} (a name clash with other copied code)")
        self.attrs |= _attribute_names(src, class_name)
        self._annotation_imports(src, globs, names)
        return src, deps

    def _annotation_imports(self, src: str, globs: dict, loaded: set[str]) -> None:
        """Import what annotations name from torch or the standard library (``Optional``, ``Any``),
        for readers and linters: ``from __future__ import annotations`` never evaluates them."""
        found: set[str] = set()
        for node in ast.walk(ast.parse(src)):
            annotations = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                annotations = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                                      args.vararg, args.kwarg) if a is not None] + [node.returns]
            elif isinstance(node, ast.AnnAssign):
                annotations = [node.annotation]
            for annotation in annotations:
                if annotation is not None:
                    found |= {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)}
        for name in sorted(found - loaded):
            value = globs.get(name)
            if value is None or self.names.get(name) not in (None, ("object", id(value)), ("module", getattr(
                    value, "__name__", None))):
                continue
            if isinstance(value, types.ModuleType):
                if (_is_torch(value.__name__) or _is_stdlib(value.__name__)) and "." not in name:
                    self._bind(name, globs, "an annotation")
            elif (not _is_custom(getattr(value, "__module__", None)) and self._import_path(value, name) is not None
                  and self._import_path(value, name)[0] != "builtins"):
                self._bind(name, globs, "an annotation")

    def _bind(self, name: str, globs: dict, owner: str) -> str:
        """The written name for the global ``name`` of copied code (importing/copying what it is)."""
        if name not in globs:
            if hasattr(builtins, name):
                return self._builtin(name)
            raise ExportError(f"code export cannot express {owner}: its global {name} is not defined")
        value = globs[name]
        if isinstance(value, types.ModuleType):
            module = value.__name__
            if not (_is_torch(module) or _is_stdlib(module)):
                raise ExportError(f"code export cannot express {owner}'s global {name} (module {module}; "
                                  f"the exported code may import only torch and the standard library)")
            if name == _top(module) and sys.modules.get(name) is value:
                return self._import_module(name)
            if self.names.get(name) in (None, ("module", module)):
                return self._import_module(module, name)
            return self._import_module(module)
        target = inspect.unwrap(value) if callable(value) else value
        if _is_custom(getattr(target, "__module__", None)) and isinstance(target, (type, types.FunctionType)):
            try:
                return self._ref(value, f"{owner}'s global {name}")
            except _Cannot as exc:
                raise ExportError(f"code export cannot express {owner}'s global {name} ({exc})") from None
        if not isinstance(value, (int, float, str, bytes, bool, complex, tuple, list, dict, set, frozenset,
                                  type(None), torch.dtype, torch.device, torch.Size)):
            path = self._import_path(value, name)
            if path is not None:
                module, attr = path
                if module == "builtins":
                    return self._builtin(attr)
                written = self._claim(name, ("object", id(value)))
                self.ns[written] = value
                self.imports[f"from {module} import {attr}" + ("" if written == attr else f" as {written}")] = None
                return written
        key = ("const", globs.get("__name__"), name)
        if self.names.get(name) == key:
            return name
        try:
            node = self._value(value, f"{owner}'s global {name}")
        except _Cannot as exc:
            raise ExportError(f"code export cannot express {owner}'s global {name} ({exc})") from None
        written = self._claim(name, key)
        deps = {t.partition(".")[0] for t in _names_in(node)}
        self.items[written] = _Item(written, "const", f"{written} = {_render(node, 0, len(written) + 3)}",
                                    deps, self._next())
        return written

    def _copy_function(self, func: Any) -> str:
        target = inspect.unwrap(func)
        what = f"{target.__module__}.{target.__qualname__}"
        key = ("object", id(target))
        for name, k in self.names.items():
            if k == key:
                return name
        if target.__name__ == "<lambda>" or target.__qualname__ != target.__name__:
            raise _Cannot(f"{what}, not a module-level function")
        if target.__closure__:
            raise _Cannot(f"{what}, a closure")
        written = self._claim(target.__name__, key)
        self.items[written] = _Item(written, "function", "", set(), self._next())  # placeholder (recursion)
        src, deps = self._analyze(_source(func, what), what, target.__globals__,
                                  own={target.__name__: written})
        order = self.items[written].order
        self.items[written] = _Item(written, "function", src.rstrip() + "\n", deps - {written}, order)
        return written

    def _copy_class(self, cls: type) -> str:
        what = f"{cls.__module__}.{cls.__qualname__}"
        key = ("object", id(cls))
        for name, k in self.names.items():
            if k == key:
                return name
        if cls.__qualname__ != cls.__name__:
            raise _Cannot(f"class {what}, not defined at module level")
        written = self._claim(cls.__name__, key)
        self.items[written] = _Item(written, "class", "", set(), self._next())
        module = sys.modules.get(cls.__module__)
        src, deps = self._analyze(_source(cls, f"class {what}"), f"class {what}", vars(module) if module else {},
                                  class_name=cls.__name__, own={cls.__name__: written})
        order = self.items[written].order
        self.items[written] = _Item(written, "class", src.rstrip() + "\n", deps - {written}, order)
        return written
