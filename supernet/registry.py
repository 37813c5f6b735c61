"""One small registry per kind of component (spaces, strategies, predictors, accuracy models), all of one shape.

`register(name, obj)` adds one; `@register(name)` does the same on a class or function as it is defined; `names()`
lists them; `registry[name]` gives one, or raises the registry's typed error naming the allowed names.
"""

from __future__ import annotations

from typing import Any, Generic, Iterator, TypeVar

from supernet.errors import NasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one `kind` by name; an unknown name raises `error` ("unknown <kind> '<name>'; available: ...")."""

    def __init__(self, kind: str, error: type[NasError] = NasError) -> None:
        self.kind, self.error = kind, error
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: Any = None) -> Any:
        """Add `obj` under `name` (a later registration of the name replaces it); without `obj`, a decorator."""
        if obj is None:
            return lambda o: self.register(name, o)
        self._items[name] = obj
        return obj

    def names(self) -> list[str]:
        return sorted(self._items)

    def unknown(self, name: str, hint: str = "") -> NasError:
        """The error for a name that is not registered, listing the allowed ones (and `hint`, if any)."""
        return self.error(f"unknown {self.kind} '{name}'; available: {', '.join(self.names())}{hint}")

    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            raise self.unknown(name)
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)



__all__ = ["Registry"]
