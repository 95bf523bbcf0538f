"""Write a built network as one standalone, readable ``model.py`` that imports only torch.

:func:`network_source` turns any ``torch.nn.Module`` tree into the source of a module that defines
every class the network needs and ``build_model()``, which returns a network with exactly the
original's ``state_dict()`` keys, shapes and dtypes and the same forward computation (the weights
are not in the file: load them with ``load_state_dict``). Nothing here knows a search space: a new
space needs no edits.

How the network is written:

* **torch built-ins** (a class from ``torch``) become constructor calls whose arguments are read
  back from the instance's same-named attributes (``bias`` from ``module.bias is not None``),
  defaults left out; ``nn.Sequential``/``nn.ModuleList``/``nn.ModuleDict`` take their children.
  Each call is evaluated here (on the meta device) and compared with the original (class,
  ``repr``, state-dict shapes and dtypes, plain attributes); a mismatch raises :class:`ExportError`.
* **custom classes** (any class not from torch, the standard library or an installed third-party
  package: archsearch's own, a test's, a script's) are written once, deriving from one shared base
  ``Module`` whose constructor sets every keyword argument as an attribute. Their methods are
  copied verbatim from the original source, starting from ``forward`` and adding every method,
  property, static or class method whose name the copied code reads as an attribute, until
  nothing new is read; ``__init__`` is not copied. The globals of the copied code (found with
  :mod:`dis`, nested code included) are written too: torch and standard-library modules and
  objects as imports, custom module-level functions and plain classes as their source, constants
  as literals. Anything else raises :class:`ExportError`.
* **instance attributes** of a custom module (its ``__dict__`` minus nn.Module's bookkeeping) are
  constructor arguments when they can be written as literals (numbers, strings, containers of
  them, torch functions, custom functions); one that cannot is left out when no copied code reads
  it (found with :mod:`ast`) and raises :class:`ExportError` when some does.
* ``build_model()`` is one nested constructor expression; parameters or modules reachable under
  two names are tied again after it, as ``model.decoder.weight = model.embedding.weight``.

The result is compiled, executed and built here (on the meta device) and its state-dict layout
compared with the original's before it is returned.

Custom code is anything not from torch, the standard library or an installed third-party package
(site-/dist-packages), plus archsearch wherever it is installed; third-party code raises
:class:`ExportError` since the file may import only torch and the standard library.

Limits: copied code that constructs a custom module class raises :class:`ExportError` (the written
class has the generic constructor, not the original one; construction through ``cls(...)`` or an
attribute is not detected). Two written names that clash get a suffix (``Identity_2``), renamed in
the copied code too. torch modules whose constructor arguments are not attributes (``nn.LSTM``,
``nn.TransformerEncoderLayer``) and modules with forward hooks cannot be written.
"""

from __future__ import annotations

import __future__
import ast
import builtins
import dis
import functools
import inspect
import io
import keyword
import math
import sys
import textwrap
import tokenize
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
import torch.nn as nn

from archsearch.errors import ExportError

__all__ = ["network_source"]

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


class _Writer:
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

    # -- values --------------------------------------------------------------------------
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

    # -- copied code -----------------------------------------------------------------------
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

    # -- custom module classes --------------------------------------------------------------
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
                for name, entry in list(vars(info.cls).items()):
                    if name in info.members or not self._wanted(name, entry):
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

    # -- the module tree -------------------------------------------------------------------
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

    # -- putting it together -----------------------------------------------------------------
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


def _string(text: str) -> str:
    """A string literal, double-quoted where that needs no escapes (as black writes them)."""
    literal = repr(text)
    if literal.startswith("'") and '"' not in text:
        return '"' + literal[1:-1].replace("\\'", "'") + '"'
    return literal


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


def _check(model: nn.Module, src: str) -> None:
    """Run the generated file, build its network on the meta device and compare the layout."""
    name = "_archsearch_codegen_check"
    module = types.ModuleType(name)
    module.__file__ = "<model.py>"
    sys.modules[name] = module
    try:
        exec(compile(src, "<generated model.py>", "exec", dont_inherit=True), module.__dict__)  # noqa: S102
        with torch.device("meta"):
            built = module.build_model()
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the generated code is wrong: say so, in one line
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ExportError(f"code export produced a model.py that does not build ({message})") from None
    finally:
        sys.modules.pop(name, None)
    if _layout(built) != _layout(model):
        raise ExportError("code export produced a model.py whose state dict differs from the original's")

    def groups(m: nn.Module) -> list[list[str]]:
        seen: dict[int, list[str]] = {}
        for key, t in m.state_dict(keep_vars=True).items():
            seen.setdefault(id(t), []).append(key)
        return sorted(v for v in seen.values() if len(v) > 1)

    if groups(built) != groups(model):
        raise ExportError("code export produced a model.py whose shared (tied) tensors differ from the original's")


def network_source(model: torch.nn.Module, header: str = "") -> str:
    """Source of a module ``model.py`` that defines every class needed and ``build_model()``.

    The file imports only torch and the standard library; ``build_model()`` returns a network
    whose ``state_dict()`` has the original's keys, shapes and dtypes (weights uninitialised:
    ``load_state_dict`` them) and whose forward computes what the original's does. ``header``
    becomes the file's docstring (or comment). Raises :class:`ExportError`, one line naming the
    class and attribute or global, for a network that cannot be written this way.
    """
    if not isinstance(model, nn.Module):
        raise ExportError(f"code export needs a torch.nn.Module, got {_describe(model)}")
    try:
        src = _Writer(model).source(header)
        _check(model, src)
    except ExportError as exc:
        message = str(exc)
        if "\n" in message:
            raise ExportError(" ".join(message.split())) from None
        raise
    return src
