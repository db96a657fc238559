"""The one registry pattern (house rules 1 and 10): a table from name to entry, filled by
`register`, emptied by `unregister` (a test's fake leaves as it came, as llm's MockModel does), read
as a mapping, and looked up by `lookup(name)`, whose error lists the known names.

    SCHEDULES: Registry[ScheduleFactory] = Registry("schedule")
    SCHEDULES.register("cosine", CosineSchedule)
    SCHEDULES.lookup("cosin")     # ValueError: unknown schedule 'cosin' (known: cosine)

    @SCHEDULES.decorator("linear")  # the same, as a decorator
    class LinearSchedule: ...

Used by `assertions.CHECKERS`, `llm/providers.PROVIDERS` and the optimizer parts' tables
(`optimize/directions.DIRECTIONS`, `refiners`, `schedules`, `selectors`, `similarity`, `stoppers`,
`presets.PRESETS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Entries by name. `unknown` and `taken` are the error messages, formatted with `kind`,
    `name` and (for `unknown`) `known`, the sorted names joined by commas."""

    def __init__(self, kind: str, *, unknown: str = "unknown {kind} {name!r} (known: {known})",
                 taken: str = "{kind} {name!r} is already registered") -> None:
        self.kind = kind
        self._unknown = unknown
        self._taken = taken
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; a taken name is a programming error (ValueError)."""
        if name in self._entries:
            raise ValueError(self._taken.format(kind=self.kind, name=name))
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """`register(name, entry)` as a decorator: returns the entry unchanged."""

        def decorate(entry: T) -> T:
            return self.register(name, entry)

        return decorate

    def unregister(self, name: str) -> T:
        """Remove `name` and return its entry (ValueError, listing the known names, when absent)."""
        entry = self.lookup(name)
        del self._entries[name]
        return entry

    def lookup(self, name: str) -> T:
        """The entry for `name`, or a ValueError naming the known entries."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(self._unknown.format(kind=self.kind, name=name, known=", ".join(self.names()) or "none")) \
                from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
