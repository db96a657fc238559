"""Nunjucks -> Jinja2: promptfoo renders prompts with Nunjucks, gpo-action with Jinja2. Most syntax
reads the same in both; the constructs that differ are rewritten here, and each rewrite is named so
the import can list it. What has no Jinja2 reading (promptfoo's own filters) is reported apart."""

from __future__ import annotations

import re

# (pattern, replacement, what the import says it changed)
_REWRITES = (
    (re.compile(r"\|\s*dump\b"), "| tojson", "`| dump` became `| tojson`"),
    (re.compile(r"\{%(-?)\s*elseif\b"), r"{%\1 elif", "`{% elseif %}` became `{% elif %}`"),
    (re.compile(r"(\{\{[^}]*?\b\w+)\.length\b"), r"\1 | length", "`x.length` became `x | length`"),
)
# promptfoo's own Nunjucks filters, which Jinja2 lacks
_UNKNOWN_FILTERS = re.compile(r"\|\s*(load)\b")


def to_jinja(source: str) -> tuple[str, list[str], list[str]]:
    """(the Jinja2 text, the rewrites made, the constructs that cannot be converted)."""
    changes: list[str] = []
    for pattern, replacement, what in _REWRITES:
        source, count = pattern.subn(replacement, source)
        if count:
            changes.append(what)
    missing = sorted({f"the promptfoo filter `| {m}`" for m in _UNKNOWN_FILTERS.findall(source)})
    return source, changes, missing
