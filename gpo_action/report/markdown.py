"""Markdown pieces of the pull-request comment (`comment.py` composes them): the verdict table,
flipped cases, and the escaping every piece goes through.

Everything that comes from a case, a prompt or a model output is escaped twice over: HTML special
characters and every character Markdown gives a meaning to (backticks, brackets, `*`, `_`, `@`,
...) become character references (`escape_text`); case contents go in `<pre>` blocks that
start a line (an HTML block: GitHub does not parse Markdown inside it), HTML escaped along with
backticks, brackets and `@` (`escape_pre`). So a case cannot inject a
fake ```suggestion, a link, a mention or hidden text (`<!-- -->`, `<details>`). Code spans take
`code()`, which cannot be closed from inside; it and every fence `defuse` `<!--`, and the whole
comment is defused after its marker, so no text of the pull request spells one of the tool's markers.
"""

from __future__ import annotations

from typing import Any

from gpo_action.report.formats import format_delta, format_p, pct, verdict_label

MARKER = "<!-- gpo-action:report -->"
HIDDEN_BREAK = "<!-\u200b-"                # what `defuse` makes of `<!--`
VERDICT_ICON = {"regressed": "🔴", "below-min": "🔴", "error": "⚠️", "improved": "🟢", "unchanged": "⚪", "skipped": "⏭️",
                "removed": "🗑️"}
MAX_FLIPPED = 5
MAX_FIELD_CHARS = 600


# HTML's special characters, and those with a meaning in GitHub Markdown as character references.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
            **{c: f"&#{ord(c)};" for c in "\\`*_[]()!#~|@:{}+-="}}


# Inside a <pre> block that starts a line (an HTML block) GitHub parses no Markdown, so escaping HTML
# is enough; backticks, brackets and @ are escaped too, in case a block is ever placed inline.
_PRE_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "&#96;", "[": "&#91;", "]": "&#93;", "@": "&#64;"}


def escape_text(text: Any) -> str:
    """`text` with HTML and Markdown syntax neutralised (newlines kept): shows as itself, does nothing."""
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def escape_pre(text: Any) -> str:
    """`text` for the inside of a `<pre>` block (see `pre`): HTML escaped, plus backticks, brackets and @."""
    return "".join(_PRE_ESCAPES.get(ch, ch) for ch in str(text))


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell or a line of prose (one line)."""
    return escape_text(text).replace("\r", " ").replace("\n", " ")


def defuse(text: Any) -> str:
    """`text` with every `<!--` broken by a zero-width space: pull-request text in a code span or a
    fence shows as itself, but can no longer spell the hidden markers the tool finds its own
    comments by (`MARKER`, `replies.DENIED_MARKER`, `proposals.PROPOSED_MARKER`)."""
    return str(text).replace("<!--", HIDDEN_BREAK)


def code(text: Any) -> str:
    """An inline code span of `text` (one line) that nothing in it can close or hide a marker in."""
    body = defuse(text).replace("\r", " ").replace("\n", " ").replace("`", "'")
    return f"`{body}`" if body.strip() else "` `"


def clip(text: Any, limit: int = MAX_FIELD_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more chars)"


def pre(text: Any) -> str:
    """A `<pre>` block of `text`; put it at the start of a line, after a blank line."""
    return f"<pre>{escape_pre(clip(text))}</pre>"


def verdict_table(result) -> str:
    rows = [
        "| suite | verdict | base | head | Δ [CI] | p | cases |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in result.comparisons:
        rows.append(
            f"| {cell(c.suite)} | {VERDICT_ICON.get(c.verdict, '')} {verdict_label(c)} | {pct(c.base_score)} | "
            f"{pct(c.head_score)} | {format_delta(c)} | {format_p(c.p_value)} | "
            f"{c.n_paired or '-'} |"
        )
    return "\n".join(rows)


def flipped_section(comparison) -> str:
    if not comparison.flipped:
        return ""
    parts = [f"<details><summary>{cell(comparison.suite)}: {len(comparison.flipped)} flipped case(s)</summary>\n"]
    for f in comparison.flipped[:MAX_FLIPPED]:
        direction = "passed on base, fails on head" if f.base_score > f.head_score else "failed on base, passes on head"
        parts.append(f"\n**{cell(f.case_id)}**: {direction}\n\ninput:\n\n{pre(f.vars)}\n\nexpected:\n\n{pre(f.expected)}\n\n"
                     f"base output:\n\n{pre(f.base_output)}\n\nhead output:\n\n{pre(f.head_output)}\n")
    if len(comparison.flipped) > MAX_FLIPPED:
        parts.append(f"\n…and {len(comparison.flipped) - MAX_FLIPPED} more (see the JSON report).\n")
    parts.append("\n</details>\n")
    return "".join(parts)
