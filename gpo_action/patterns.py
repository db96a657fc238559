"""User regexes (the `regex` assertion, `extract`): Python's syntax, a bounded search.

A suite comes from a pull request, so its patterns are hostile input: `(a|aa)+$` on forty
characters backtracks for hours in `re`, which has no timeout. A pattern is therefore checked
with `re` (the syntax and error messages users know) and run by the `regex` engine (a superset
of `re`'s syntax, same semantics in its default VERSION0 mode), whose searches take a timeout:

    compiled = compile_pattern(r"Category: (\\w+)")   # re.error for a bad pattern
    match = search(compiled, output)                  # PatternTimeout after REGEX_TIMEOUT s

Only the first MAX_REGEX_INPUT characters are searched. `regex` is imported on first use.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Searches look at most at this many leading characters of a text.
MAX_REGEX_INPUT = 100_000
# Seconds one search may take before it is abandoned as catastrophic backtracking.
REGEX_TIMEOUT = 1.0


class PatternTimeout(ValueError):
    """A search ran past REGEX_TIMEOUT (a checker error: the assertion fails with this reason)."""


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern (a `regex.Pattern`); raises `re.error` with re's message when invalid."""
    re.compile(pattern)
    import regex

    try:
        return regex.compile(pattern)
    except regex.error as exc:  # re accepts it, regex does not (not known to happen): say so in re's terms
        raise re.error(f"{exc} (in the regex engine)") from None


def search(compiled: Any, text: str, timeout: float = REGEX_TIMEOUT) -> Any:
    """`compiled.search` over the first MAX_REGEX_INPUT characters of `text`, bounded in time."""
    try:
        return compiled.search(text[:MAX_REGEX_INPUT], timeout=timeout)
    except TimeoutError:
        raise PatternTimeout(f"pattern {compiled.pattern!r} gave up after {timeout:g} s "
                             "(catastrophic backtracking on this output)") from None


__all__ = ["MAX_REGEX_INPUT", "REGEX_TIMEOUT", "PatternTimeout", "compile_pattern", "search"]
