"""promptfoo's CSV `__expected` shorthand, as one pure function: a cell -> one assertion.

Read as promptfoo documents it (configuration/test-cases, "CSV with Assertions"): the cell is
trimmed; `grade:` and `llm-rubric:` give an llm-rubric with the rest as its rubric;
`[not-]TYPE[(THRESHOLD)][:VALUE]`, where TYPE is one of promptfoo's assertion types, gives that
assertion (contains-any/-all: comma-separated items, each trimmed; is-json/contains-json: the value
as written; otherwise trimmed; `similar` defaults to threshold 0.8 and the other graded types to
0.75); any other text is an `equals` of the whole cell. Code (`fn:`, `javascript:`, `eval:`,
`python:`, a `file://` script) is refused: nothing from a suite is executed.
Used by gpo-action's own CSV case files (`casefiles`) and by the promptfoo importer alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# promptfoo's base assertion types (its BaseAssertionTypesSchema): the names the shorthand knows.
PROMPTFOO_TYPES = (
    "answer-relevance", "bleu", "classifier", "contains", "contains-all", "contains-any", "contains-html",
    "contains-json", "contains-sql", "contains-xml", "context-faithfulness", "context-recall",
    "context-relevance", "conversation-relevance", "cost", "equals", "factuality", "finish-reason", "g-eval",
    "gleu", "guardrails", "icontains", "icontains-all", "icontains-any", "is-html", "is-json", "is-refusal",
    "is-sql", "is-valid-function-call", "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml",
    "javascript", "latency", "levenshtein", "llm-rubric", "meteor", "model-graded-closedqa",
    "model-graded-factuality", "moderation", "perplexity", "perplexity-score", "pi", "python", "regex", "rouge-n",
    "ruby", "similar", "starts-with", "webhook", "word-count",
)
_LISTS = frozenset({"contains-all", "contains-any", "icontains-all", "icontains-any"})
_RAW = frozenset({"contains-json", "is-json"})
_GRADED = frozenset({"answer-relevance", "classifier", "context-faithfulness", "context-recall", "context-relevance",
                     "cost", "latency", "levenshtein", "perplexity-score", "perplexity", "rouge-n", "similar",
                     "starts-with"})
_CODE_PREFIXES = ("javascript:", "fn:", "eval:", "python:")
_CODE_FILE = re.compile(r"^file://.*\.(js|cjs|mjs|ts|cts|mts|py)(:[\w.]*)?$")
# longest names first, so `contains-any` is not read as `contains` followed by junk
_SHORTHAND = re.compile(r"^(not-)?(" + "|".join(sorted(map(re.escape, PROMPTFOO_TYPES), key=len, reverse=True))
                        + r")(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")


@dataclass(frozen=True)
class Expected:
    """What one `__expected` cell means: an assertion mapping, or why none could be made."""

    assertion: dict[str, Any] | None
    refused: str = ""


def parse_expected(cell: str) -> Expected:
    """The assertion a `__expected` cell stands for (see the module docstring). Blank: none, not refused."""
    text = cell.strip()
    if not text:
        return Expected(None)
    if text.startswith(_CODE_PREFIXES) or _CODE_FILE.match(text):
        return Expected(None, f"{text.split(':', 1)[0]}: code assertions are never run (a pull request could change them)")
    for prefix in ("grade:", "llm-rubric:"):
        if text.startswith(prefix):
            return Expected({"type": "llm-rubric", "value": text[len(prefix):]})
    match = _SHORTHAND.match(text)
    if match is None:
        return Expected({"type": "equals", "value": text})
    inverse, base, threshold, value = match.groups()
    kind = f"{inverse or ''}{base}"
    if base in _LISTS:
        return Expected({"type": kind, "value": [item.strip() for item in value.split(",")] if value else value})
    if base in _RAW:
        return Expected({"type": kind} if value is None else {"type": kind, "value": value})
    out: dict[str, Any] = {"type": kind}
    if value is not None:
        out["value"] = value.strip()
    if base in _GRADED:
        out["threshold"] = float(threshold) if threshold else (0.8 if base == "similar" else 0.75)
    return Expected(out)


__all__ = ["PROMPTFOO_TYPES", "Expected", "parse_expected"]
