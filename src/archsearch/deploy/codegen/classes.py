"""Custom nn.Module classes, written once on the shared base with the members their code reads."""

from __future__ import annotations

import math
import types
from typing import Any

import torch.nn as nn

from archsearch.deploy.codegen.origins import _SKIP_MEMBERS, _Cannot, _is_custom
from archsearch.deploy.codegen.printer import _Call, _names_in, _render
from archsearch.deploy.codegen.source import _indent, _source
from archsearch.deploy.codegen.state import _ClassInfo, _WriterState
from archsearch.errors import ExportError


class _ModuleClasses(_WriterState):
    """Custom nn.Module classes: written once on the shared base, with the members their code reads."""

    def _module_class(self, cls: type) -> _ClassInfo:
        info = self.classes.get(cls)
        if info is not None:
            return info
        name = self._claim(cls.__name__, ("object", id(cls)))
        info = _ClassInfo(cls, name, [], set(), math.inf)
        self.classes[cls] = info
        has_base = False
        for base in cls.__bases__:
            if base is nn.Module:
                info.bases.append("Module")
                has_base = True
            elif base is object:
                continue
            elif _is_custom(base.__module__):
                if issubclass(base, nn.Module):
                    info.bases.append(self._module_class(base).name)
                    has_base = True
                else:
                    try:
                        info.bases.append(self._copy_class(base))
                    except _Cannot as exc:
                        raise ExportError(f"code export cannot express the base class of {cls.__name__} ({exc})") \
                            from None
            else:
                try:
                    info.bases.append(self._ref(base, f"the base of {cls.__name__}"))
                except _Cannot as exc:
                    raise ExportError(f"code export cannot express the base class of {cls.__name__} ({exc})") \
                        from None
        if not has_base:
            info.bases.insert(0, "Module")
        info.deps = {b.partition(".")[0] for b in info.bases}
        return info

    def _wanted(self, name: str, entry: Any) -> bool:
        if name in _SKIP_MEMBERS:
            return False
        if name.startswith("__") and name.endswith("__"):
            return isinstance(entry, (types.FunctionType, staticmethod, classmethod, property))
        return name in self.attrs

    def _complete_classes(self) -> None:
        """Copy every member the copied code may use, until nothing new is read."""
        changed = True
        while changed:
            changed = False
            for info in list(self.classes.values()):
                required = _implements(info.cls)
                for name, entry in list(vars(info.cls).items()):
                    if name in info.members or not (self._wanted(name, entry) or name in required):
                        continue
                    info.members[name] = self._member(info, name, entry)
                    changed = True

    def _member(self, info: _ClassInfo, name: str, entry: Any) -> tuple[float, str]:
        cls = info.cls
        owner = f"{info.name}.{name}"
        funcs: list[Any] = []
        if isinstance(entry, (staticmethod, classmethod)):
            funcs = [entry.__func__]
        elif isinstance(entry, property):
            funcs = [f for f in (entry.fget, entry.fset, entry.fdel) if f is not None]
        elif isinstance(entry, types.FunctionType):
            funcs = [entry]
        own = [f for f in funcs if isinstance(f, types.FunctionType) and f.__name__ == name
               and f.__qualname__.endswith(f"{cls.__name__}.{name}")]
        if funcs and len(own) == len(funcs):
            for f in own:
                if any(v != "__class__" for v in f.__code__.co_freevars):
                    raise ExportError(f"code export cannot express {owner} (it reads variables of an enclosing "
                                      f"function: {', '.join(f.__code__.co_freevars)})")
            # one snippet, so that a property's ``@name.setter`` finds its getter
            joined = "\n".join(_source(f, owner).rstrip() + "\n" for f in own)
            src, deps = self._analyze(joined, owner, own[0].__globals__, class_name=cls.__name__)
            info.deps |= deps
            first = min(f.__code__.co_firstlineno for f in own)
            return (-1.0 if name == "forward" else float(first)), _indent(src, 4)
        wrapper = type(entry).__name__ if isinstance(entry, (staticmethod, classmethod)) and not own else ""
        try:
            node = self._value(entry.__func__ if wrapper else entry, owner)
            if wrapper:  # ``act = staticmethod(torch.relu)``
                node = _Call(self._builtin(wrapper), [node])
        except _Cannot as exc:
            raise ExportError(f"code export cannot express {owner} ({exc} read by the copied code)") from None
        info.deps |= {t.partition(".")[0] for t in _names_in(node)}
        return -2.0, _indent(f"{name} = {_render(node, 4, len(name) + 3)}\n", 4)


def _implements(cls: type) -> set[str]:
    """Methods ``cls`` implements for an abstract base (a capability interface): the copied class
    keeps them even when the copied code never calls them, or it could not be instantiated."""
    return {name for base in cls.__mro__[1:] for name, entry in vars(base).items()
            if getattr(entry, "__isabstractmethod__", False)}
