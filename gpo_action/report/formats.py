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
