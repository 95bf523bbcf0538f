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
        sig = inspect.signature(self.get(name).__init__)
        return [
            p.name
            for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip
        ]

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
