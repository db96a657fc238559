"""Locating a regression in a prompt change: which of the author's edits brings the score down.

    hunks = split_hunks(base, head)                       # the change as reviewable word-level edits
    probe = apply_reverts(base, head, hunks, {1})         # head with hunk 1 put back as in the base
    found = locate(len(hunks), evaluate, max_drop=0.02)   # ddmin over the set of hunks to revert
    found.culprits, found.evaluations, found.status

A hunk is a run of word-level edits (`diffs.word_diff`); runs separated by fewer than `join_words`
unchanged words are one hunk, so a reworded phrase reads as one edit. `locate` searches for a
smallest set of hunks whose reversal brings the dev score back to the base's (within `max_drop`)
by delta debugging (Zeller's ddmin, over the set of hunks to revert), through an
`evaluate(subset) -> score | None` callable (None: the probe could not be scored, e.g. a budget
cap; the search stops there). The head (nothing reverted) and the base (everything reverted) are
scored first; every other probe is scored at most once, and at most
2·h·⌈log2 h⌉ probes are made for h hunks, so at most 2·h·⌈log2 h⌉ + 2 evaluations in all.
ddmin always holds a set known to restore the score, so a search cut short still returns a valid
(maybe not minimal) fix.

Status of a `Location`:
    located       `culprits` is a 1-minimal set: reverting it restores the score, reverting any
                  one hunk fewer does not
    not-minimal   the probe bound was reached: `culprits` restores the score but may not be minimal
    whole-change  only reverting every hunk restores the score: no part of the change explains it
    no-drop       the head already scores within `max_drop` of the base on these cases
    stopped       a probe could not be scored (`reason` says why); `culprits` as far as known
    no-change     base and head have no word-level difference
    base-unsafe   (set by the engine) the base fails the head's candidate checks (its variables,
                  roles, params or frozen regions differ), so no probe was made

The engine runs it before the GPO refinement when given the base prompt (`optimize(..., regression=Regression(base))`),
which the PR fix stage does for a regressed suite (`fixes.fix_failures`, `optimize.localize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Collection, Mapping, Sequence

from gpo_action.optimize.diffs import Op, render_plain, word_diff

JOIN_WORDS = 3


@dataclass(frozen=True)
class Hunk:
    """One reviewable edit: the base's text `base[old_start:old_end]` became the head's
    `head[new_start:new_end]`; `ops` is its word diff (unchanged words inside it included)."""

    index: int
    old_start: int
    old_end: int
    new_start: int
    new_end: int
    ops: tuple[Op, ...]

    @property
    def old(self) -> str:
        return "".join(text for kind, text in self.ops if kind != "insert")

    @property
    def new(self) -> str:
        return "".join(text for kind, text in self.ops if kind != "delete")

    def render(self) -> str:
        """git's word-diff form: [-deleted-]{+inserted+}."""
        return render_plain(self.ops)


def split_hunks(base: str, head: str, join_words: int = JOIN_WORDS) -> tuple[Hunk, ...]:
    """The base -> head change as hunks, in text order; edit runs separated by fewer than
    `join_words` unchanged words are merged into one hunk."""
    ops = word_diff(base, head)
    groups: list[list[Op]] = []          # each: ops of one hunk
    starts: list[tuple[int, int]] = []   # each hunk's (old, new) start offset
    pending: list[Op] = []               # unchanged ops since the last hunk, not yet known to be inside one
    old = new = 0                        # offsets of the next op in base and head
    for kind, text in ops:
        if kind == "equal":
            pending.append((kind, text))
        else:
            if groups and sum(len(t.split()) for _, t in pending) < join_words:
                groups[-1].extend(pending)
            else:
                starts.append((old, new))
                groups.append([])
            groups[-1].append((kind, text))
            pending = []
        if kind != "insert":
            old += len(text)
        if kind != "delete":
            new += len(text)
    hunks = []
    for index, (group, (old_start, new_start)) in enumerate(zip(groups, starts)):
        width_old = sum(len(t) for k, t in group if k != "insert")
        width_new = sum(len(t) for k, t in group if k != "delete")
        hunks.append(Hunk(index, old_start, old_start + width_old, new_start, new_start + width_new, tuple(group)))
    return tuple(hunks)


def apply_reverts(base: str, head: str, hunks: Sequence[Hunk], chosen: Collection[int]) -> str:
    """The head with the hunks whose index is in `chosen` put back as in the base. Reverting every
    hunk gives the base exactly; reverting none gives the head."""
    out, at = [], 0
    for hunk in hunks:
        out.append(head[at:hunk.new_start])
        out.append(base[hunk.old_start:hunk.old_end] if hunk.index in chosen else head[hunk.new_start:hunk.new_end])
        at = hunk.new_end
    out.append(head[at:])
    return "".join(out)


@dataclass(frozen=True)
class Location:
    status: str
    hunks: int                                 # h, the number of hunks searched
    culprits: tuple[int, ...] = ()             # indexes of the hunks to revert (the fix), in order
    evaluations: int = 0                       # dev evaluations made, head and base included
    bound: int = 2                             # 2·h·⌈log2 h⌉ + 2
    base_score: float | None = None
    head_score: float | None = None
    fixed_score: float | None = None           # the score of the head with `culprits` reverted
    reason: str | None = None                  # why the search stopped (status "stopped")

    @property
    def found(self) -> bool:
        """A fix that reverts part of the change, not all of it (one hunk alone counts)."""
        return self.status in ("located", "not-minimal") and bool(self.culprits)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Location":
        names = {f.name for f in fields(cls)}
        found = {k: v for k, v in data.items() if k in names}
        return cls(**{**found, "culprits": tuple(found.get("culprits") or ())})

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "hunks": self.hunks, "culprits": list(self.culprits),
                "evaluations": self.evaluations, "bound": self.bound, "base_score": self.base_score,
                "head_score": self.head_score, "fixed_score": self.fixed_score, "reason": self.reason}


def evaluation_bound(hunks: int) -> int:
    """The most dev evaluations `locate` makes for `hunks` hunks: 2·h·⌈log2 h⌉ + 2."""
    return 2 * hunks * math.ceil(math.log2(hunks)) + 2 if hunks > 1 else 2


class _Stopped(Exception):
    """A probe could not be scored (internal: ends the search)."""


def locate(hunks: int, evaluate: Callable[[frozenset[int]], float | None], *, max_drop: float) -> Location:
    """A smallest set of hunk indexes (0..hunks-1) whose reversal scores within `max_drop` of the
    base (everything reverted); see the module docstring."""
    bound = evaluation_bound(hunks)
    if hunks == 0:
        return Location("no-change", 0, bound=bound)
    everything = frozenset(range(hunks))
    scores: dict[frozenset[int], float] = {}
    reason: list[str] = []

    def score(subset: frozenset[int]) -> float:
        if subset not in scores:
            value = evaluate(subset)
            if value is None:
                reason.append("a probe could not be scored")
                raise _Stopped
            scores[subset] = value
        return scores[subset]

    def result(status: str, culprits: frozenset[int] = frozenset(), why: str | None = None) -> Location:
        fixed = scores.get(culprits) if culprits else None
        return Location(status=status, hunks=hunks, culprits=tuple(sorted(culprits)), evaluations=len(scores),
                        bound=bound, base_score=scores.get(everything), head_score=scores.get(frozenset()),
                        fixed_score=fixed, reason=why)

    try:
        head, base = score(frozenset()), score(everything)
    except _Stopped:
        return result("stopped", why=reason[0])
    target = base - max_drop
    if head >= target:
        return result("no-drop")
    if hunks == 1:
        return result("located", everything)
    try:
        current, minimal = _ddmin(everything, lambda s: score(s) >= target - 1e-12, lambda: len(scores) >= bound)
    except _Stopped as stop:
        current = _best_known(scores, target, everything)
        return result("stopped", current, reason[0] if reason else str(stop))
    if current == everything:
        return result("whole-change" if minimal else "not-minimal", everything)
    return result("located" if minimal else "not-minimal", current)


def _best_known(scores: dict[frozenset[int], float], target: float, everything: frozenset[int]) -> frozenset[int]:
    """The smallest set seen that restores the score (everything when none smaller did)."""
    good = [s for s, v in scores.items() if v >= target - 1e-12]
    return min(good, key=lambda s: (len(s), sorted(s)), default=everything)


def _ddmin(items: frozenset[int], good: Callable[[frozenset[int]], bool],
           spent: Callable[[], bool]) -> tuple[frozenset[int], bool]:
    """Zeller's ddmin for a set where `good(items)` holds: (a 1-minimal good subset, True), or (the
    smallest good subset reached when `spent()` said stop, False)."""
    current, n = sorted(items), 2
    while len(current) >= 2:
        chunks = _split(current, n)
        reduced = False
        for chunk in chunks:
            if spent():
                return frozenset(current), False
            if good(frozenset(chunk)):
                current, n, reduced = chunk, 2, True
                break
        if not reduced and n > 2:       # with two chunks the complements are the chunks themselves
            for chunk in chunks:
                rest = [i for i in current if i not in chunk]
                if spent():
                    return frozenset(current), False
                if good(frozenset(rest)):
                    current, n, reduced = rest, max(n - 1, 2), True
                    break
        if reduced:
            continue
        if n >= len(current):
            break
        n = min(2 * n, len(current))
    return frozenset(current), True


def _split(items: Sequence[int], n: int) -> list[list[int]]:
    """`items` cut into `n` consecutive chunks of nearly equal size."""
    size, extra = divmod(len(items), n)
    out, at = [], 0
    for i in range(n):
        width = size + (1 if i < extra else 0)
        out.append(list(items[at:at + width]))
        at += width
    return [chunk for chunk in out if chunk]


def _quoted(edit: str) -> str:
    return f"`{edit}`"


def location_sentence(location: Location, edits: Sequence[str], show: Callable[[str], str] = _quoted) -> str:
    """One sentence for the comment: which edit the drop comes from, or why none was named.
    `edits` are the hunks rendered (`Hunk.render`); `show` quotes one for the medium (markdown,
    terminal)."""
    if location.found:
        shown = "; ".join(show(edits[i].strip()) for i in location.culprits)
        others = location.hunks - len(location.culprits)
        edit = "this edit" if len(location.culprits) == 1 else f"these {len(location.culprits)} edits"
        rest = (f"; your other {others} edit{'s' if others != 1 else ''} do{'es' if others == 1 else ''} not change "
                "the score" if others else "")
        hedge = " (the search stopped early: this set may not be minimal)" if location.status != "located" else ""
        return f"the drop comes from {edit}: {shown}{rest}{hedge}"
    if location.status == "whole-change":
        return (f"no part of the change explains the drop: only reverting all {location.hunks} edits restores "
                "the base's score")
    if location.status == "base-unsafe":
        return f"the change was not located: the base prompt fails the head's checks ({location.reason})"
    if location.status == "no-drop":
        return "the dev cases show no drop from the base to locate"
    if location.status == "no-change":
        return "the base and head prompts have no word-level difference"
    return f"the search for the edit behind the drop stopped: {location.reason or 'no budget'}"
