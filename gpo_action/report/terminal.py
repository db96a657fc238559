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


VERDICT_STYLE = {"regressed": "red", "below-min": "red", "error": "red", "improved": "green", "unchanged": "white"}


def format_delta(c) -> str:
    if c.delta is None:
        return "-"
    text = f"{100 * c.delta:+.1f}"
    if c.ci_low is not None and c.ci_high is not None:
        text += f" [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}]"
    return text


def run_table(result) -> Table:
    """One row per compared suite: verdict, base and head scores, delta with its CI, p-value."""
    table = Table(title=f"gpo-action run: {result.base_sha[:12]} -> {result.head}", title_justify="left")
    for name, justify in [
        ("suite", "left"), ("verdict", "left"), ("base", "right"), ("head", "right"),
        ("delta [CI]", "right"), ("p", "right"), ("cases", "right"), ("why", "left"),
    ]:
        table.add_column(name, justify=justify)
    reasons = {c.name: ", ".join(c.reasons) for c in result.changes}
    for c in result.comparisons:
        style = VERDICT_STYLE.get(c.verdict, "white")
        table.add_row(
            c.suite, f"[{style}]{c.verdict}[/{style}]", format_score(c.base_score), format_score(c.head_score),
            format_delta(c), "-" if c.p_value is None else f"{c.p_value:.3g}", str(c.n_paired or "-"),
            reasons.get(c.suite, ""),
        )
    return table
