"""The holdout guard: is the best prompt of a run better than the original on the held-out cases?

    test = holdout_test(original_on_holdout, best_evaluation, alpha)   # the verdicts' paired test, one-sided
    proposed, message = decide(original_record, best_record, test, alpha, why)

The test is `compare`'s (exact McNemar for pass/fail cases, sign-flip for graded ones), made
one-sided (`stats.one_sided`): a fix is proposed only when it beats the original at `alpha`; a tie
or a gain within noise is not. A located revert (the head with the culprit edits put back) must
also not be significantly worse than the base prompt on holdout: `against_base` is the same test
of the base against it (`holdout_test(fix_result, base_evaluation, alpha)`), and p < alpha there
means the revert does not restore what the base did, so it is not proposed.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpo_action.compare import Gate, compare
from gpo_action.optimize.results import TEST_NAMES, base_figures, holdout_figures, pct as _pct
from gpo_action.optimize.scoring import Evaluation
from gpo_action.optimize.trajectory import PromptRecord
from gpo_action.results import SuiteResult
from gpo_action.stats import one_sided


@dataclass(frozen=True)
class HoldoutTest:
    name: str                # "mcnemar" | "sign-flip"
    before: float            # the paired cases' means
    after: float
    p: float                 # one-sided: after > before
    cases: int


def holdout_test(original: SuiteResult | None, best: Evaluation | None, alpha: float) -> HoldoutTest | None:
    """The verdicts' paired test (`compare`) of best against the original on holdout, made one-sided;
    None when either side is missing or no case could be paired."""
    if original is None or best is None:
        return None
    found = compare(original, best.result, Gate(max_drop=0.0, alpha=alpha))
    if found.p_value is None or not found.n_paired:
        return None
    return HoldoutTest(found.test, found.base_score, found.head_score, one_sided(found.p_value, found.delta),
                       found.n_paired)


def decide(original: PromptRecord, best: PromptRecord, test: HoldoutTest | None, alpha: float,
           why: str | None, *, base_check: bool = False,
           against_base: HoldoutTest | None = None) -> tuple[bool, str]:
    """(proposed, the one-line message with the figures) for `best` against the original; with
    `base_check` (best is a located revert), also `against_base` (see the module docstring)."""
    dev = f"dev {_pct(original.dev)} -> {_pct(best.dev)}"
    if test is None:
        return False, f"no improvement found: {dev}, but the holdout check could not run ({why or 'no budget'})"
    held = holdout_figures(test.before, test.after, test.p, test.cases)
    rule = f"one-sided {TEST_NAMES.get(test.name, test.name)} test, alpha = {alpha:g}"
    if abs(test.after - test.before) <= 1e-12:  # equal scores summed in another order may differ in the last bit
        return False, f"not proposed: {dev}, but a tie on holdout: {held} (a tie is never proposed)"
    if test.after < test.before:
        return False, f"no improvement found: {dev}, but {held} (worse on holdout)"
    if test.p >= alpha:
        return False, f"not proposed: {dev}, but the holdout gain is not significant: {held} ({rule})"
    if not base_check:
        return True, f"improved: {dev}, {held} ({rule})"
    if against_base is None:
        return False, (f"not proposed: {dev}, {held} ({rule}), but the check against the base prompt could not run "
                       f"({why or 'no budget'})")
    versus = base_figures(against_base.after, against_base.before, against_base.p, against_base.cases)
    if against_base.p < alpha:
        return False, (f"not proposed: {dev}, {held} ({rule}), but it is significantly worse than the base prompt: "
                       f"{versus} (a located revert must not be)")
    return True, f"improved: {dev}, {held} ({rule}); not significantly worse than the base prompt: {versus}"
