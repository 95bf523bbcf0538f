"""The file being written (names, imports, helpers, classes) and its transactions."""

from __future__ import annotations

import inspect
import keyword
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Optional

import torch.nn as nn

from archsearch.deploy.codegen.origins import (
    _BASE_SOURCE,
    _Cannot,
    _describe,
    _is_custom,
    _is_stdlib,
    _is_torch,
    _top,
)
from archsearch.errors import ExportError


# -- the generated file's contents ---------------------------------------------------------
@dataclass
class _Item:
    """A top-level helper: a constant, a function or a plain class."""

    name: str
    kind: str
    source: str
    deps: set[str]
    order: int


@dataclass
class _ClassInfo:
    """A custom nn.Module class, written with the generic constructor and the members it needs."""

    cls: type
    name: str
    bases: list[str]
    deps: set[str]
    order: float
    members: dict[str, tuple[float, str]] = field(default_factory=dict)  # name -> (sort key, code)


class _WriterState:
    """The file being written: its top-level names, imports, helpers and classes, and transactions
    over them. The mixins (``values``, ``copied``, ``classes``, ``tree``) add to it; ``writer._Writer``
    puts them together (``__init__`` analyses the base's source with ``_CopiedCode._analyze``)."""

    model: nn.Module

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names: dict[str, Any] = {}  # written top-level name -> what it is (a key)
        self.ns: dict[str, Any] = {}  # imported names -> live objects (to check constructor calls)
        self.imports: dict[str, None] = {}
        self.items: dict[str, _Item] = {}
        self.classes: dict[type, _ClassInfo] = {}
        self.attrs: set[str] = {"forward"}
        self.counter = 0
        self.skipped: list[tuple[str, str, str]] = []  # (class name, attribute, description)
        self.ties: list[tuple[str, str]] = []  # (path, same-object path)
        self.checked: dict[tuple, bool] = {}
        for name, key in (("annotations", ("future",)), ("build_model", ("build",)), ("Module", ("base",)),
                          ("model", ("local",))):
            self.names[name] = key
        self._import_module("torch", "torch")
        self._import_module("torch.nn", "nn")
        self.base_source = self._analyze(_BASE_SOURCE, "the Module base", {"nn": nn, "__name__": __name__})[0]
        self.attrs = {"forward"}  # what the base reads is nn.Module's, not the network's

    # -- transactions (a plain attribute that turns out not writable leaves no trace) --------
    def _snapshot(self) -> tuple:
        return (dict(self.names), dict(self.ns), dict(self.imports), dict(self.items), dict(self.classes),
                set(self.attrs), self.counter)

    def _restore(self, snap: tuple) -> None:
        (self.names, self.ns, self.imports, self.items, self.classes, self.attrs, self.counter) = (
            snap[0], snap[1], snap[2], snap[3], snap[4], snap[5], snap[6])

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    # -- names ---------------------------------------------------------------------------
    def _claim(self, preferred: str, key: Any) -> str:
        for name in (preferred if i == 1 else f"{preferred}_{i}" for i in range(1, 1000)):
            if keyword.iskeyword(name):
                continue
            current = self.names.get(name)
            if current == key:
                return name
            if current is None:
                self.names[name] = key
                return name
        raise ExportError(f"code export cannot find a free name for {preferred}")

    def _import_module(self, module: str, alias: Optional[str] = None) -> str:
        """An alias bound to ``module`` in the generated file (adding its import line)."""
        if alias is None:
            alias = {"torch.nn": "nn", "torch.nn.functional": "F"}.get(module)
        if alias is None and "." in module:  # ``import a.b`` binds ``a``: refer to it as ``a.b``
            top = _top(module)
            if self._claim(top, ("module", top)) == top:
                self.ns[top] = sys.modules[top]
                self.imports[f"import {module}"] = None
                return module
            alias = module.rpartition(".")[2]
        name = self._claim(alias or module, ("module", module))
        self.ns[name] = sys.modules[module]
        self.imports[f"import {module}" if name == module else f"import {module} as {name}"] = None
        return name

    def _import_path(self, obj: Any, hint: Optional[str] = None) -> Optional[tuple[str, str]]:
        """A public (module, attribute) of torch or the standard library holding ``obj``."""
        owner = getattr(obj, "__module__", None)
        if not isinstance(owner, str):
            return None
        if not (_is_torch(owner) or _is_stdlib(owner)):
            return None
        parts = owner.split(".")
        modules = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if _is_torch(owner):
            modules = ["torch", "torch.nn", "torch.nn.functional"] + modules
        else:
            modules.append("typing")  # typing's aliases claim their origin's module (collections.abc)
        attrs = [a for a in (hint, getattr(obj, "__name__", None), getattr(obj, "__qualname__", None))
                 if isinstance(a, str) and a.isidentifier()]
        for module in dict.fromkeys(modules):
            if any(p.startswith("_") for p in module.split(".")) and module != "builtins":
                continue
            mod = sys.modules.get(module)
            for attr in attrs:
                try:
                    if mod is not None and getattr(mod, attr, None) is obj:
                        return module, attr
                except Exception:  # noqa: BLE001 -- odd module attributes
                    continue
        return None

    def _ref(self, obj: Any, what: str) -> str:
        """An expression naming a function or class (importing or copying it)."""
        target = inspect.unwrap(obj) if callable(obj) else obj
        if _is_custom(getattr(target, "__module__", None)):
            if isinstance(obj, type):
                if issubclass(obj, nn.Module):
                    return self._module_class(obj).name
                return self._copy_class(obj)
            if isinstance(target, types.FunctionType):
                return self._copy_function(obj)
            raise _Cannot(_describe(obj))
        path = self._import_path(obj)
        if path is None:
            raise _Cannot(_describe(obj))
        module, attr = path
        if module == "builtins":
            return self._builtin(attr)
        return f"{self._import_module(module)}.{attr}"

    def _builtin(self, name: str) -> str:
        if self._claim(name, ("builtin", name)) == name:
            return name
        return f"{self._import_module('builtins')}.{name}"
