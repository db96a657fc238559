"""From an optimizer reply to a safe candidate template, or a rejection reason.

The optimizer sees a view of the template (`views`: placeholders for template code, message
contents under header lines) and answers in it. A reply becomes a candidate in three steps:

1. its text (`extract_text`): what lies between `<START>` and `<END>`. A reply without the pair
   falls back to the reference rule: the text after `<START>` when only it is present, before
   `<END>` when only that is, else the whole reply. A request that pre-filled `<START>` (assistant
   prefill) or stopped at `<END>` (a stop sequence) counts as holding that marker. A code fence
   around the whole text is removed;
2. the view puts back the template code and rebuilds the file (`View.read`);
3. the final gate (`check_candidate`): it must parse as the original's kind, keep exactly the
   original's variables and frozen regions (verbatim), render every case of the suite, and (chat)
   keep the messages' roles and the `params`; with the budget enforced, its word-level edit
   distance to the current prompt (real template text, not the view) must be within the step's
   budget plus slack.

Anything else is rejected before any task-model call, counted by reason. A fallback reading is
kept only if it passes every check; when it fails one, it counts as `no-markers`:

    optimizer-error  the optimizer call failed (after retries) or was kept from dispatch
    no-markers       no <START> ... <END> pair in the reply, and the fallback reading failed a check
    empty            nothing between the markers
    too-long         longer than the spec's max_candidate_chars
    syntax           does not parse as a template of the original's kind, or a placeholder of a
                     statement or comment is missing, repeated or moved (views)
    params-changed   (chat) the model `params` differ from the original's
    roles-changed    (chat) the messages' roles differ from the original's, or the reply's header
                     lines differ from the view's
    variables        the set of template variables differs from the original's, or a placeholder
                     names nothing
    frozen           a {# gpo:freeze #} region is missing, altered or unbalanced
    render           a case of the suite does not render
    over-budget      more words changed than the step's budget allows
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from collections import Counter
from typing import Any, Mapping, Sequence

from rapidfuzz.distance import Levenshtein

from gpo_action.errors import TemplateError
from gpo_action.optimize.trajectory import prompt_id
from gpo_action.optimize.views import Reading, View
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


@dataclass(frozen=True)
class Extracted:
    """The candidate text of a reply, or why there is none; `marked`: it lay between both markers."""

    text: str | None
    reason: str | None = None
    marked: bool = True


def extract_text(reply: str, max_chars: int, *, stops_at_end: bool = False) -> Extracted:
    """The candidate text of `reply` (see the module doc); `stops_at_end`: `<END>` was a stop
    sequence, so a reply that holds `<START>` and no `<END>` is marked."""
    start = reply.find(START)
    begin = start + len(START) if start >= 0 else 0
    end = reply.find(END, begin)
    marked = start >= 0 and (end >= 0 or stops_at_end)
    text = reply[begin:end if end >= 0 else len(reply)]
    if len(text) > max_chars:
        return Extracted(None, "too-long", marked)
    text = text.strip("\n").rstrip() if marked else text.strip()
    fenced = _FENCE.match(text.strip())
    if fenced:
        text = fenced["body"].rstrip()
    if not text.strip():
        return Extracted(None, "empty", marked)
    return Extracted(text, None, marked)


@dataclass(frozen=True)
class ReplyForm:
    """How a candidate request asks for its reply: `prefill`, the start of the assistant's reply
    (a last assistant message; "" for none), and `stop`, the stop strings."""

    prefill: str = ""
    stop: tuple[str, ...] = ()


def reply_form(view: View, *, prefill: bool, stop: bool) -> ReplyForm:
    """What a provider that can pre-fill and/or stop is asked for: the reply starts with `<START>`
    and (chat) the first header; it stops at `<END>`, and with a pre-filled header also where that
    header comes again (the model starting the prompt over)."""
    lead = f"{view.lead}\n" if view.lead else ""
    stops = (END, *((f"\n{view.lead}",) if prefill and lead else ())) if stop else ()
    return ReplyForm(f"{START}\n{lead}" if prefill else "", stops)


def read_reply(reply: str, view: View, max_chars: int, form: ReplyForm = ReplyForm()) -> Reading:
    """The template source a reply (to a request of `form`) stands for: steps 1 and 2 of the
    module doc, not yet checked."""
    found = extract_text(form.prefill + reply, max_chars, stops_at_end=END in form.stop)
    if found.text is None:
        return Reading(None, found.reason, found.marked)
    return replace(view.read(found.text), marked=found.marked)


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


@dataclass
class SortedReplies:
    """One step's replies, sorted: `new`, the safe candidates never seen before as (source, template,
    edit distance to the current prompt); `known`, the records of prompts seen before; `rejected`,
    counts by reason; `duplicates`, replies repeating a prompt of this step or an earlier one."""

    new: list[tuple[str, PromptTemplate, int]]
    known: list[Any]
    rejected: Counter[str]
    duplicates: int


def sort_replies(replies: Sequence[Any], current: str, view: View, form: ReplyForm, *, original: PromptTemplate,
                 cases: Sequence[Case], records: Mapping[str, Any], max_chars: int,
                 max_words: int | None) -> SortedReplies:
    """Read each reply (`read_reply`), drop what `records` (by prompt id) or an earlier reply holds,
    check the rest (`check_candidate`) and, with `max_words`, their edit distance to `current`."""
    new, known, rejected, duplicates, seen = [], [], Counter(), 0, set()
    for reply in replies:
        reading = read_reply(reply.text or "", view, max_chars, form) if reply.ok else None
        source, why = (reading.source, reading.reason) if reading else (None, "optimizer-error")
        if source is not None and (source in seen or prompt_id(source) in records):
            duplicates += 1
            if source not in seen:
                known.append(records[prompt_id(source)])
            seen.add(source)
            continue
        parsed = None
        if source is not None:
            seen.add(source)
            parsed, why = check_candidate(source, original, cases)
        if why is None:
            distance = edit_words(current, source)
            if max_words is None or distance <= max_words:
                new.append((source, parsed, distance))
                continue
            why = "over-budget"
        rejected["no-markers" if reading and not reading.marked else why] += 1  # an unmarked reply fails
    return SortedReplies(new, known, rejected, duplicates)
