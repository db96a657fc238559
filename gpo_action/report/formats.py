"""Figures and verdict words as plain text, shared by every renderer: the terminal (rich), the
Markdown comment and job summary, annotations and commit messages. Nothing here imports rich or
knows Markdown: each renderer styles or escapes what it gets."""

from __future__ import annotations


def pct(score: float | None) -> str:
    """A 0..1 score as a percentage with one decimal ("53.3"); "-" for none."""
    return "-" if score is None else f"{100 * score:.1f}"


def format_cost(cost: float | None) -> str:
    """Dollars with four decimals; "$0" for nothing spent (or not known)."""
    return f"${cost:.4f}" if cost else "$0"


def format_p(p: float | None) -> str:
    """A comparison's p-value, three significant digits; "-" when it was not tested."""
    return "-" if p is None else f"{p:.3g}"


def format_delta(comparison) -> str:
    """head - base in percentage points with its confidence interval: "+6.7 [+1.2, +12.0]"."""
    if comparison.delta is None:
        return "-"
    text = f"{100 * comparison.delta:+.1f}"
    if comparison.ci_low is not None and comparison.ci_high is not None:
        text += f" [{100 * comparison.ci_low:+.1f}, {100 * comparison.ci_high:+.1f}]"
    return text


def verdict_label(comparison) -> str:
    """The verdict as shown: a removal the gate allows says so."""
    return f"{comparison.verdict} (allowed)" if comparison.verdict == "removed" and not comparison.failed \
        else comparison.verdict


def unevaluated_text(counts, skipped_models) -> str:
    """What could not be evaluated for want of a model or a key, naming each model and why, and the fix:
    "" when nothing was skipped. `counts`: (suite, cases skipped, cases) per suite evaluated."""
    from gpo_action.llm.availability import fix_text

    short = [(name, skipped, total) for name, skipped, total in counts if skipped]
    if not short:
        return ""
    if short and len(short) == len(counts) and all(skipped == total for _, skipped, total in short):
        what = "nothing was evaluated"
    else:
        what = (f"{len(short)} of {len(counts)} suites were not fully evaluated ("
                + ", ".join(f"{name}: {skipped} of {total} cases skipped" for name, skipped, total in short) + ")")
    models = "; ".join(f"{name} cannot run here ({reason})" for name, reason in skipped_models.items())
    because = f": {models}, and the cache does not hold its answers" if models else ""
    return f"{what}{because}. {fix_text(skipped_models)}."


def run_counts(result) -> list[tuple[str, int, int]]:
    """(suite, cases skipped, cases) over both sides of every compared suite of a run (the results
    line up with the comparisons)."""
    out = []
    for c, base, head in zip(result.comparisons, result.base_results, result.head_results):
        if c.verdict != "removed":
            total = sum(len(r.cases) for r in (base, head) if r is not None)
            out.append((c.suite, c.base_skipped + c.head_skipped, total))
    return out


def eval_counts(results) -> list[tuple[str, int, int]]:
    """(suite, cases skipped, cases) of each evaluated suite."""
    from gpo_action.compare import skipped_count

    return [(r.name, skipped_count(r), len(r.cases)) for r in results]
