"""The one pattern behind every optimizer registry: an UPPER_CASE dict, a `register` decorator
and a `get_<thing>(name)` whose error lists the known names (style rules 1 and 10).

Each parts module (`directions`, `refiners`, `schedules`, `selectors`, `similarity`, `stoppers`)
owns its dict and binds these two helpers to it; built-ins register exactly as an extension would.
"""

from __future__ import annotations

from typing import Callable, MutableMapping, TypeVar

T = TypeVar("T")


def registrar(table: MutableMapping[str, T], kind: str) -> Callable[[str], Callable[[T], T]]:
    """A `register(name)` decorator for `table`; registering a taken name is a programming error."""

    def register(name: str) -> Callable[[T], T]:
        def decorate(part: T) -> T:
            if name in table:
                raise ValueError(f"{kind} {name!r} is already registered")
            table[name] = part
            return part

        return decorate

    return register


def lookup(table: MutableMapping[str, T], kind: str, name: str) -> T:
    """`table[name]`, or a ValueError naming the known entries."""
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise ValueError(f"unknown {kind} {name!r} (known: {known})") from None
