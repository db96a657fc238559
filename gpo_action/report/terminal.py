"""Rich renderables for the terminal. Builds tables; only the commands print, on the Consoles of `process.py`.

A name from the project (a suite, a case) goes into a cell as `Text`, never as a markup string:
`[wip] triage` is a name, and `[/]` would be a MarkupError at print time."""

from __future__ import annotations

from typing import Sequence

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gpo_action.report.formats import format_cost, format_delta, format_p, pct, run_counts, unevaluated_text, verdict_label
from gpo_action.results import SuiteResult


def eval_table(results: Sequence[SuiteResult]) -> Table:
    table = Table(title="gpo-action eval", title_justify="left")
    for name, justify in [
        ("suite", "left"), ("score", "right"), ("passed", "right"), ("failed", "right"),
        ("errors", "right"), ("tokens", "right"), ("cost", "right"), ("time", "right"),
    ]:
        table.add_column(name, justify=justify)
    for r in results:
        score = pct(r.score)
        if r.below_min:
            score = f"[red]{score}[/red] < {pct(r.min_score)}"
        errors = f"[red]{r.errors}[/red]" if r.errors else "0"
        table.add_row(
            Text(r.name), score, str(r.passed), str(r.failed), errors,
            f"{r.tokens:,}", format_cost(r.cost), f"{r.seconds:.1f}s",
        )
    return table


VERDICT_STYLE = {"regressed": "red", "below-min": "red", "error": "red", "improved": "green", "unchanged": "white",
                 "skipped": "yellow", "removed": "red"}


def run_table(result) -> Table:
    """One row per compared suite: verdict, base and head scores, delta with its CI, p-value."""
    table = Table(title=f"gpo-action run: {result.base_sha[:12]} -> {escape(str(result.head))}", title_justify="left")
    for name, justify in [
        ("suite", "left"), ("verdict", "left"), ("base", "right"), ("head", "right"),
        ("delta [CI]", "right"), ("p", "right"), ("cases", "right"), ("why", "left"),
    ]:
        table.add_column(name, justify=justify)
    reasons = {c.name: ", ".join(f"renamed from {c.base_name}" if r == "renamed" else r for r in c.reasons)
               for c in result.changes}
    for c in result.comparisons:
        style = VERDICT_STYLE.get(c.verdict, "white") if c.failed or c.verdict != "removed" else "yellow"
        table.add_row(
            Text(c.suite), f"[{style}]{verdict_label(c)}[/{style}]", pct(c.base_score), pct(c.head_score),
            format_delta(c), format_p(c.p_value), str(c.n_paired or "-"),
            Text(reasons.get(c.suite, "")),
        )
    return table


def outcome_renderable(outcome):
    """A pull-request run in the terminal: the verdict table, then one line per fix (or the loop guard)."""
    from rich.console import Group

    from gpo_action.report.fixtext import holdout_text, location_text, refinement_text  # loads the optimizer: not for `eval`

    result = outcome.result
    parts = [run_table(result)]
    parts += [Text(f"{c.suite}: unchanged, but {c.power_note}", style="yellow") for c in result.comparisons
              if c.power_note]
    if outcome.guard:
        parts.append(Text(f"gpo-action: {outcome.guard}", style="yellow"))
    for name, reason in outcome.skipped_models.items():
        parts.append(Text(f"skipped (served from the cache only): {name}: {reason}", style="yellow"))
    unevaluated = unevaluated_text(run_counts(result), outcome.skipped_models)
    if unevaluated and result.skips_pass:
        parts.append(Text(f"skipped: {unevaluated} This does not fail the run: {result.skips_pass}.", style="yellow"))
    elif unevaluated:
        parts.append(Text(f"error: {unevaluated} (this fails the run, exit 2: a check that checked nothing does not pass)", style="red"))
    for suite, why in outcome.fixes.unfixed.items() if outcome.fixes is not None else ():
        parts.append(Text(f"fix {suite}: {why}", style="yellow"))
    for fix in outcome.fixes.fixes if outcome.fixes is not None else ():
        if fix.result is None:
            parts.append(Text(f"fix {fix.suite}: {fix.skipped}", style="yellow"))
            continue
        r = fix.result
        located = location_text(r.location, lambda edit: edit)
        if located:
            parts.append(Text(f"fix {fix.suite}: {located}"))
        refined = refinement_text(r)
        if refined:
            parts.append(Text(f"fix {fix.suite}: {refined}"))

        parts.append(Text(f"fix {fix.suite}: {r.message}; {holdout_text(r)}, {r.edit_words} words changed, "
                          f"{r.spent.get('calls', 0)} calls, {format_cost(r.spent.get('cost', 0.0))}",
                          style="green" if r.proposed else "yellow"))
    delivery = outcome.delivery
    if delivery is not None:
        if delivery.comment_where:
            parts.append(Text(f"comment: {delivery.comment_where}"))
        if delivery.review is not None:
            parts.append(Text(f"review: {delivery.review.status} {delivery.review.reason or delivery.review.html_url}"))
        if delivery.commit is not None:
            parts.append(Text(f"commit: {delivery.commit.status} {delivery.commit.sha or delivery.commit.reason}"))
        parts += [Text(f"note: {n}", style="yellow") for n in delivery.notes]
    return Group(*parts)
