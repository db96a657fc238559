"""What an optimisation reports: per step (`StepReport`, to `on_step`) and at the end
(`OptimizeResult`). Frozen, JSON round-trippable; the word diff is computed from the texts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from gpo_action.optimize.diffs import Op, word_diff
from gpo_action.optimize.trajectory import prompt_id
from gpo_action.report.formats import pct  # re-exported: the optimizer's reports use it


TEST_NAMES = {"mcnemar": "exact McNemar", "sign-flip": "sign-flip"}


def p_text(p: float) -> str:
    """"p = 0.016", or "p < 0.001" (never "p = < 0.001")."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def holdout_figures(before: float | None, after: float | None, p: float | None, cases: int,
                    arrow: str = "->") -> str:
    """"holdout 53.3 -> 86.7, p = 0.004, 15 cases": the rule's figures, in one place for every report."""
    tested = "" if p is None else f", {p_text(p)}, {cases} case{'s' * (cases != 1)}"
    return f"holdout {pct(before)} {arrow} {pct(after)}{tested}"


def base_figures(base: float | None, after: float | None, p: float | None, cases: int) -> str:
    """"base 86.7 vs 93.3 on holdout, p = 0.500, 15 cases": the check of a located revert against the
    base prompt (p: one-sided, of "the base scores higher")."""
    tested = "" if p is None else f", {p_text(p)}, {cases} case{'s' * (cases != 1)}"
    return f"base {pct(base)} vs {pct(after)} on holdout{tested}"


def versus_base(result: "OptimizeResult") -> str:
    """How a proposed located revert fared against the base prompt on holdout, in words ("" when
    that check did not apply or did not run)."""
    if not result.located_fix or result.base_p is None:
        return ""
    figures = base_figures(result.base_holdout, result.best_holdout, result.base_p, result.base_paired)
    worse = "significantly worse" if result.base_p < result.alpha else "not significantly worse"
    return f"{worse} than the base prompt ({figures})"


def _from(cls, data: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class StepReport:
    step: int                               # 0 = the original prompt was scored
    steps: int
    budget_words: int | None = None
    candidates: int = 0
    evaluated: int = 0
    duplicates: int = 0
    raced_out: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    step_best: float | None = None          # best dev score among this step's candidates
    current: float | None = None            # dev score of the current prompt after the step
    best: float | None = None               # best dev score so far
    spent: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rejected": dict(self.rejected), "spent": dict(self.spent)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StepReport":
        return _from(cls, data)


@dataclass(frozen=True)
class OptimizeResult:
    suite: str
    template_path: str
    kind: str                               # "text" | "chat"
    original: str                           # the original template source
    best: str                               # the best source on dev (== original when nothing beat it)
    original_dev: float | None
    best_dev: float | None
    original_holdout: float | None
    best_holdout: float | None
    proposed: bool                          # best differs, beat the original on dev, passed the holdout guard
    message: str                            # one line: what was found, with the numbers
    edit_words: int                         # word-level edit distance of best to original
    steps_done: int
    steps: int
    stop_reason: str | None = None          # the cap or failure that ended the run early; None = all steps ran
    holdout_guard: bool = True              # False when the suite is too small to hold cases out
    holdout_policy: str = "significant"
    dev_cases: int = 0
    holdout_cases: int = 0
    evaluated: int = 0                      # distinct prompts scored
    rejected: Mapping[str, int] = field(default_factory=dict)
    spent: Mapping[str, Any] = field(default_factory=dict)
    similarity: str | None = None
    warnings: tuple[str, ...] = ()
    run_dir: str | None = None
    trajectory: str | None = None
    location: Mapping[str, Any] | None = None   # what locating the regression found (`localize`), if it ran
    holdout_p: float | None = None          # one-sided p of best > original on the paired holdout cases
    holdout_test: str | None = None         # "mcnemar" | "sign-flip" (as the verdicts choose)
    holdout_paired: int = 0                 # holdout cases paired for the test (errored ones left out)
    alpha: float = 0.05                     # the level the holdout test was held to
    base_holdout: float | None = None       # a located revert as best: the base prompt on holdout
    base_p: float | None = None             # one-sided p of base > best on the paired holdout cases
    base_paired: int = 0

    @property
    def located_fix(self) -> bool:
        """The best prompt is the revert that locating the regression found (not a GPO candidate)."""
        return bool(self.location) and self.location.get("fix_id") == prompt_id(self.best) != prompt_id(self.original)

    @property
    def improved(self) -> bool:
        return self.proposed

    @property
    def diff(self) -> list[Op]:
        return word_diff(self.original, self.best)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(rejected=dict(self.rejected), spent=dict(self.spent), warnings=list(self.warnings),
                    location=dict(self.location) if self.location is not None else None,
                    diff=[list(op) for op in self.diff])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OptimizeResult":
        result = _from(cls, data)
        return OptimizeResult(**{**asdict(result), "warnings": tuple(result.warnings)})
