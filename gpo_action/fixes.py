"""The fix stage of a pull request: a bounded GPO run on the HEAD prompt of each failing suite.

    report = fix_failures(ws, run_result, budget_usd=1.0, on_step=print)
    for fix in report.fixes: fix.result.proposed, fix.share, fix.points

Which suites (gpo.yaml `optimize.when`, each level including the one before):
`never`; `regression` (verdict "regressed"); `below-min` (also "below-min"); `always` (every
compared suite that has a head and a verdict other than "error" or "skipped").

One budget for the whole pull request: gpo.yaml's `optimize.budget` (calls, dollars, seconds,
tokens; `budget_usd` overrides the dollars) is split across the suites to fix, in order, each
getting an equal share of what the earlier ones left (`share_of`): so the total can never be
exceeded, and what a quick suite leaves unused goes to the next. The report states the total and
each suite's share. A suite whose task or optimizer model cannot run here (no key), or whose share
has a cap at zero, is not optimized, and says why (`Fix.skipped`); so does every suite the stage
passes over (`FixReport.unfixed`: its verdict is not one `optimize.when` fixes, or it was removed).

A regressed suite whose base prompt exists is first searched for the edits of the change that
cause the drop (`optimize.localize`, on by default; see `optimize/localize.py`): the engine scores
the head with parts of the change reverted, inside the suite's share, and the GPO refinement then
starts from the located fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from gpo_action.optimize.results import OptimizeResult
from gpo_action.optimize.spec import BudgetLimits
from gpo_action.optimize.rundir import read_records
from gpo_action.optimize.trajectory import PromptRecord

if TYPE_CHECKING:
    from gpo_action.llm.client import LLMClient

WHEN_VERDICTS: dict[str, frozenset[str]] = {
    "never": frozenset(),
    "regression": frozenset({"regressed"}),
    "below-min": frozenset({"regressed", "below-min"}),
    "always": frozenset({"regressed", "below-min", "improved", "unchanged"}),
}
FIX_RUNS_DIR = ".gpo/fix"                 # run directories of the fix stage (`optimize` uses plan.OPTIMIZE_RUNS_DIR)
_CAPS = ("max_calls", "max_usd", "max_seconds", "max_tokens")
_SPENT = {"max_calls": "calls", "max_usd": "cost", "max_seconds": "seconds", "max_tokens": "tokens"}


@dataclass(frozen=True)
class ChartPoint:
    """One optimisation step for the chart: the best dev score so far and the step's best candidate
    (None when no candidate of the step was scored), both 0..1."""

    step: int
    best: float
    step_best: float | None = None


@dataclass(frozen=True)
class Fix:
    suite: str
    verdict: str
    prompt: str                                  # the template, relative to the config root
    share: Mapping[str, float] = field(default_factory=dict)   # the caps this suite was given
    result: OptimizeResult | None = None
    points: tuple[ChartPoint, ...] = ()
    skipped: str | None = None                   # why no optimisation ran

    @property
    def proposed(self) -> bool:
        return self.result is not None and self.result.proposed

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "verdict": self.verdict, "prompt": self.prompt, "share": dict(self.share),
                "result": self.result.to_dict() if self.result else None, "skipped": self.skipped,
                "points": [[p.step, p.best, p.step_best] for p in self.points]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Fix":
        result = data.get("result")
        return cls(str(data["suite"]), str(data["verdict"]), str(data["prompt"]), dict(data.get("share") or {}),
                   OptimizeResult.from_dict(result) if result else None,
                   tuple(ChartPoint(*point) for point in data.get("points") or ()), data.get("skipped"))


@dataclass(frozen=True)
class FixReport:
    fixes: tuple[Fix, ...] = ()
    when: str = "regression"
    total: Mapping[str, float] = field(default_factory=dict)   # the pull request's caps
    notes: tuple[str, ...] = ()
    unfixed: Mapping[str, str] = field(default_factory=dict)   # suite -> why the fix stage passed it over

    @property
    def spent(self) -> dict[str, float]:
        out = {"calls": 0, "tokens": 0, "cost": 0.0, "seconds": 0.0}
        for fix in self.fixes:
            for key in out:
                out[key] += (fix.result.spent.get(key, 0) if fix.result else 0)
        return out

    @property
    def proposed(self) -> tuple[Fix, ...]:
        return tuple(f for f in self.fixes if f.proposed)

    def to_dict(self) -> dict[str, Any]:
        return {"when": self.when, "total": dict(self.total), "spent": self.spent, "notes": list(self.notes),
                "fixes": [f.to_dict() for f in self.fixes], "unfixed": dict(self.unfixed)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FixReport":
        return cls(tuple(Fix.from_dict(f) for f in data.get("fixes") or ()), str(data.get("when") or "regression"),
                   dict(data.get("total") or {}), tuple(data.get("notes") or ()), dict(data.get("unfixed") or {}))


def wants_fix(verdict: str, when: str) -> bool:
    if when not in WHEN_VERDICTS:
        raise ValueError(f"unknown optimize.when {when!r} (known: {', '.join(WHEN_VERDICTS)})")
    return verdict in WHEN_VERDICTS[when]


def why_not_chosen(verdict: str, when: str, has_head: bool = True) -> str | None:
    """Why the fix stage passes over a suite with `verdict` under `optimize.when` (None: it is chosen)."""
    if not has_head:
        return "no fix: the suite is not on the head, so there is no prompt to fix"
    if wants_fix(verdict, when):
        return None
    if when == "never":
        return "no fix: optimize.when is never"
    fixes = ", ".join(v for v in ("regressed", "below-min", "improved", "unchanged") if v in WHEN_VERDICTS[when])
    return f"no fix: its verdict {verdict} is not one that optimize.when: {when} fixes ({fixes})"


def _zero_caps(share: BudgetLimits, total: BudgetLimits) -> str | None:
    """Why a suite's share has no room at all (a cap at zero), or None."""
    empty = [cap for cap in _CAPS if getattr(share, cap) is not None and getattr(share, cap) <= 0]
    if not empty:
        return None
    cap = empty[0]
    if getattr(total, cap) <= 0:
        return f"not optimized: the budget is zero (optimize.budget.{cap}: {getattr(total, cap):g})"
    return f"not optimized: no budget left (the suites before it spent the pull request's {cap}, {getattr(total, cap):g})"


def total_budget(section, budget_usd: float | None = None) -> BudgetLimits:
    """The pull request's caps: gpo.yaml's `optimize.budget`, with `budget_usd` for the dollars."""
    return BudgetLimits.from_config(section.budget, max_usd=budget_usd)


def share_of(total: BudgetLimits, spent: Mapping[str, float], remaining_suites: int) -> BudgetLimits:
    """An equal share, for each of `remaining_suites`, of what `spent` left of `total`."""
    parts = max(1, remaining_suites)
    values: dict[str, Any] = {}
    for cap in _CAPS:
        limit = getattr(total, cap)
        if limit is None:
            continue
        left = max(0.0, limit - spent.get(_SPENT[cap], 0))
        values[cap] = math.floor(left / parts) if cap in ("max_calls", "max_tokens") else left / parts
    return BudgetLimits(**values)


def chart_points(trajectory: str | Path | None) -> tuple[ChartPoint, ...]:
    """The chart's points from a run's trajectory.jsonl (empty when there is none; a torn line is
    skipped, as on resume)."""
    if trajectory is None:
        return ()
    by_step: dict[int, list[float]] = {}
    for record in read_records(trajectory).records:
        if isinstance(record, PromptRecord) and record.complete:
            by_step.setdefault(record.step, []).append(record.dev)
        elif record.kind == "step":
            by_step.setdefault(record.step, [])
    return points_from_scores(by_step)


def points_from_scores(by_step: Mapping[int, Sequence[float]]) -> tuple[ChartPoint, ...]:
    """Points from the dev scores scored at each step (step 0: the original)."""
    if 0 not in by_step or not by_step[0]:
        return ()
    points, best = [], max(by_step[0])
    for step in range(0, max(by_step) + 1):
        scores = by_step.get(step) or []
        step_best = max(scores) if scores else None
        if step_best is not None:
            best = max(best, step_best)
        points.append(ChartPoint(step, best, step_best))
    return tuple(points)


def fix_failures(ws, run_result, *, when: str | None = None, budget_usd: float | None = None,
                 steps: int | None = None, candidates: int | None = None,
                 limits: Mapping[str, float] | None = None, on_step: Callable[[str, Any], None] | None = None,
                 ) -> FixReport:
    """Optimize the head prompt of each suite `when` selects (default: gpo.yaml's `optimize.when`),
    within one budget for all of them; see the module docstring. `limits` overrides caps of the
    total (e.g. {"max_calls": 40}); `on_step(suite, StepReport)` reports progress."""
    from gpo_action.optimize.plan import plan_optimization, run_dir_for, run_plan

    section = ws.config.optimize
    when = when or section.when
    overrides = {k: v for k, v in (limits or {}).items() if v is not None}
    total = BudgetLimits(**{**total_budget(section, budget_usd).model_dump(), **overrides})
    changes = {c.name: c for c in run_result.changes}
    has_head = {c.suite: changes.get(c.suite) is not None and changes[c.suite].head is not None
                for c in run_result.comparisons}
    unfixed = {c.suite: why for c in run_result.comparisons
               if (why := why_not_chosen(c.verdict, when, has_head[c.suite])) is not None}
    chosen = [c for c in run_result.comparisons if c.suite not in unfixed]
    fixes: list[Fix] = []
    spent: dict[str, float] = {}
    for index, comparison in enumerate(chosen):
        change = changes[comparison.suite]
        share = share_of(total, spent, len(chosen) - index)
        plan = plan_optimization(ws, comparison.suite, steps=steps, candidates=candidates, job=change.head)
        base = (change.base.template.source if section.localize and comparison.verdict == "regressed"
                and change.base is not None else None)
        plan = replace(plan, budget=share, run_dir=run_dir_for(ws, FIX_RUNS_DIR, comparison.suite), base=base,
                       max_drop=ws.config.gate.max_drop)
        why = _zero_caps(share, total) or _cannot_run(ws.client, plan)
        if why is not None:
            fixes.append(Fix(comparison.suite, comparison.verdict, change.prompt, share.caps(), skipped=why))
            continue
        step = (lambda report, name=comparison.suite: on_step(name, report)) if on_step else None
        result = run_plan(plan, ws.client, on_step=step)
        for key in ("calls", "tokens", "cost", "seconds"):
            spent[key] = spent.get(key, 0) + result.spent.get(key, 0)
        fixes.append(Fix(comparison.suite, comparison.verdict, change.prompt, share.caps(), result,
                         chart_points(result.trajectory)))
    notes = ()
    if chosen and len(chosen) > 1:
        notes = (f"one budget for the pull request, split across {len(chosen)} suites in order: each got an equal "
                 "share of what the suites before it left",)
    return FixReport(tuple(fixes), when, total.caps(), notes, unfixed)


def _cannot_run(client: LLMClient, plan) -> str | None:
    from gpo_action.assertions import needs_llm

    roles = [("task", plan.job.model), ("optimizer", plan.optimizer_model)]
    if plan.judge is not None and any(needs_llm(a) for case in plan.job.suite.cases for a in case.asserts):
        roles.append(("judge", plan.judge))
    for role, model in roles:
        reason = client.skip_reason(model)
        if reason is not None:
            return f"not optimized: the {role} model {model.name} cannot run here ({reason})"
    return None
