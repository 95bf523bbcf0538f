"""Name -> class registries, one per kind (timm's register/create/list pattern).

Options given by name (from YAML, ``--set`` or Python) are checked against the
class's ``__init__`` signature so that a typo is an error naming the valid keys.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, TypeVar

from archsearch.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._classes[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r} (valid: {', '.join(self.names())})"
            ) from None

    def option_names(self, name: str, skip: tuple[str, ...] = ()) -> list[str]:
        """The constructor's named parameters; a constructor taking ``**options`` passes them on to
        its base class, whose named parameters are then valid too (shared options live once)."""
        names: list[str] = []
        for klass in self.get(name).__mro__:
            if "__init__" not in vars(klass):
                continue
            params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
            names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                      and p.name not in skip and p.name not in names]
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return names

    def defaults(self, name: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """Every option that has a default, with it (following ``**options`` up the class tree as
        :meth:`option_names` does): what a config that leaves the option out gets."""
        out: dict[str, Any] = {}
        for klass in self.get(name).__mro__:
            if "__init__" not in vars(klass):
                continue
            params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
            for p in params:
                if (p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip
                        and p.default is not p.empty and p.name not in out):
                    out[p.name] = p.default
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return out

    def check_options(self, name: str, options: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
        valid = self.option_names(name, skip)
        for key in options:
            if key not in valid:
                raise ConfigError(
                    f"unknown option {key!r} for {self.kind} {name!r} "
                    f"(valid: {', '.join(valid) if valid else 'none'})"
                )

    def create(self, name: str, *args: Any, skip: tuple[str, ...] = (), **options: Any) -> T:
        """Instantiate ``name``; positional ``args`` are the framework's, ``options`` the user's."""
        cls = self.get(name)
        self.check_options(name, options, skip)
        try:
            return cls(*args, **options)
        except TypeError as exc:  # wrong option type reaching the constructor
            raise ConfigError(f"bad options for {self.kind} {name!r}: {exc}") from exc


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

    def option_names(self, name: str, skip: tuple[str, ...] = ()) -> list[str]:
        return self._part(name).option_names(name, skip)

    def defaults(self, name: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return self._part(name).defaults(name, skip)

    def check_options(self, name: str, options: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
        self._part(name).check_options(name, options, skip)
