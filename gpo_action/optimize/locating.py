"""The engine's step 0b for a run given the prompt before the change (`Regression`): locate the
edit behind the drop, before any refinement.

    search = RegressionSearch(template, regression, suite.cases)
    found = search.run(original, scorer, dev, reserve, on_probe=write, spent=spent_fields)
    found.info        # what RunState.location keeps (Location.to_dict, sentence, edits, fix_id)
    found.fix         # the located revert as a step-0 PromptRecord, to become the current prompt

Each probe (the head with some hunks put back, checked like a candidate: an unsafe one scores
-inf and costs no call) is scored on dev by the engine's `Scorer` and handed to `on_probe` as a
step-0 `PromptRecord` with the hunks it `reverted`. The search itself (ddmin over the hunks) is
`localize.locate`; this module wires it to the scorer and the records. A base that fails the head's
candidate checks is `base-unsafe`: no probe is made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from gpo_action.optimize.candidates import check_candidate, edit_words
from gpo_action.optimize.localize import Location, apply_reverts, locate, location_sentence, split_hunks
from gpo_action.optimize.scoring import Scorer
from gpo_action.optimize.stoppers import Dispatch
from gpo_action.optimize.trajectory import PromptRecord, prompt_id
from gpo_action.results import SuiteResult
from gpo_action.suites import Case
from gpo_action.templates import PromptTemplate, parse_template


@dataclass(frozen=True)
class Regression:
    """Locate the regression first: `base` is the template's source before the change; a revert
    counts as a fix within `max_drop` of the base's dev score."""

    base: str
    max_drop: float = 0.02


@dataclass(frozen=True)
class Located:
    """What a search found: `info` for `RunState.location`, the located fix (None: none), and the
    stop reason of a cap reached while searching (None: refinement goes on)."""

    info: dict[str, Any]
    fix: PromptRecord | None
    stopped: str | None


class RegressionSearch:
    """The change from `regression.base` to `template`, as hunks to revert."""

    def __init__(self, template: PromptTemplate, regression: Regression, cases: Sequence[Case]):
        self.template, self.base, self.max_drop = template, regression.base, regression.max_drop
        self.cases = cases
        self.hunks = split_hunks(self.base, template.source)
        _, self.unsafe = check_candidate(self.base, template, cases) if self.hunks else (None, None)

    @property
    def searching(self) -> bool:
        """Whether probes will be scored (there are hunks and the base passes the checks)."""
        return bool(self.hunks) and self.unsafe is None

    def base_template(self) -> PromptTemplate:
        return parse_template(self.base, self.template.path, self.template.kind)

    def run(self, original: PromptRecord, scorer: Scorer, dev: Sequence[Case], reserve: Sequence[Dispatch], *,
            on_probe: Callable[[PromptRecord, SuiteResult], None],
            spent: Callable[[], dict[str, Any]]) -> Located:
        """ddmin over the hunks (see `localize`), each probe scored on `dev` keeping `reserve` free;
        `original` is the head's step-0 record; `spent()` gives the records' spend fields."""
        head = self.template.source
        stopped: list[str] = []

        def probe(reverted: frozenset[int]) -> float | None:
            if not reverted:
                return original.dev
            source = apply_reverts(self.base, head, self.hunks, reverted)
            parsed, why = check_candidate(source, self.template, self.cases)
            if parsed is None:                  # unsafe: never a fix (it costs no call)
                return float("-inf")
            [evaluation], reason = scorer.evaluate([parsed], dev, reserve)
            if evaluation is None:
                stopped.append(reason or "max_calls")
                return None
            record = PromptRecord(id=prompt_id(source), step=0, prompt=source, dev=evaluation.score,
                                  cases=evaluation.cases, complete=True, parent=original.id, budget_words=None,
                                  edit_words=edit_words(head, source), errors=evaluation.errors,
                                  reverted=tuple(sorted(reverted)), **spent())
            on_probe(record, evaluation.result)
            return evaluation.score

        if self.unsafe is not None:
            location = Location("base-unsafe", len(self.hunks), reason=self.unsafe)
        else:
            location = locate(len(self.hunks), probe, max_drop=self.max_drop)
            if stopped:
                location = replace(location, reason=stopped[0])
        edits = [h.render() for h in self.hunks]
        info = {**location.to_dict(), "sentence": location_sentence(location, edits), "edits": edits, "fix_id": None}
        fix = None
        if location.found:
            source = apply_reverts(self.base, head, self.hunks, set(location.culprits))
            fix = PromptRecord(id=prompt_id(source), step=0, prompt=source, dev=location.fixed_score,
                               cases=len(dev), complete=True, parent=original.id, budget_words=None,
                               edit_words=edit_words(head, source), reverted=location.culprits, **spent())
            info["fix_id"] = fix.id
        return Located(info, fix, stopped[0] if stopped else None)
