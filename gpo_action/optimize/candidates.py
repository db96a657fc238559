"""From an optimizer reply to a safe candidate template, or a rejection reason.

A candidate is the text between `<START>` and `<END>`. It must be non-empty and bounded, parse
as the original's kind, keep exactly the original's variables and frozen regions (verbatim),
render every case of the suite, and (chat) keep the messages' roles and the `params`; with the
budget enforced, its word-level edit distance to the current prompt must be within the step's
budget plus slack. Anything else is rejected before any task-model call, counted by reason:

    optimizer-error  the optimizer call failed (after retries) or was kept from dispatch
    no-markers       no <START> ... <END> pair in the reply
    empty            nothing between the markers
    too-long         longer than the spec's max_candidate_chars
    syntax           does not parse as a template of the original's kind
    params-changed   (chat) the model `params` differ from the original's
    roles-changed    (chat) the messages' roles differ from the original's
    variables        the set of template variables differs from the original's
    frozen           a {# gpo:freeze #} region is missing, altered or unbalanced
    render           a case of the suite does not render
    over-budget      more words changed than the step's budget allows
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from rapidfuzz.distance import Levenshtein

from gpo_action.errors import TemplateError
from gpo_action.suites import Case
from gpo_action.templates import PromptTemplate, frozen_regions, parse_template

START, END = "<START>", "<END>"
REJECTION_REASONS = ("optimizer-error", "no-markers", "empty", "too-long", "syntax", "params-changed",
                     "roles-changed", "variables", "frozen", "render", "over-budget")
_FENCE = re.compile(r"\A```[\w-]*\n(?P<body>.*?)\n?```\Z", re.DOTALL)


def edit_words(a: str, b: str) -> int:
    """Word-level Levenshtein distance (insertions, deletions, substitutions of whitespace-split words)."""
    return Levenshtein.distance(a.split(), b.split())


def allowed_words(budget: int, slack: float) -> int:
    """The largest distance a step with `budget` words accepts."""
    return math.floor(budget * (1 + slack) + 1e-9)


def extract_candidate(reply: str, original: str, max_chars: int) -> tuple[str | None, str | None]:
    """(candidate source, None) or (None, rejection reason). The candidate's trailing newline
    follows the original's; a code fence wrapping the whole candidate is removed."""
    start = reply.find(START)
    end = reply.find(END, start + len(START)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None, "no-markers"
    if end - start - len(START) > max_chars:
        return None, "too-long"
    text = reply[start + len(START):end].strip("\n").rstrip()
    fenced = _FENCE.match(text.strip())
    if fenced:
        text = fenced["body"].rstrip()
    if not text.strip():
        return None, "empty"
    trailing = original[len(original.rstrip("\r\n")):]
    return text + trailing, None


def check_candidate(source: str, original: PromptTemplate, cases: Sequence[Case]) -> tuple[PromptTemplate | None, str | None]:
    """(the parsed candidate, None) when it is safe to evaluate, else (None, rejection reason)."""
    try:
        candidate = parse_template(source, original.path, original.kind)
        variables = candidate.variables
    except TemplateError:
        return None, "syntax"
    if original.kind == "chat":
        if dict(candidate.params) != dict(original.params):
            return None, "params-changed"
        if [m.role for m in candidate.messages] != [m.role for m in original.messages]:
            return None, "roles-changed"
    if variables != original.variables:
        return None, "variables"
    try:
        if frozen_regions(source, original.path) != frozen_regions(original.source, original.path):
            return None, "frozen"
    except TemplateError:
        return None, "frozen"
    for case in cases:
        try:
            candidate.render(case.vars)
        except TemplateError:
            return None, "render"
    return candidate, None
