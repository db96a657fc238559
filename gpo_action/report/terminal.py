"""Rich renderables for the terminal. Builds tables; only cli.py owns a Console and prints."""

from __future__ import annotations

from typing import Sequence

from rich.table import Table

from gpo_action.results import SuiteResult


def format_score(score: float | None) -> str:
    return "-" if score is None else f"{100 * score:.1f}"


def format_cost(cost: float) -> str:
    return f"${cost:.4f}" if cost else "$0"


def eval_table(results: Sequence[SuiteResult]) -> Table:
    table = Table(title="gpo-action eval", title_justify="left")
    for name, justify in [
        ("suite", "left"), ("score", "right"), ("passed", "right"), ("failed", "right"),
        ("errors", "right"), ("tokens", "right"), ("cost", "right"), ("time", "right"),
    ]:
        table.add_column(name, justify=justify)
    for r in results:
        score = format_score(r.score)
        if r.below_min:
            score = f"[red]{score}[/red] < {format_score(r.min_score)}"
        errors = f"[red]{r.errors}[/red]" if r.errors else "0"
        table.add_row(
            r.name, score, str(r.passed), str(r.failed), errors,
            f"{r.tokens:,}", format_cost(r.cost), f"{r.seconds:.1f}s",
        )
    return table
