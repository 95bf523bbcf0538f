"""The entry point: write the file, then run it here and compare the network it builds with the original."""

from __future__ import annotations

import sys
import types

import torch
import torch.nn as nn

from archsearch.deploy.codegen.origins import _describe
from archsearch.deploy.codegen.values import _layout
from archsearch.deploy.codegen.writer import _Writer
from archsearch.errors import ExportError


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
