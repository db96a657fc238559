"""Terminal renderables for `gpo-action optimize`: a progress line per step, the projection of
a dry run, and the final report (scores, word diff, edit size, trajectory). Never prints;
`cli.py` owns the consoles. rich is imported inside the functions that build renderables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpo_action.optimize.diffs import diff_stats, render_rich
from gpo_action.optimize.results import OptimizeResult, StepReport
from gpo_action.report.formats import format_cost, pct

if TYPE_CHECKING:  # an annotation: the projection's module loads the optimizer's parts
    from gpo_action.optimize.projection import Projection


def _cost(cost: float | None) -> str:
    return "unknown" if cost is None else format_cost(cost)


def step_line(report: StepReport) -> str:
    spent = report.spent
    used = f"calls {spent.get('calls', 0)}, tokens {spent.get('tokens', 0):,}, {_cost(spent.get('cost', 0.0))}"
    if report.step == 0:
        return f"step 0/{report.steps}: original scores {pct(report.current)} on dev ({used})"
    budget = "no budget" if report.budget_words is None else f"budget {report.budget_words} words"
    rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(report.rejected.items()))
    parts = [f"{report.candidates} candidates", f"{report.evaluated} scored"]
    if report.duplicates:
        parts.append(f"{report.duplicates} seen before")
    if report.raced_out:
        parts.append(f"{report.raced_out} raced out")
    if rejected:
        parts.append(f"rejected: {rejected}")
    return (f"step {report.step}/{report.steps}: {budget}; {', '.join(parts)}; step best {pct(report.step_best)}, "
            f"current {pct(report.current)}, best {pct(report.best)} ({used})")


def projection_table(projection: Projection):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="gpo-action optimize --dry-run (upper bounds)", title_justify="left")
    for name, justify in [("phase", "left"), ("model", "left"), ("calls", "right"), ("tokens", "right"),
                          ("cost", "right")]:
        table.add_column(name, justify=justify)
    for row in projection.rows:
        table.add_row(row.phase, row.role, str(row.calls), f"{row.tokens:,}", _cost(row.cost))
    table.add_row("total", "", str(projection.calls), f"{projection.tokens:,}", _cost(projection.cost), style="bold")
    lines = [Text(f"caps: {', '.join(f'{k} {v:g}' for k, v in projection.caps.items()) or 'none'}")]
    if projection.stops_at:
        lines.append(Text(f"the run would stop at {projection.stops_at} with the best prompt found by then"))
    lines += [Text(f"note: {note}", style="dim") for note in projection.notes]
    return Group(table, *lines)


def result_renderable(result: OptimizeResult):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from rich.markup import escape

    table = Table(title=f"gpo-action optimize: {escape(result.suite)}", title_justify="left")
    for name in ("", "dev", "holdout"):
        table.add_column(name, justify="left" if not name else "right")
    table.add_row("original", pct(result.original_dev), pct(result.original_holdout))
    table.add_row("best", pct(result.best_dev), pct(result.best_holdout))
    parts = [table, Text(result.message, style="green" if result.proposed else "yellow")]
    if result.best != result.original:
        deleted, inserted = diff_stats(result.diff)
        label = "proposed change" if result.proposed else "best candidate (not proposed)"
        parts += [Text(f"{label}: {result.edit_words} words changed (-{deleted} +{inserted})", style="bold"),
                  render_rich(result.diff)]
    spent = result.spent
    stop = f", stopped at {result.stop_reason}" if result.stop_reason else ""
    plural = "s" * (result.evaluated != 1)
    parts.append(Text(f"{result.steps_done}/{result.steps} steps{stop}; {result.evaluated} prompt{plural} scored; "
                      f"calls {spent.get('calls', 0)} (task {spent.get('task_calls', 0)}, optimizer "
                      f"{spent.get('optimizer_calls', 0)}), tokens {spent.get('tokens', 0):,}, "
                      f"{_cost(spent.get('cost', 0.0))}, {spent.get('seconds', 0.0):.1f}s"))
    if result.rejected:
        parts.append(Text("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items()))))
    parts += [Text(f"warning: {w}", style="yellow") for w in result.warnings]
    if result.trajectory:
        parts.append(Text(f"trajectory: {result.trajectory}", style="dim"))
    return Group(*parts)
