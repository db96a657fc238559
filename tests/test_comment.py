"""The pull-request comment, its chart and the budget split: pure functions over dataclasses."""

from __future__ import annotations

import json

import pytest

from gpo_action.compare import Comparison, FlippedCase
from gpo_action.evaluate import EvalJob
from gpo_action.fixes import ChartPoint, Fix, FixReport, chart_points, points_from_scores, share_of, wants_fix
from gpo_action.llm.types import ModelConfig
from gpo_action.optimize.results import OptimizeResult
from gpo_action.optimize.spec import BudgetLimits
from gpo_action.optimize.trajectory import FinalRecord, PromptRecord, StepRecord
from gpo_action.basehead import RunResult, SuiteChange
from gpo_action.report.chart import chart_title, trajectory_chart
from gpo_action.report.comment import MAX_CHARS, DeliveryNote, pr_comment
from gpo_action.report.markdown import MARKER
from gpo_action.suites import Suite
from gpo_action.templates import parse_template

OLD = "Classify the support ticket as billing, bug or other.\nTicket: {{ ticket }}\n"
NEW = "Classify the ticket.\nTicket: {{ ticket }}\n"
BEST = "Classify the ticket as billing, bug or other.\nTicket: {{ ticket }}\n"


# ---- the chart -------------------------------------------------------------------------------
def test_chart_is_a_mermaid_xychart_of_dev_scores_by_step():
    points = [ChartPoint(0, 0.5, 0.5), ChartPoint(1, 0.5, None), ChartPoint(2, 0.75, 0.75)]
    assert trajectory_chart(points, "triage: dev score by step") == "\n".join([
        "```mermaid",
        "xychart-beta",
        '    title "triage: dev score by step"',
        '    x-axis "step" [0, 1, 2]',
        '    y-axis "dev score" 0 --> 100',
        "    bar [50.0, 0, 75.0]",
        "    line [50.0, 50.0, 75.0]",
        "```",
    ])
    assert trajectory_chart([], "x") == ""


def test_chart_title_cannot_break_out_of_the_block():
    title = chart_title('evil"]\n```\n<img src=x onerror=alert(1)> `suggestion`')
    assert set(title) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.:/()-")
    chart = trajectory_chart([ChartPoint(0, 1.0, 1.0)], 'x"\n```suggestion')
    assert chart.count("```") == 2 and chart.count('"') == 6


def test_chart_points_follow_the_trajectory(tmp_path):
    records = [
        PromptRecord("a", 0, "p0", 0.4, 10),
        StepRecord(1, 50, "a", candidates=2, rejected={"no-markers": 2}),
        PromptRecord("b", 2, "p1", 0.3, 10, parent="a"),
        PromptRecord("c", 2, "p2", 0.6, 10, parent="a"),
        PromptRecord("d", 2, "p3", 0.9, 4, complete=False, parent="a"),     # raced out: not a full score
        StepRecord(2, 40, "a", candidates=3, selected="c"),
        FinalRecord(best="c", prompt="p2", original_dev=0.4, best_dev=0.6, original_holdout=0.5,
                    best_holdout=0.55, edit_words=3, proposed=True, message="improved"),
    ]
    path = tmp_path / "trajectory.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    assert chart_points(path) == (ChartPoint(0, 0.4, 0.4), ChartPoint(1, 0.4, None), ChartPoint(2, 0.6, 0.6))
    assert chart_points(tmp_path / "missing.jsonl") == ()
    assert points_from_scores({}) == ()


# ---- the budget split ------------------------------------------------------------------------
def test_one_budget_is_split_over_the_suites_in_order():
    total = BudgetLimits(max_calls=400, max_usd=2.0, max_seconds=900, max_tokens=None)
    first = share_of(total, {}, 3)
    assert first.caps() == {"max_calls": 133, "max_usd": pytest.approx(2 / 3), "max_seconds": 300}
    second = share_of(total, {"calls": 100, "cost": 0.5, "seconds": 300, "tokens": 5}, 2)
    assert second.caps() == {"max_calls": 150, "max_usd": 0.75, "max_seconds": 300}
    spent_out = share_of(total, {"calls": 500, "cost": 3.0, "seconds": 1000}, 1)
    assert spent_out.caps() == {"max_calls": 0, "max_usd": 0.0, "max_seconds": 0.0}


@pytest.mark.parametrize("when, verdicts", [
    ("never", set()), ("regression", {"regressed"}), ("below-min", {"regressed", "below-min"}),
    ("always", {"regressed", "below-min", "improved", "unchanged"}),
])
def test_when_selects_verdicts(when, verdicts):
    assert {v for v in ("regressed", "below-min", "improved", "unchanged", "error", "skipped")
            if wants_fix(v, when)} == verdicts


# ---- the comment -----------------------------------------------------------------------------
def change(name: str, old: str, new: str) -> SuiteChange:
    suite = Suite(name, f"evals/{name}.yaml", f"prompts/{name}.j2", ())
    model = ModelConfig("replay/x.jsonl")
    return SuiteChange(name, ("prompt changed",), f"prompts/{name}.j2",
                       EvalJob(suite, parse_template(old), model), EvalJob(suite, parse_template(new), model))


def flipped(n: int, size: int) -> tuple[FlippedCase, ...]:
    return tuple(FlippedCase(f"case{i}", {"ticket": "x" * size}, "billing", "billing", "y" * size, 1.0, 0.0)
                 for i in range(n))


def comparison(name: str, verdict: str, **extra) -> Comparison:
    return Comparison(name, verdict, 1.0, 0.4, -0.6, -0.8, -0.4, 0.001, "mcnemar", 30, **extra)


def optimize_result(name: str, best: str = BEST, proposed: bool = True) -> OptimizeResult:
    return OptimizeResult(
        suite=name, template_path=f"prompts/{name}.j2", kind="text", original=NEW, best=best, original_dev=0.4,
        best_dev=0.9, original_holdout=0.4, best_holdout=0.8 if proposed else 0.3, proposed=proposed,
        message="improved: dev 40.0 -> 90.0, holdout 40.0 -> 80.0" if proposed else "no improvement found",
        edit_words=5, steps_done=2, steps=2, dev_cases=15, holdout_cases=15, evaluated=3,
        spent={"calls": 40, "task_calls": 38, "optimizer_calls": 2, "tokens": 4000, "cost": 0.012, "seconds": 9.0},
    )


def run_result(comparisons, changes, notes=()) -> RunResult:
    return RunResult("a" * 40, tuple(changes), tuple(comparisons), (None,) * len(comparisons),
                     (None,) * len(comparisons), usage={"calls": 60, "cache_hits": 0, "tokens": 1234, "cost": 0.0},
                     notes=tuple(notes), exit_code=1)


def fix_report(*names: str, proposed: bool = True) -> FixReport:
    points = (ChartPoint(0, 0.4, 0.4), ChartPoint(1, 0.9, 0.9))
    fixes = tuple(Fix(n, "regressed", f"prompts/{n}.j2", {"max_calls": 200, "max_usd": 1.0}, optimize_result(n, proposed=proposed),
                      points) for n in names)
    return FixReport(fixes, "regression", {"max_calls": 400, "max_usd": 2.0, "max_seconds": 900})


def test_comment_has_verdict_change_fix_chart_cost_and_budget():
    result = run_result([comparison("triage", "regressed", flipped=flipped(2, 20))], [change("triage", OLD, NEW)])
    body = pr_comment(result, fix_report("triage"))
    assert body.startswith(MARKER + "\n## gpo-action")
    assert "| triage | 🔴 regressed | 100.0 | 40.0 |" in body
    assert "What changed in `prompts/triage.j2` (base → head):" in body
    assert "<pre>Classify the <del>support ticket</del><ins>ticket.</ins>" not in body          # deletions first
    assert "<del>support ticket as billing, bug or other.</del><ins>ticket.</ins>" in body
    assert "holdout 40.0 → 80.0" in body and "Proposed change: 5 words" in body
    assert "<del>ticket.</del><ins>ticket as billing, bug or other.</ins>" in body
    assert "```mermaid\nxychart-beta" in body
    assert "Spent 40 calls (task 38, optimizer 2), 4,000 tokens, $0.0120, 9 s of this suite's share (200 calls, $1.00)" in body
    assert "Fix budget for this pull request: 400 calls, $2.00, 900 s, split across 1 suite" in body
    assert "2 flipped case(s)" in body


def test_no_improvement_still_shows_the_numbers_and_the_chart():
    result = run_result([comparison("triage", "regressed")], [change("triage", OLD, NEW)])
    body = pr_comment(result, fix_report("triage", proposed=False))
    assert "➖ no improvement found" in body and "Best candidate, not proposed" in body
    assert "xychart-beta" in body and "holdout 40.0 → 30.0" in body


def test_truncation_drops_flipped_cases_then_other_diffs_then_notes_never_the_table():
    comparisons = [comparison("triage", "regressed", flipped=flipped(5, 500), notes=("a note " * 50,)),
                   comparison("other", "unchanged")]
    changes = [change("triage", OLD, NEW), change("other", OLD * 20, NEW * 20)]
    result = run_result(comparisons, changes, notes=["run note " * 40])
    fixes = fix_report("triage")
    full = pr_comment(result, fixes)
    assert "case0" in full and "Prompt changes of the other suites" in full and "**Notes**" in full

    def fits(limit: int) -> str:
        body = pr_comment(result, fixes, max_chars=limit)
        assert len(body) <= limit and "| triage | 🔴 regressed |" in body and "| other | ⚪ unchanged |" in body
        return body

    no_flipped = fits(len(full) - 100)
    assert "flipped-case details left out to fit" in no_flipped and "Prompt changes of the other suites" in no_flipped
    assert "**Notes**" in no_flipped
    no_diffs = fits(len(no_flipped) - 100)
    assert "other suites' prompt diffs left out" in no_diffs and "**Notes**" in no_diffs
    assert "xychart-beta" in no_diffs
    no_notes = fits(len(no_diffs) - 100)
    assert "notes left out to fit" in no_notes and "**Notes**" not in no_notes and "xychart-beta" in no_notes
    summaries = fits(len(no_notes) - 100)
    assert "xychart-beta" not in summaries and "✅ improved" in summaries      # the fix's one-line summary stays


def test_a_huge_report_stays_under_githubs_limit():
    names = [f"suite{i}" for i in range(40)]
    comparisons = [comparison(n, "regressed", flipped=flipped(5, 5000)) for n in names]
    changes = [change(n, OLD * 300, NEW * 300) for n in names]
    body = pr_comment(run_result(comparisons, changes), fix_report(*names))
    assert len(body) <= MAX_CHARS < 65_536
    assert all(f"| {n} | 🔴 regressed |" in body for n in names)


def test_every_hidden_comment_opener_after_the_marker_is_defused_and_the_body_still_fits():
    """A piece that quotes pull-request text raw (here a delivery diff) cannot spell one of the
    tool's markers, and the zero-width breaks count towards the limit."""
    names = ["triage"]
    raw = "```diff\n" + "<!-- gpo-action:report -->\n" * 3000 + "```"
    delivery = {"triage": DeliveryNote(("The improved prompt, as a diff against the pull request's head:",), (raw,))}
    result = run_result([comparison("triage", "regressed")], [change("triage", OLD, NEW)])
    for limit in (20_000, 200_000):
        body = pr_comment(result, fix_report(*names), delivery, max_chars=limit)
        assert len(body) <= limit and body.startswith(MARKER) and body.count("<!--") == 1
    assert "gpo-action:report" in body[len(MARKER):]                     # shown, defused
