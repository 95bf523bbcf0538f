"""Writing plain values as code, and comparing a rebuilt value or module with the original."""

from __future__ import annotations

import functools
import inspect
import math
import types
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from archsearch.deploy.codegen.origins import (
    _BOOKKEEPING,
    _MAX_LITERAL_TENSOR,
    _a,
    _Cannot,
    _describe,
    _is_stdlib,
    _is_torch,
)
from archsearch.deploy.codegen.printer import _Atom, _Call, _Dict, _flat, _Seq, _string
from archsearch.deploy.codegen.state import _WriterState
from archsearch.errors import ExportError


class _Values(_WriterState):
    """Plain values as code: literals, tensors, parameters, references to importable objects."""

    def _value(self, value: Any, what: str) -> Any:
        """A node writing ``value`` as a literal; raises _Cannot."""
        kind = type(value)
        if value is None or kind is bool:
            return _Atom(repr(value))
        if kind is str:
            return _Atom(_string(value))
        if kind is int or kind is bytes:
            return _Atom(repr(value))
        if isinstance(value, int) and type(value).__module__ == "numpy":  # numpy scalars: plain numbers
            return _Atom(repr(int(value)))
        if isinstance(value, float) and kind is not float and type(value).__module__ == "numpy":
            value, kind = float(value), float
        if kind is float:
            if math.isfinite(value):
                return _Atom(repr(value))
            return _Atom('float("nan")' if math.isnan(value) else ('float("inf")' if value > 0 else '-float("inf")'))
        if kind is complex and all(math.isfinite(v) for v in (value.real, value.imag)):
            return _Atom(repr(value))
        if kind is tuple:
            return _Seq("(", ")", [self._value(v, what) for v in value], tuple1=True)
        if kind is list:
            return _Seq("[", "]", [self._value(v, what) for v in value])
        if kind is set or kind is frozenset:
            items = sorted((self._value(v, what) for v in value), key=_flat)
            node = _Seq("{", "}", items) if items else _Call(self._builtin("set"))
            return _Call(self._builtin("frozenset"), [node] if items else []) if kind is frozenset else node
        if kind is dict:
            return _Dict([(self._value(k, what), self._value(v, what)) for k, v in value.items()])
        if kind is OrderedDict:
            pairs = _Seq("[", "]", [_Seq("(", ")", [self._value(k, what), self._value(v, what)])
                                    for k, v in value.items()])
            return _Call(self._ref(OrderedDict, what), [pairs])
        if kind is torch.dtype:
            return _Atom(f"{self._import_module('torch')}.{str(value).rpartition('.')[2]}")
        if kind is torch.device:
            return _Call(f"{self._import_module('torch')}.device", [_Atom(_string(str(value)))])
        if kind is torch.Size:
            return _Call(f"{self._import_module('torch')}.Size", [self._value(list(value), what)])
        if kind is torch.Tensor:
            return self._tensor_literal(value, what)
        if kind is functools.partial:
            return _Call(self._ref(functools.partial, what), [_Atom(self._ref(value.func, what))]
                         + [self._value(a, what) for a in value.args],
                         [(k, self._value(v, what)) for k, v in value.keywords.items()])
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)) or callable(value) and (
                _is_torch(getattr(value, "__module__", None)) or _is_stdlib(getattr(value, "__module__", None))):
            return _Atom(self._ref(value, what))
        raise _Cannot(_describe(value))

    def _tensor_literal(self, value: torch.Tensor, what: str) -> Any:
        if value.numel() > _MAX_LITERAL_TENSOR or value.is_complex() or value.device.type == "meta":
            raise _Cannot(f"a tensor of shape {tuple(value.shape)}")
        torch_ = self._import_module("torch")
        data = self._value(value.detach().cpu().tolist(), what)
        return _Call(f"{torch_}.tensor", [data], [("dtype", self._value(value.dtype, what))])

    def _empty(self, t: torch.Tensor) -> Any:
        torch_ = self._import_module("torch")
        dims = [_Atom(str(d)) for d in t.shape] or [_Atom("()")]
        kwargs = [] if t.dtype == torch.get_default_dtype() else [("dtype", self._value(t.dtype, "a dtype"))]
        return _Call(f"{torch_}.empty", dims, kwargs)

    def _parameter(self, p: torch.Tensor, path: str) -> Any:
        if type(p) is not nn.Parameter:
            raise ExportError(f"code export cannot express the parameter '{path}' ({_a(type(p).__name__)})")
        kwargs = [] if p.requires_grad else [("requires_grad", _Atom("False"))]
        return _Call(f"{self._import_module('torch.nn')}.Parameter", [self._empty(p)], kwargs)


def _simplify(value: Any) -> Any:
    """``(3, 3)`` -> ``3``: the short form most constructors accept for a tuple of equal numbers."""
    if type(value) is tuple and value and all(type(v) is type(value[0]) and v == value[0] for v in value):
        return value[0]
    return value


def _same(a: Any, b: Any) -> bool:
    if b is inspect.Parameter.empty:
        return False
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _layout(m: nn.Module) -> tuple:
    return tuple((k, tuple(v.shape), v.dtype) for k, v in m.state_dict(keep_vars=True).items())


def _simple(value: Any) -> bool:
    if value is None or type(value) in (bool, int, float, str, bytes, complex):
        return True
    if type(value) in (tuple, list):
        return all(_simple(v) for v in value)
    if type(value) is dict:
        return all(_simple(k) and _simple(v) for k, v in value.items())
    return False


def _plain_state_equal(orig: nn.Module, built: nn.Module) -> bool:
    """No attribute of the original is missing, and its plain values are equal."""
    mine, theirs = vars(orig), vars(built)
    for key, value in mine.items():
        if key in _BOOKKEEPING:
            continue
        if key not in theirs:
            return False
        if _simple(value) and not (value == theirs[key] or repr(value) == repr(theirs[key])):
            return False
    return True
