"""Shared constants and where an object's code comes from: torch, the standard library, or custom code
(anything else archsearch, a test or a script defines) that is copied into the file.
"""

from __future__ import annotations
import __future__

import sys
import types
from typing import Any, Optional

import torch.nn as nn

_WIDTH = 100  # line length the pretty printer aims for
_MAX_LITERAL_TENSOR = 1024  # plain tensor attributes / non-persistent buffers up to this size are written out
_FUTURE = __future__.annotations.compiler_flag
_STDLIB = frozenset(sys.stdlib_module_names) | {"builtins", "__future__"}
_BOOKKEEPING = frozenset(nn.Module().__dict__)  # training, _parameters, _buffers, _modules, hooks, ...
_HOOKS = ("_forward_hooks", "_forward_pre_hooks")  # they change what forward computes
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS", "STORE_GLOBAL", "DELETE_GLOBAL"})
_MODULE_DUNDERS = frozenset({"__name__", "__file__", "__doc__", "__module__", "__qualname__", "__spec__",
                             "__loader__", "__package__", "__builtins__", "__annotations__", "__dict__",
                             "__class__", "__path__", "__cached__"})
# class-dict entries that never need copying (the generic constructor replaces __init__)
_SKIP_MEMBERS = frozenset({"__init__", "__new__", "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                           "__annotations__", "__firstlineno__", "__static_attributes__", "__slots__",
                           "__abstractmethods__", "_abc_impl", "__parameters__", "__orig_bases__",
                           "__repr__", "__str__", "__getstate__", "__setstate__", "__reduce__", "__reduce_ex__",
                           "__init_subclass__", "__class_getitem__", "__hash__", "__eq__", "__annotate__",
                           "__classcell__", "__match_args__", "__dataclass_fields__", "__dataclass_params__"})
_BASE_SOURCE = '''\
class Module(nn.Module):
    """Base of the network's classes: every keyword argument becomes an attribute (a submodule,
    a parameter or a plain value); ``buffers`` are registered as buffers, those named in
    ``non_persistent`` kept out of the state dict."""

    def __init__(self, buffers: dict | None = None, non_persistent: tuple = (), **parts: object) -> None:
        nn.Module.__init__(self)
        for name, value in parts.items():
            setattr(self, name, value)
        for name, tensor in (buffers or {}).items():
            self.register_buffer(name, tensor, persistent=name not in non_persistent)
'''
_BASE_KWARGS = ("buffers", "non_persistent")


class _Cannot(Exception):
    """A value that cannot be written as code; the message describes it ("an RNNCellArch object")."""


def _a(type_name: str) -> str:
    return f"{'an' if type_name[:1].lower() in 'aeiou' else 'a'} {type_name} object"


def _describe(value: Any) -> str:
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', None) or '?'}.{value.__qualname__}"
    return _a(type(value).__name__)


# -- where code comes from ---------------------------------------------------------------
def _top(module: str) -> str:
    return module.partition(".")[0]


def _is_torch(module: Optional[str]) -> bool:
    return bool(module) and (module == "torch" or module.startswith("torch."))  # type: ignore[union-attr]


def _is_stdlib(module: Optional[str]) -> bool:
    return bool(module) and _top(module) in _STDLIB  # type: ignore[arg-type]


def _is_custom(module: Optional[str]) -> bool:
    """Code that is copied as source: archsearch's own and anything outside torch, the standard
    library and the installed third-party packages (site-/dist-packages: those are not copied
    since the generated file may import only torch and the standard library)."""
    if not module or _is_torch(module) or _is_stdlib(module):
        return False
    if _top(module) == "archsearch":
        return True
    path = getattr(sys.modules.get(module), "__file__", None) or ""
    return "site-packages" not in path and "dist-packages" not in path
