"""Name -> class registries, one per kind (timm's register/create/list pattern).

Adding a component is one file: a module in the kind's package (``archsearch/spaces/``,
``archsearch/strategies/``, ...) that registers its class with the decorator is found by
importing every module of that package on the registry's first lookup, and a component in
another distribution is found through its entry point (group ``archsearch.spaces``,
``archsearch.strategies``, ``archsearch.oneshot``, ``archsearch.evaluators``,
``archsearch.executors``, ``archsearch.datasets``), whose target is either the module that
registers it or the class itself (registered under the entry point's name).

Options are the class's ``Options`` dataclass (:mod:`archsearch.options`): the registry checks
them, lists them and gives their defaults from that one declaration.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import MISSING
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

from archsearch.errors import ConfigError, UnknownNameError
from archsearch.options import Configurable, Declared, declared, parse

T = TypeVar("T", bound=Configurable)


class Registry(Generic[T]):
    def __init__(self, kind: str, section: str = "", package: str = "", group: str = "") -> None:
        """``kind`` names the components in messages, ``section`` is the config section their
        options live in, ``package`` the package whose modules register them, ``group`` the entry
        point group of plugins."""
        self.kind, self.section = kind, section or kind
        self.package, self.group = package, group
        self._classes: dict[str, type[T]] = {}
        self._loaded = not (package or group)

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._classes[name] = cls
            cls.name, cls.section, cls.kind = name, self.section, self.kind
            return cls

        return decorator

    # -- discovery -----------------------------------------------------------------
    def _load(self) -> None:
        """Import the package's modules and the plugins, once (registration is their import)."""
        if self._loaded:
            return
        self._loaded = True
        if self.package:
            pkg = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(pkg.__path__, self.package + "."):
                if not info.name.rsplit(".", 1)[-1].startswith("_"):
                    importlib.import_module(info.name)
        if self.group:
            for ep in entry_points(group=self.group):
                try:
                    target = ep.load()
                except Exception as exc:  # a broken plugin: one line naming it
                    raise ConfigError(f"plugin {ep.name!r} ({self.group} = {ep.value}) failed to import: "
                                      f"{type(exc).__name__}: {exc}") from exc
                if isinstance(target, type) and target not in self._classes.values():
                    self.register(ep.name)(target)

    # -- lookup --------------------------------------------------------------------
    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._classes

    def get(self, name: str) -> type[T]:
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r} (valid: {', '.join(self.names())})"
            ) from None

    # -- options -------------------------------------------------------------------
    def options(self, name: str) -> list[Declared]:
        """The options ``name`` declares, in order, with types, defaults, bounds and help."""
        return declared(self.get(name).Options)

    def option_names(self, name: str) -> list[str]:
        return [d.name for d in self.options(name)]

    def defaults(self, name: str) -> dict[str, Any]:
        """Every option that has a default, with it: what a config that leaves it out gets."""
        return {d.name: d.default for d in self.options(name) if d.default is not MISSING}

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        """Raise a ConfigError for the first unknown or invalid option (nothing is built)."""
        parse(self.get(name).Options, options, self.section, f"{self.kind} {name!r}")

    def create(self, name: str, *args: Any, **options: Any) -> T:
        """Instantiate ``name``; positional ``args`` are the framework's, ``options`` the user's.
        Only option errors are ConfigErrors (raised by the options' own parsing); anything else a
        constructor raises is a bug and propagates as it is."""
        return self.get(name)(*args, **options)


class RegistryUnion:
    """Several registries read as one kind: the ``strategy`` section names either an ask/tell
    strategy or a one-shot method, and a bad name lists both."""

    def __init__(self, kind: str, *parts: Registry[Any]) -> None:
        self.kind, self.parts = kind, parts

    def names(self) -> list[str]:
        return sorted(n for part in self.parts for n in part.names())

    def __contains__(self, name: object) -> bool:
        return any(name in part for part in self.parts)

    def _part(self, name: str) -> Registry[Any]:
        for part in self.parts:
            if name in part:
                return part
        raise UnknownNameError(f"unknown {self.kind} {name!r} (valid: {', '.join(self.names())})")

    def get(self, name: str) -> type:
        return self._part(name).get(name)

    def options(self, name: str) -> list[Declared]:
        return self._part(name).options(name)

    def option_names(self, name: str) -> list[str]:
        return self._part(name).option_names(name)

    def defaults(self, name: str) -> dict[str, Any]:
        return self._part(name).defaults(name)

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        self._part(name).check_options(name, options)
