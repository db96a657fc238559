"""Base versus head: paired statistics and one verdict per suite. Pure functions over results.

`compare(base, head, gate)` pairs the two `SuiteResult`s of a suite by case id, tests the paired
difference (exact McNemar for pass/fail outcomes, a sign-flip permutation test for graded scores
or means over repeats), adds the confidence interval that inverts the same test (so it excludes 0
exactly when p < alpha: `stats.mcnemar_interval`, `stats.sign_flip_interval`), and returns a frozen
`Comparison` whose `verdict` is one of `VERDICTS`:

- "error": a side has more errored cases than `max_error_rate` allows, or no case could be paired;
- "regressed": head is lower by more than `gate.max_drop` and the test is significant (p < alpha);
- "below-min": head scores under the floor (the stricter of `gate.min_score` and the head
  suite's own `min_score`);
- "improved": head is higher by more than `gate.max_drop`, significantly;
- "skipped": some cases could not be evaluated on a side because their model cannot run here
  (no key, e.g. a pull request from a fork: `error_type` "Skipped") and the cache did not hold
  them. The figures over the cases that were paired are still given, but an incomplete comparison
  is never called a regression. It does not fail the gate; `run_exit_code` makes the run exit 2
  for it (nothing passes having checked nothing), except on a fork's pull request or with
  `gate.allow_skipped`;
- "removed": the suite is on the base and not on the head (deleted, or renamed past recognition:
  see `basehead.pair_jobs`). It fails the check unless the gate allows removals
  (`gate.allow_removed`, recorded as `Comparison.removal_allowed`);
- "unchanged": anything else, including a new suite that meets its floor.

Skipped cases are not provider errors: they never count towards `max_error_rate`.

`exit_code(comparisons)` turns verdicts into the gate's exit status; "error" is left to the caller.
A verdict fails the check when `Comparison.failed`: "regressed", "below-min", or a "removed" the
gate does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from gpo_action.llm.types import SKIPPED
from gpo_action.results import CaseResult, SuiteResult
from gpo_action.stats import (detectable_drop, mcnemar_exact, mcnemar_interval, min_flips, sign_flip_interval,
                              sign_flip_test)

__all__ = ["Gate", "FlippedCase", "Comparison", "compare", "compare_removed", "exit_code", "run_exit_code",
           "VERDICTS", "TESTS"]

VERDICTS = ("regressed", "improved", "unchanged", "below-min", "error", "skipped", "removed")
TESTS = ("mcnemar", "sign-flip", "none")
FAILING_VERDICTS = frozenset({"regressed", "below-min"})


@dataclass(frozen=True)
class Gate:
    """When a change fails the check; mirrors the `gate:` section of gpo.yaml."""

    max_drop: float = 0.02
    alpha: float = 0.05
    min_score: float | None = None
    allow_removed: bool = False
    allow_skipped: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_drop <= 1.0:
            raise ValueError(f"max_drop must be between 0 and 1, got {self.max_drop}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {self.alpha}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {self.min_score}")

    @classmethod
    def from_config(cls, config: Any) -> "Gate":
        """From a loaded `Config` (its `gate` section) or from the `gate` section itself."""
        section = getattr(config, "gate", config)
        return cls(max_drop=section.max_drop, alpha=section.alpha, min_score=section.min_score,
                   allow_removed=getattr(section, "allow_removed", False),
                   allow_skipped=getattr(section, "allow_skipped", False))

    def to_dict(self) -> dict[str, Any]:
        return {"max_drop": self.max_drop, "alpha": self.alpha, "min_score": self.min_score,
                "allow_removed": self.allow_removed, "allow_skipped": self.allow_skipped}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Gate":
        return cls(max_drop=data.get("max_drop", 0.02), alpha=data.get("alpha", 0.05),
                   min_score=data.get("min_score"), allow_removed=data.get("allow_removed", False),
                   allow_skipped=data.get("allow_skipped", False))


@dataclass(frozen=True)
class FlippedCase:
    """A paired case that passed on one side and failed on the other."""

    case_id: str
    vars: Mapping[str, Any]
    expected: Any
    base_output: str | None
    head_output: str | None
    base_score: float
    head_score: float

    @property
    def change(self) -> float:
        return self.head_score - self.base_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "vars": dict(self.vars),
            "expected": self.expected,
            "base_output": self.base_output,
            "head_output": self.head_output,
            "base_score": self.base_score,
            "head_score": self.head_score,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FlippedCase":
        return cls(data["case_id"], data.get("vars", {}), data.get("expected"), data.get("base_output"),
                   data.get("head_output"), data["base_score"], data["head_score"])


@dataclass(frozen=True)
class Comparison:
    """The verdict on one suite, with the figures behind it.

    `base_score`, `head_score` and `delta` (head - base) are over the paired cases when both sides
    exist; for a one-sided comparison the existing side's full score is given and `delta`, the CI
    and `p_value` are None. `ci_low`/`ci_high` bound the paired mean difference at level
    1 - alpha, by the inversion of the test that gave `p_value`. `power_note` says, for an
    "unchanged" verdict, that the suite is too small for its test to detect a drop of the gate's
    `max_drop` (`stats.detectable_drop`). `floor` is the minimum score that was applied to head
    (None when there is none).
    `flipped` lists pass-to-fail cases first, then fail-to-pass ones, each group most telling first.
    """

    suite: str
    verdict: str
    base_score: float | None
    head_score: float | None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str = "none"
    n_paired: int = 0
    n_base_only: int = 0
    n_head_only: int = 0
    base_errors: int = 0
    head_errors: int = 0
    floor: float | None = None
    flipped: tuple[FlippedCase, ...] = ()
    notes: tuple[str, ...] = ()
    base_skipped: int = 0
    head_skipped: int = 0
    removal_allowed: bool = False    # a "removed" verdict that the gate allows (gate.allow_removed)
    power_note: str | None = None    # "unchanged", but too few cases to detect the gate's max_drop

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r} (known: {', '.join(VERDICTS)})")
        if self.test not in TESTS:
            raise ValueError(f"unknown test {self.test!r} (known: {', '.join(TESTS)})")

    @property
    def failed(self) -> bool:
        """True when this verdict fails the check: regressed, below-min, or removed without the gate's leave."""
        return self.verdict in FAILING_VERDICTS or (self.verdict == "removed" and not self.removal_allowed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "verdict": self.verdict,
            "base_score": self.base_score,
            "head_score": self.head_score,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "test": self.test,
            "n_paired": self.n_paired,
            "n_base_only": self.n_base_only,
            "n_head_only": self.n_head_only,
            "base_errors": self.base_errors,
            "head_errors": self.head_errors,
            "floor": self.floor,
            "flipped": [f.to_dict() for f in self.flipped],
            "notes": list(self.notes),
            "base_skipped": self.base_skipped,
            "head_skipped": self.head_skipped,
            "removal_allowed": self.removal_allowed,
            "power_note": self.power_note,
            "failed": self.failed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Comparison":
        return cls(
            suite=data["suite"],
            verdict=data["verdict"],
            base_score=data.get("base_score"),
            head_score=data.get("head_score"),
            delta=data.get("delta"),
            ci_low=data.get("ci_low"),
            ci_high=data.get("ci_high"),
            p_value=data.get("p_value"),
            test=data.get("test", "none"),
            n_paired=data.get("n_paired", 0),
            n_base_only=data.get("n_base_only", 0),
            n_head_only=data.get("n_head_only", 0),
            base_errors=data.get("base_errors", 0),
            head_errors=data.get("head_errors", 0),
            floor=data.get("floor"),
            flipped=tuple(FlippedCase.from_dict(f) for f in data.get("flipped", ())),
            notes=tuple(data.get("notes", ())),
            base_skipped=data.get("base_skipped", 0),
            head_skipped=data.get("head_skipped", 0),
            removal_allowed=data.get("removal_allowed", False),
            power_note=data.get("power_note"),
        )


def exit_code(comparisons: Iterable[Comparison]) -> int:
    """1 when any verdict fails the check (`Comparison.failed`), else 0.

    "error" verdicts do not count here: whether too many provider errors end the run (exit 3) or
    are only reported is the caller's decision, made before this is consulted.
    """
    return 1 if any(c.failed for c in comparisons) else 0


def run_exit_code(comparisons: Iterable[Comparison], *, skipped_pass: bool = False) -> int:
    """A run's exit status: 3 when a verdict is "error" (provider errors past the tolerance), else 2
    when a suite is "skipped" (its model could not run here and the cache lacked its answers: the
    run did not check what it was asked to) unless `skipped_pass` (a fork's pull request, or
    `gate.allow_skipped`), else `exit_code`. Incomplete before failed: a regression found beside a
    suite that was not evaluated still exits 2, since fixing the setup comes first and both are said."""
    comparisons = list(comparisons)
    if any(c.verdict == "error" for c in comparisons):
        return 3
    if not skipped_pass and any(c.verdict == "skipped" for c in comparisons):
        return 2
    return exit_code(comparisons)


# --- compare ---------------------------------------------------------------------------------

def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _fmt(score: float) -> str:
    return f"{score:.3f}"


def _floor(gate: Gate, head: SuiteResult | None) -> float | None:
    floors = [f for f in (gate.min_score, head.min_score if head is not None else None) if f is not None]
    return max(floors) if floors else None


def _by_id(suite: SuiteResult, side: str, notes: list[str]) -> dict[str, CaseResult]:
    cases: dict[str, CaseResult] = {}
    duplicates = 0
    for case in suite.cases:
        if case.case_id in cases:
            duplicates += 1
            continue
        cases[case.case_id] = case
    if duplicates:
        notes.append(f"{_cases(duplicates)} on {side} repeated an earlier case id and "
                     "were left out (the first case with each id was used)")
    return cases


def _skipped(case: CaseResult) -> bool:
    return case.error is not None and case.error_type == SKIPPED


def skipped_count(suite: SuiteResult | None) -> int:
    """Cases of `suite` that were not evaluated because their model cannot run here."""
    return 0 if suite is None else sum(1 for c in suite.cases if _skipped(c))


def _errors(suite: SuiteResult) -> int:
    """Provider errors: errored cases that were not skipped."""
    return suite.errors - skipped_count(suite)


def _error_rate_note(suite: SuiteResult, side: str, max_error_rate: float) -> str | None:
    evaluated = len(suite.cases) - skipped_count(suite)
    errors = _errors(suite)
    if evaluated and errors / evaluated > max_error_rate:
        return (f"{errors} of {evaluated} cases errored on {side} "
                f"({errors / evaluated:.1%}), above the allowed {max_error_rate:.1%}")
    return None


def _skip_note(skipped: int, total: int, side: str) -> str:
    return (f"{skipped} of {_cases(total)} on {side} {'was' if skipped == 1 else 'were'} skipped: "
            "their model cannot run here (no key) and the cache did not hold them")


def _is_binary(case: CaseResult) -> bool:
    return len(case.samples) == 1 and case.score in (0.0, 1.0)


def _flipped(pairs: list[tuple[CaseResult, CaseResult]]) -> tuple[FlippedCase, ...]:
    def flip(b: CaseResult, h: CaseResult) -> FlippedCase:
        return FlippedCase(h.case_id, h.vars, h.expected, b.output, h.output, b.score or 0.0, h.score or 0.0)

    broke = [flip(b, h) for b, h in pairs if b.passed and not h.passed]
    fixed = [flip(b, h) for b, h in pairs if h.passed and not b.passed]
    broke.sort(key=lambda f: f.change)               # the biggest fall first
    fixed.sort(key=lambda f: -f.change)              # the biggest gain first
    return tuple(broke + fixed)


def _one_sided(base: SuiteResult | None, head: SuiteResult | None, gate: Gate,
               max_error_rate: float) -> Comparison:
    if head is None:
        if base is None:
            raise ValueError("compare() needs a base or a head result (both were None)")
        return compare_removed(base.name, gate, base)
    floor = _floor(gate, head)
    notes = ["evaluated one-sided: the suite or its prompt is new in this change, so there is no base to compare with"]
    verdict = "unchanged"
    skipped, errors = skipped_count(head), _errors(head)
    problem = _error_rate_note(head, "head", max_error_rate)
    if skipped:
        notes.append(_skip_note(skipped, len(head.cases), "head"))
    if problem:
        verdict = "error"
        notes.append(problem)
    elif not head.cases:
        verdict = "error"
        notes.append("head has no cases; there is no score")
    elif skipped:
        verdict = "skipped"
    elif head.score is None:
        verdict = "error"
        notes.append("every case errored on head; there is no score")
    elif floor is not None and head.score < floor:
        verdict = "below-min"
        notes.append(f"head scores {_fmt(head.score)}, below the minimum {_fmt(floor)}")
    if verdict != "error" and errors:
        notes.append(f"{_cases(errors)} errored on head and {'was' if errors == 1 else 'were'} "
                     "left out of the score")
    return Comparison(
        suite=head.name, verdict=verdict, base_score=None, head_score=head.score,
        n_head_only=len(head.cases), head_errors=errors, floor=floor, notes=tuple(notes), head_skipped=skipped,
    )


def compare_removed(suite: str, gate: Gate, base: SuiteResult | None = None) -> Comparison:
    """The verdict on a suite the base has and the head does not: "removed", which fails the check
    unless `gate.allow_removed`. `base`, when it was evaluated, gives the base score."""
    if gate.allow_removed:
        why = "the gate allows removing suites (gate.allow_removed), so this does not fail the check"
    else:
        why = ("removing a suite fails the check unless the base's gate allows it (gate.allow_removed: true); "
               "a renamed suite is paired with its base when git detects the rename or it keeps its prompt file")
    return Comparison(
        suite=suite, verdict="removed", base_score=base.score if base is not None else None, head_score=None,
        base_errors=_errors(base) if base is not None else 0, n_base_only=len(base.cases) if base is not None else 0,
        notes=("the suite is on the base and not on the head: " + why,), removal_allowed=gate.allow_removed,
    )


def compare(base: SuiteResult | None, head: SuiteResult | None, gate: Gate, *,
            max_error_rate: float = 0.05, seed: int = 0) -> Comparison:
    """Compare one suite's base and head results and give the verdict (see the module docstring).

    Cases are paired by `case_id` over those present and not errored on both sides. When every
    paired case has one sample scored exactly 0 or 1 on both sides, the test is the exact McNemar
    test on the discordant pairs; otherwise it is a sign-flip test on the per-case differences of
    the (mean) scores. The CI inverts the same test at level 1 - alpha (exact for McNemar given the
    discordant pairs; the sign-flip test's own shifts otherwise), so it excludes 0 iff p < alpha.
    `base=None` (a new suite or prompt) is judged on head alone against the floor; `head=None`
    (a removed suite) is "removed" (`compare_removed`). The floor is checked against head's score over all its
    scored cases, since a floor is an absolute claim about head, not about the shared cases.
    `flipped` is decided by each case's `passed` (pass rate >= 0.5), the tests by its score.
    `seed` fixes the resampling, so the same inputs always give the same Comparison.
    """
    if base is None and head is None:
        raise ValueError("compare() needs a base or a head result (both were None)")
    if base is None or head is None:
        return _one_sided(base, head, gate, max_error_rate)

    notes: list[str] = []
    base_cases = _by_id(base, "base", notes)
    head_cases = _by_id(head, "head", notes)
    base_only = [i for i in base_cases if i not in head_cases]
    head_only = [i for i in head_cases if i not in base_cases]
    shared = [i for i in head_cases if i in base_cases]
    if base_only or head_only:
        notes.append(f"cases changed between base and head: compared on the {len(shared)} cases present "
                     f"in both ({len(base_only)} only in base, {len(head_only)} only in head)")
    pairs = [(base_cases[i], head_cases[i]) for i in shared]
    for side, index in (("base", 0), ("head", 1)):
        errored = sum(1 for pair in pairs if pair[index].error is not None and not _skipped(pair[index]))
        if errored:
            notes.append(f"{_cases(errored)} errored on {side} and {'was' if errored == 1 else 'were'} "
                         "left out of the comparison")
    skipped = {"base": skipped_count(base), "head": skipped_count(head)}
    notes.extend(_skip_note(n, len((base if side == "base" else head).cases), side)
                 for side, n in skipped.items() if n)
    pairs = [(b, h) for b, h in pairs if b.error is None and h.error is None]
    floor = _floor(gate, head)
    common = dict(suite=head.name, n_paired=len(pairs), n_base_only=len(base_only), n_head_only=len(head_only),
                  base_errors=_errors(base), head_errors=_errors(head), floor=floor,
                  base_skipped=skipped["base"], head_skipped=skipped["head"])

    problems = [n for n in (_error_rate_note(base, "base", max_error_rate),
                            _error_rate_note(head, "head", max_error_rate)) if n]
    if not pairs:
        if not problems and any(skipped.values()):
            return Comparison(verdict="skipped", base_score=base.score, head_score=head.score,
                              notes=tuple(notes + ["no case could be compared: nothing to judge"]), **common)
        problems.append("no case could be paired: none is present and without error on both sides")
        return Comparison(verdict="error", base_score=base.score, head_score=head.score,
                          notes=tuple(notes + problems), **common)

    n = len(pairs)
    base_scores = [b.score or 0.0 for b, _ in pairs]
    head_scores = [h.score or 0.0 for _, h in pairs]
    diffs = [h - b for b, h in zip(base_scores, head_scores)]
    base_score = sum(base_scores) / n
    head_score = sum(head_scores) / n
    delta = head_score - base_score
    if all(_is_binary(b) and _is_binary(h) for b, h in pairs):
        test = "mcnemar"
        broke = sum(1 for d in diffs if d < 0)
        fixed = sum(1 for d in diffs if d > 0)
        p_value = mcnemar_exact(broke, fixed)
        ci_low, ci_high = mcnemar_interval(broke, fixed, n, alpha=gate.alpha)
    else:
        test = "sign-flip"
        p_value = sign_flip_test(diffs, seed=seed)
        ci_low, ci_high = sign_flip_interval(diffs, alpha=gate.alpha, seed=seed)
    ci_low, ci_high = min(ci_low, delta), max(ci_high, delta)   # rounding: a bound can be the estimate itself

    full_base, full_head = base.score, head.score
    if full_base is not None and full_head is not None and (
            abs(full_base - base_score) > 1e-12 or abs(full_head - head_score) > 1e-12):
        notes.append(f"over all their scored cases base scores {_fmt(full_base)} ({_cases(len(base.scored))}) "
                     f"and head {_fmt(full_head)} ({_cases(len(head.scored))})")

    significant = p_value < gate.alpha
    floor_score = full_head if full_head is not None else head_score
    if problems:
        verdict = "error"
        notes.extend(problems)
    elif any(skipped.values()):
        verdict = "skipped"
        notes.append(f"on the {_cases(n)} that could be compared, head scores {delta:+.3f} against base "
                     f"(p = {p_value:.3g}); with cases skipped this is not a verdict")
    elif delta < -gate.max_drop and significant:
        verdict = "regressed"
    elif floor is not None and floor_score < floor:
        verdict = "below-min"
        notes.append(f"head scores {_fmt(floor_score)}, below the minimum {_fmt(floor)}")
    elif delta > gate.max_drop and significant:
        verdict = "improved"
    else:
        verdict = "unchanged"
        if abs(delta) > gate.max_drop:
            notes.append(f"head scores {abs(delta):.3f} {'lower' if delta < 0 else 'higher'} on the paired cases, "
                         f"but the difference is not significant (p = {p_value:.3g}, alpha = {gate.alpha:g})")
        elif significant and delta != 0:
            notes.append(f"the difference of {delta:+.3f} is significant (p = {p_value:.3g}) but no larger "
                         f"than the gate's margin of {gate.max_drop:g}")

    power_note = _power_note(test, n, gate) if verdict == "unchanged" else None
    return Comparison(
        verdict=verdict, base_score=base_score, head_score=head_score, delta=delta,
        ci_low=ci_low, ci_high=ci_high, p_value=p_value, test=test,
        flipped=_flipped(pairs), notes=tuple(notes), power_note=power_note, **common,
    )


def _power_note(test: str, n: int, gate: Gate) -> str | None:
    """Why an "unchanged" verdict says little: its test cannot detect a drop of `gate.max_drop` with
    `n` paired cases (None when it can). For pass/fail cases the smallest detectable drop is
    `stats.detectable_drop`; graded scores can show a small drop if every case falls a little, but
    no drop at all with fewer than `stats.min_flips` cases that change."""
    alpha = f"alpha {gate.alpha:g}"
    drop = detectable_drop(n, gate.alpha)
    if drop is None:
        return (f"with {_cases(n)} this suite cannot detect any drop at {alpha}: the paired test needs at "
                f"least {min_flips(gate.alpha)} cases that change")
    if test != "mcnemar" or drop <= gate.max_drop:
        return None
    return (f"with {_cases(n)} this suite can only detect drops of {100 * drop:.1f} points or more at {alpha} "
            f"(gate.max_drop is {100 * gate.max_drop:g} points)")
