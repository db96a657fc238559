"""Where an improved file's changes can go as GitHub suggestions, and what must be shown as a diff.

Pure functions, no I/O. GitHub accepts a review comment only on lines of the pull request's diff:
with `side: RIGHT`, a line of the head file inside one hunk (an added line or a context line), and
for a range, `start_line` in the same hunk and strictly before `line` (a 422 otherwise). So each
contiguous change between the head file and the improved file becomes one ```suggestion comment
when its lines lie inside one hunk, and a `Leftover` (shown in the sticky comment with
`render_diff`) when not.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable

from gpo_action.report.markdown import defuse

HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
NO_NEWLINE = "\\ No newline at end of file"


@dataclass(frozen=True)
class Hunk:
    """One `@@ -old_start,old_count +new_start,new_count @@` block of a unified diff."""

    old_start: int
    old_count: int
    new_start: int
    new_count: int

    @property
    def new_end(self) -> int:
        return self.new_start + self.new_count - 1

    def covers(self, first: int, last: int) -> bool:
        """Whether head lines first..last all lie on this hunk's new side."""
        return self.new_count > 0 and self.new_start <= first <= last <= self.new_end


@dataclass(frozen=True)
class Change:
    """One contiguous difference: head lines start..end (end = start - 1 for a pure insertion
    before line `start`) become `new_lines`."""

    path: str
    start: int
    end: int
    old_lines: tuple[str, ...]
    new_lines: tuple[str, ...]


@dataclass(frozen=True)
class ReviewComment:
    """A review comment on head lines start_line..line (start_line None for one line), side RIGHT."""

    path: str
    start_line: int | None
    line: int
    body: str
    change: Change | None = None

    def to_api(self) -> dict[str, Any]:
        """The comment as `POST /pulls/{n}/reviews` takes it."""
        data: dict[str, Any] = {"path": self.path, "body": self.body, "line": self.line, "side": "RIGHT"}
        if self.start_line is not None and self.start_line < self.line:
            data["start_line"] = self.start_line
            data["start_side"] = "RIGHT"
        return data


@dataclass(frozen=True)
class Leftover:
    """A change that cannot be a suggestion, and why."""

    change: Change
    reason: str

    @property
    def path(self) -> str:
        return self.change.path


@dataclass(frozen=True)
class SuggestionPlan:
    comments: tuple[ReviewComment, ...] = ()
    leftovers: tuple[Leftover, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.comments and not self.leftovers


def merge_plans(plans: Iterable[SuggestionPlan]) -> SuggestionPlan:
    """One plan from the plans of several files, in order."""
    plans = list(plans)
    return SuggestionPlan(tuple(c for p in plans for c in p.comments), tuple(x for p in plans for x in p.leftovers))


def parse_patch(patch: str | None) -> tuple[Hunk, ...]:
    """The hunks of a unified diff (GitHub's `patch` field of a pull request file); () for None."""
    hunks = []
    for line in (patch or "").split("\n"):
        match = HUNK_HEADER.match(line)
        if match:
            a, b, c, d = match.groups()
            hunks.append(Hunk(int(a), 1 if b is None else int(b), int(c), 1 if d is None else int(d)))
    return tuple(hunks)


def text_lines(text: str) -> list[str]:
    """Lines split as git does (on "\\n" only), without line endings."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def diff_changes(path: str, old_text: str, new_text: str) -> list[Change]:
    """The contiguous changes from `old_text` to `new_text`, in order."""
    old, new = text_lines(old_text), text_lines(new_text)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [Change(path, i1 + 1, i2, tuple(old[i1:i2]), tuple(new[j1:j2]))
            for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def fence_for(text: str, minimum: int = 3) -> str:
    """A backtick fence longer than any backtick run in `text`, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(minimum, longest + 1)


def suggestion_body(lines: Iterable[str]) -> str:
    """A ```suggestion block holding exactly `lines` (none: a suggestion to delete the lines)."""
    content = "".join(f"{line}\n" for line in lines)
    fence = fence_for(content)
    return f"{fence}suggestion\n{content}{fence}"


def _anchors(change: Change, old: list[str]) -> list[tuple[int, int, tuple[str, ...]]]:
    """(first, last, replacement) candidates on head lines for a change."""
    if change.old_lines:
        return [(change.start, change.end, change.new_lines)]
    candidates = []
    before, after = change.start - 1, change.start   # a pure insertion goes between these two lines
    if before >= 1:
        candidates.append((before, before, (old[before - 1],) + change.new_lines))
    if after <= len(old):
        candidates.append((after, after, change.new_lines + (old[after - 1],)))
    return candidates


def plan_suggestions(path: str, old_text: str, new_text: str, patch: str | None) -> SuggestionPlan:
    """Suggestions turning `old_text` (the file at the PR head) into `new_text`, placed on `patch`'s hunks."""
    old = text_lines(old_text)
    hunks = parse_patch(patch)
    comments: list[ReviewComment] = []
    leftovers: list[Leftover] = []
    used: set[int] = set()
    for change in diff_changes(path, old_text, new_text):
        candidates = _anchors(change, old)
        if not hunks:
            reason = ("the pull request's diff has no patch for this file (unchanged, binary or too large)"
                      if patch is None else "GitHub shows no diff hunks for this file")
        elif not candidates:
            reason = "the file is empty at the head: no line to attach a suggestion to"
        else:
            reason = _outside_reason(candidates[0])
        for first, last, replacement in candidates if hunks else []:
            if not any(h.covers(first, last) for h in hunks):
                continue
            if used.intersection(range(first, last + 1)):
                reason = f"{_where(first, last)} already carries another suggestion"
                continue
            comments.append(ReviewComment(path, first if first < last else None, last,
                                          suggestion_body(replacement), change))
            used.update(range(first, last + 1))
            break
        else:
            leftovers.append(Leftover(change, reason))
    return SuggestionPlan(tuple(comments), tuple(leftovers))


def _where(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _outside_reason(candidate: tuple[int, int, tuple[str, ...]]) -> str:
    first, last, _ = candidate
    return f"{_where(first, last)} not inside one hunk of the pull request's diff"


def render_diff(old: str | None, new: str, path: str, context: int = 3) -> str:
    """A fenced ```diff block of old -> new ("" when they do not differ), for the comment fallback."""
    def keep_ends(text: str) -> list[str]:
        parts = text.split("\n")
        return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])

    lines = difflib.unified_diff(keep_ends(old or ""), keep_ends(new), "/dev/null" if old is None else f"a/{path}",
                                 f"b/{path}", n=context)
    text = "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}\n" for line in lines)
    if not text:
        return ""
    fence = fence_for(text)
    return f"{fence}diff\n{defuse(text)}{fence}"      # shown in the comment: no marker spelt inside
