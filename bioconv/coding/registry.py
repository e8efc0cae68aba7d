"""A name -> implementation table whose unknown names fail loudly (coding schemes, encoders)."""
from __future__ import annotations

from ..errors import ParameterError


class Registry:
    """Registered implementations of one kind, by name. Looking up a name that is not registered
    raises `ParameterError` naming it and listing the registered ones; a name cannot be registered
    twice by mistake (``replace=True`` says it is meant)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict = {}

    def register(self, name: str, entry=None, *, replace: bool = False):
        """Register ``entry`` under ``name``; without ``entry``, a class decorator that does."""
        if entry is None:
            return lambda obj: self.register(name, obj, replace=replace)
        if not isinstance(name, str) or not name:
            raise ParameterError(f"{self.kind} registry: a name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ParameterError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r}); "
                                 f"pass replace=True to replace it")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str):
        self[name]  # an unknown name is an error here too
        del self._entries[name]

    def __getitem__(self, name):
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ParameterError(f"unknown {self.kind} {name!r}; registered: {', '.join(map(repr, self))}") from None

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"<{self.kind} registry: {', '.join(self)}>"
