"""`eval --dry-run`'s table: per suite its cases and the calls an eval would make (`dryrun.EvalPlan`)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gpo_action.dryrun import EvalPlan


def plan_renderable(plan: EvalPlan) -> Group:
    table = Table(title="dry run: no model called")
    for column in ("suite", "cases", "model", "calls", "cached", "to send", "judge calls (at most)"):
        table.add_column(column, justify="left" if column in ("suite", "model") else "right")
    for s in plan.suites:
        table.add_row(s.name, str(s.cases), s.model, str(s.calls), str(s.cached), str(s.calls - s.cached),
                      str(s.judge_calls))
    per_model: dict[str, int] = {}
    for s in plan.suites:
        per_model[s.model] = per_model.get(s.model, 0) + s.calls - s.cached
    lines = [Text(f"{model}: {count} call{'s' if count != 1 else ''} to send") for model, count in per_model.items()]
    lines += [Text(f"cannot run here: {model}: {why}") for model, why in plan.unavailable.items()]
    return Group(table, *lines)
