"""The network as one nested constructor expression, and the paths that tie shared tensors again."""

from __future__ import annotations

import inspect
import keyword
from collections import OrderedDict
from typing import Any, Optional

import torch
import torch.nn as nn

from archsearch.deploy.codegen.origins import (
    _BASE_KWARGS,
    _BOOKKEEPING,
    _CONTAINERS,
    _HOOKS,
    _Cannot,
    _describe,
    _is_custom,
    _is_torch,
)
from archsearch.deploy.codegen.printer import _Atom, _Call, _Dict, _flat, _Seq, _string
from archsearch.deploy.codegen.state import _WriterState
from archsearch.deploy.codegen.values import _layout, _plain_state_equal, _same, _simplify
from archsearch.errors import ExportError


class _Tree(_WriterState):
    """The network as one nested constructor expression: containers, torch built-ins, custom modules."""

    def tree(self) -> Any:
        self.seen_modules: dict[int, str] = {}
        self.seen_tensors: dict[int, str] = {}
        return self._node(self.model, "")

    def _node(self, m: nn.Module, path: str) -> Any:
        where = f" at '{path}'" if path else ""
        if id(m) in self.seen_modules:  # a shared module: a placeholder now, the same object after
            self.ties.append((path, self.seen_modules[id(m)]))
            return _Call(f"{self._import_module('torch.nn')}.Identity")
        self.seen_modules[id(m)] = path
        cls = type(m)
        for hooks in _HOOKS:
            if getattr(m, hooks, None):
                raise ExportError(f"code export cannot express {cls.__name__}{where}: it has {hooks.strip('_')}")
        if _is_torch(cls.__module__):
            if cls in _CONTAINERS:
                return self._container(m, path)
            return self._builtin_module(m, path)
        if not _is_custom(cls.__module__):
            raise ExportError(f"code export cannot express {cls.__module__}.{cls.__qualname__}{where} (a third-party "
                              f"class; the exported code may import only torch and the standard library)")
        return self._custom(m, path)

    def _tensor_seen(self, t: torch.Tensor, path: str) -> bool:
        if id(t) in self.seen_tensors:
            self.ties.append((path, self.seen_tensors[id(t)]))
            return True
        self.seen_tensors[id(t)] = path
        return False

    def _container(self, m: nn.Module, path: str) -> Any:
        cls = type(m)
        fresh = cls()
        extra = sorted(k for k in vars(m) if k not in vars(fresh))
        if extra or m._buffers or (m._parameters and cls not in (nn.ParameterList, nn.ParameterDict)):
            what = ", ".join(extra) or "parameters or buffers of its own"
            raise ExportError(f"code export cannot express {cls.__name__} at '{path}' (extra state: {what})")
        func = self._ref(cls, cls.__name__)
        if cls in (nn.ParameterList, nn.ParameterDict):
            entries = []
            for key, p in m._parameters.items():
                sub = _join(path, key)
                entries.append((key, self._parameter(p, sub)))
                self._tensor_seen(p, sub)
            if not entries:
                return _Call(func)
            if cls is nn.ParameterList:
                return _Call(func, [_Seq("[", "]", [v for _, v in entries])])
            return _Call(func, [_Dict([(_Atom(_string(k)), v) for k, v in entries])])
        children = []
        for key, child in m._modules.items():
            if child is None:
                raise ExportError(f"code export cannot express {cls.__name__} at '{path}' (its entry {key} is None)")
            children.append((key, self._node(child, _join(path, key))))
        if not children:
            return _Call(func)
        if cls is nn.ModuleDict:
            return _Call(func, [_Dict([(_Atom(_string(k)), v) for k, v in children])])
        if [k for k, _ in children] != [str(i) for i in range(len(children))]:
            if cls is nn.ModuleList:
                raise ExportError(f"code export cannot express ModuleList at '{path}' (keys are not 0..n-1)")
            pairs = [_Seq("(", ")", [_Atom(_string(k)), v]) for k, v in children]
            return _Call(func, [_Call(self._ref(OrderedDict, "OrderedDict"), [_Seq("[", "]", pairs)])])
        if cls is nn.ModuleList:
            return _Call(func, [_Seq("[", "]", [v for _, v in children])])
        return _Call(func, [v for _, v in children])

    def _builtin_module(self, m: nn.Module, path: str) -> Any:
        cls = type(m)
        where = f"{cls.__name__} at '{path}'" if path else cls.__name__
        try:
            func = self._ref(cls, cls.__name__)
        except _Cannot:
            raise ExportError(f"code export cannot express {where} (no public name in torch)") from None
        try:
            params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            params = []
        entries: list[tuple[Optional[str], Any, Any]] = []  # (keyword, None: positional; value; default)
        positional = True
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("device", "dtype"):
                continue
            has_default = p.default is not p.empty
            if p.name == "bias" and "bias" in m._parameters:
                value: Any = m._parameters["bias"] is not None
            elif p.name in vars(m) and not isinstance(vars(m)[p.name], (torch.Tensor, nn.Module)):
                value = vars(m)[p.name]
            elif isinstance(getattr(type(m), p.name, None), property):
                value = getattr(m, p.name)
            elif has_default:
                positional = False  # left at its default; the check below says whether that is right
                continue
            else:
                raise ExportError(f"code export cannot express {where} (its constructor argument {p.name} "
                                  f"is not an attribute)")
            if positional and not has_default and p.kind is p.POSITIONAL_OR_KEYWORD:
                entries.append((None, value, p.default))
            else:
                positional = False
                entries.append((p.name, value, p.default))
        floats = {t.dtype for t in m.state_dict(keep_vars=True).values() if t.is_floating_point()}
        dtype_kw = []
        if len(floats) == 1 and floats != {torch.get_default_dtype()} and any(p.name == "dtype" for p in params):
            dtype_kw = [("dtype", self._value(next(iter(floats)), where))]
        candidates = []
        for simplified in (True, False):
            args, kwargs = [], []
            for key, value, default in entries:
                chosen = _simplify(value) if simplified else value
                if key is not None and (_same(chosen, default) or _same(value, default)):
                    continue
                try:
                    node = self._value(chosen, where)
                except _Cannot as exc:
                    raise ExportError(f"code export cannot express {where} (argument {key or 'positional'}: "
                                      f"{exc})") from None
                if key is None:
                    args.append(node)
                else:
                    kwargs.append((key, node))
            candidates.append(_Call(func, args, kwargs + dtype_kw))
        for node in candidates:
            if self._check_builtin(m, _flat(node)):
                for key, t in m.state_dict(keep_vars=True).items():  # tied tensors inside a built-in
                    self._tensor_seen(t, _join(path, key))
                return node
        raise ExportError(f"code export cannot express {where}: its constructor call cannot be derived from its "
                          f"attributes (tried {_flat(candidates[-1])})")

    def _check_builtin(self, m: nn.Module, text: str) -> bool:
        key = (type(m), text, repr(m), _layout(m))
        if key in self.checked:
            return self.checked[key]
        try:
            with torch.device("meta"):
                built = eval(text, dict(self.ns))  # noqa: S307 -- our own constructor call
        except Exception:  # noqa: BLE001 -- any failure means "not this call"
            try:
                built = eval(text, dict(self.ns))  # noqa: S307
            except Exception:  # noqa: BLE001
                built = None
        ok = (built is not None and type(built) is type(m) and repr(built) == repr(m)
              and _layout(built) == _layout(m) and _plain_state_equal(m, built)
              and all(len(getattr(m, h, ())) == len(getattr(built, h, ())) for h in
                      ("_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                       "_load_state_dict_post_hooks")))
        self.checked[key] = ok
        return ok

    def _custom(self, m: nn.Module, path: str) -> Any:
        info = self._module_class(type(m))
        where = f"{info.name} at '{path}'" if path else info.name
        for h in ("_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                  "_load_state_dict_post_hooks"):
            if getattr(m, h, None):
                raise ExportError(f"code export cannot express {where}: it has {h.strip('_')}")
        kwargs: list[tuple[str, Any]] = []
        for name, child in m._modules.items():
            kwargs.append((name, _Atom("None") if child is None else self._node(child, _join(path, name))))
        for name, p in m._parameters.items():
            if p is None:
                kwargs.append((name, _Atom("None")))
                continue
            node = self._parameter(p, _join(path, name))
            self._tensor_seen(p, _join(path, name))
            kwargs.append((name, node))
        for name, value in vars(m).items():
            if name in _BOOKKEEPING:
                continue
            snap = self._snapshot()
            try:
                kwargs.append((name, self._value(value, f"{info.name}.{name}")))
            except (_Cannot, ExportError) as exc:
                self._restore(snap)
                self.skipped.append((info.name, name, str(exc) if isinstance(exc, _Cannot) else _describe(value)))
        buffers: list[tuple[Any, Any]] = []
        non_persistent: list[str] = []
        for name, b in m._buffers.items():
            sub = _join(path, name)
            if b is None:
                kwargs.append((name, _Atom("None")))
                continue
            if name in m._non_persistent_buffers_set:
                non_persistent.append(name)
                try:
                    node = self._tensor_literal(b, sub)
                except _Cannot as exc:
                    raise ExportError(f"code export cannot express the non-persistent buffer '{sub}' ({exc}; its "
                                      f"value is not in the state dict)") from None
            else:
                node = self._empty(b)
            self._tensor_seen(b, sub)
            buffers.append((_Atom(_string(name)), node))
        names = [k for k, _ in kwargs]
        clash = [k for k in names if k in _BASE_KWARGS]
        if clash:
            raise ExportError(f"code export cannot express {where}: its attribute {clash[0]} clashes with the "
                              f"generic constructor's argument")
        if buffers:
            kwargs.append(("buffers", _Dict(buffers)))
        if non_persistent:
            kwargs.append(("non_persistent", self._value(tuple(non_persistent), where)))
        plain = [(k, v) for k, v in kwargs if k.isidentifier() and not keyword.iskeyword(k)]
        odd = [(_Atom(_string(k)), v) for k, v in kwargs if not (k.isidentifier() and not keyword.iskeyword(k))]
        # after every class its instances contain (children before parents), its bases just before it
        for base in reversed(type(m).__mro__[1:]):
            if base in self.classes:
                self.classes[base].order = self._next()
        info.order = self._next()
        return _Call(info.name, [], plain + ([(None, _Dict(odd))] if odd else []))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _access(model: nn.Module, path: str) -> str:
    """Code reaching ``model``'s submodule/parameter at a state-dict style ``path``."""
    text, current = "model", model
    for part in path.split(".") if path else []:
        text = _step(current, text, part)
        current = getattr(current, part, None) if not isinstance(current, nn.ModuleDict) else current[part]
    return text


def _step(current: Any, text: str, part: str) -> str:
    if isinstance(current, nn.ModuleDict):
        return f"{text}[{part!r}]"
    if part.isdigit() and isinstance(current, (nn.Sequential, nn.ModuleList, nn.ParameterList)):
        return f"{text}[{part}]"
    if part.isidentifier() and not keyword.iskeyword(part):
        return f"{text}.{part}"
    return f"getattr({text}, {part!r})"


def _assign(model: nn.Module, path: str, value: str) -> str:
    parent_path, _, last = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    target = _step(parent, _access(model, parent_path), last)
    if target.startswith("getattr("):
        return f"setattr({_access(model, parent_path)}, {last!r}, {value})"
    return f"{target} = {value}"
