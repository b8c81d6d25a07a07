"""A tiny name -> factory registry, so that a new model or method is one decorated function."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from depthscope.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually factories). ``kind`` names the registry in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self.renamed: dict[str, str] = {}  # old name -> new name, for an error that says so

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` adds the decorated object under ``name``."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name lists the valid ones."""
        try:
            return self._items[name]
        except KeyError:
            if name in self.renamed:
                raise UnknownNameError(f"{self.kind} {name!r} is now called {self.renamed[name]!r}") from None
            valid = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names, sorted; with ``pattern``, only those matching it (shell-style, e.g. ``meter-*``)."""
        names = sorted(self._items)
        return names if pattern is None else fnmatch.filter(names, pattern)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for plugins and tests that register temporary entries)."""
        self.get(name)
        del self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
