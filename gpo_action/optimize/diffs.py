"""Word diffs between two prompt texts: one pure function and its renderers.

    ops = word_diff(old, new)        # [("equal", "Classify the "), ("delete", "ticket"), ("insert", "message"), ...]
    render_plain(ops)                # "Classify the [-ticket-]{+message+} ..." (git --word-diff style)
    render_markdown(ops)             # <del>/<ins> for a PR comment (HTML-escaped)
    render_rich(ops)                 # the plain form as a rich Text, red and green (rich imported lazily)

Texts are cut into words and whitespace runs, so joining the "equal" and "delete" parts gives
the old text back exactly, and "equal" and "insert" the new one. A lone whitespace run between
two changes is folded into them, so "a b" -> "c d" reads as one change, not two.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

from rapidfuzz.distance import Levenshtein

Op = tuple[str, str]  # ("equal" | "delete" | "insert", text)
_TOKEN = re.compile(r"\s+|\S+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> list[Op]:
    """The changes from `old` to `new`, word by word; deletions come before insertions."""
    a, b = _tokens(old), _tokens(new)
    raw: list[Op] = []
    for op in Levenshtein.opcodes(a, b):
        if op.tag == "equal":
            raw.append(("equal", "".join(a[op.src_start:op.src_end])))
            continue
        if op.src_end > op.src_start:
            raw.append(("delete", "".join(a[op.src_start:op.src_end])))
        if op.dest_end > op.dest_start:
            raw.append(("insert", "".join(b[op.dest_start:op.dest_end])))
    return _merge(_fold_spaces(_merge(raw)))


def _merge(ops: Iterable[Op]) -> list[Op]:
    """Join neighbours of the same kind; within a change, keep deletions before insertions."""
    out: list[Op] = []
    for kind, text in ops:
        if not text:
            continue
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        elif kind == "delete" and out and out[-1][0] == "insert" and (len(out) < 2 or out[-2][0] != "delete"):
            out.insert(len(out) - 1, (kind, text))        # a change reads deletion first
        elif kind == "delete" and len(out) >= 2 and out[-1][0] == "insert" and out[-2][0] == "delete":
            out[-2] = ("delete", out[-2][1] + text)
        elif kind == "insert" and len(out) >= 2 and out[-1][0] == "delete" and out[-2][0] == "insert":
            out[-2] = ("insert", out[-2][1] + text)
        else:
            out.append((kind, text))
    return out


def _fold_spaces(ops: list[Op]) -> list[Op]:
    """A whitespace-only "equal" between two changes becomes part of both sides."""
    out: list[Op] = []
    for i, (kind, text) in enumerate(ops):
        between = 0 < i < len(ops) - 1 and ops[i - 1][0] != "equal" and ops[i + 1][0] != "equal"
        if kind == "equal" and between and not text.strip():
            out += [("delete", text), ("insert", text)]
        else:
            out.append((kind, text))
    return out


def old_text(ops: Iterable[Op]) -> str:
    return "".join(text for kind, text in ops if kind != "insert")


def new_text(ops: Iterable[Op]) -> str:
    return "".join(text for kind, text in ops if kind != "delete")


def diff_stats(ops: Iterable[Op]) -> tuple[int, int]:
    """(words deleted, words inserted)."""
    deleted = inserted = 0
    for kind, text in ops:
        if kind == "delete":
            deleted += len(text.split())
        elif kind == "insert":
            inserted += len(text.split())
    return deleted, inserted


def render_plain(ops: Iterable[Op]) -> str:
    parts = {"equal": "{}", "delete": "[-{}-]", "insert": "{{+{}+}}"}
    return "".join(parts[kind].format(text) for kind, text in ops)


def render_markdown(ops: Iterable[Op]) -> str:
    """HTML for a GitHub comment: deletions in <del>, insertions in <ins>, inside a <pre>."""
    out = []
    for kind, text in ops:
        escaped = html.escape(text, quote=False)
        out.append(escaped if kind == "equal" else f"<{kind[:3]}>{escaped}</{kind[:3]}>")
    return "<pre>" + "".join(out) + "</pre>"


def render_rich(ops: Iterable[Op]):
    """A `rich.text.Text` in git's word-diff form, [-deleted-] in red and {+inserted+} in green,
    so it still reads without colour."""
    from rich.text import Text

    text = Text()
    for kind, part in ops:
        if kind == "equal":
            text.append(part)
        elif kind == "delete":
            text.append(f"[-{part}-]", style="red")
        else:
            text.append(f"{{+{part}+}}", style="green")
    return text
