"""The per-case view of a saved report (`gpo-action show`): each case's input (its variables), its
expected value, its output(s) and every assertion's verdict with its reason; for a `run` report the
base's side, then the head's. Pure: a `lastreport.SavedReport` in, rich renderables out; only
cli.py prints them.

Everything shown came from a pull request or a model: hostile text. It goes into `Text` (markup in
it is never parsed: `[red]x[/]` prints as written) through `visible`, which spells out what a
terminal would obey rather than show (ESC, a lone CR, backspace, the other C0 and C1 controls,
DEL, the bidirectional overrides and isolates) as `\\x1b`, `\\r`, `\\u202e`, highlighted. Text is
shown whole (what `show` is for) unless `max_chars` cuts it, saying how much was left out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from rich.console import Group
from rich.text import Text

from gpo_action.errors import InputError
from gpo_action.report.formats import pct, verdict_label
from gpo_action.report.lastreport import SavedReport, SavedSuite
from gpo_action.results import CaseResult, SampleResult

FILTERS = ("failed", "flipped", "errors")
INDENT = "    "
ESCAPE_STYLE = "bold magenta"
STATUS_STYLE = {"pass": "green", "fail": "red", "error": "red", "-": "dim"}

# What a terminal acts on instead of printing: C0 controls but tab and newline, DEL, C1 controls,
# the bidi marks, embeddings, overrides and isolates ("Trojan Source"), line/paragraph separators.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x1b": "\\x1b", "\x08": "\\b", "\x00": "\\0", "\x0b": "\\v", "\x0c": "\\f", "\x07": "\\a"}


def escape_controls(text: str) -> list[tuple[str, bool]]:
    """`text` cut into (part, is_escape): each control character spelt out; CRLF read as a newline."""
    text = text.replace("\r\n", "\n")
    parts: list[tuple[str, bool]] = []
    pos = 0
    for match in _CONTROLS.finditer(text):
        if match.start() > pos:
            parts.append((text[pos:match.start()], False))
        char = match.group()
        code = ord(char)
        parts.append((_NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"), True))
        pos = match.end()
    if pos < len(text):
        parts.append((text[pos:], False))
    return parts


def visible(text: str, style: str = "") -> Text:
    """`text` as a rich Text that prints literally: no markup read, control characters spelt out."""
    out = Text(style=style)
    for part, escaped in escape_controls(text):
        out.append(part, style=ESCAPE_STYLE if escaped else None)
    return out


@dataclass(frozen=True)
class CaseRow:
    """One case of a suite: its result on each side (an `eval` report has `head` only)."""

    case_id: str
    base: CaseResult | None
    head: CaseResult | None

    @property
    def judged(self) -> CaseResult | None:
        """The side a verdict is about: the head, or the base of a removed suite."""
        return self.head if self.head is not None else self.base

    @property
    def flipped(self) -> bool:
        b, h = self.base, self.head
        return (b is not None and h is not None and b.error is None and h.error is None
                and b.passed != h.passed)


def status(case: CaseResult | None) -> str:
    if case is None:
        return "-"
    return "error" if case.error is not None else ("pass" if case.passed else "fail")


def case_rows(suite: SavedSuite) -> list[CaseRow]:
    """The suite's cases in head order, then base-only ones; paired by id as `compare` pairs them
    (the first case with an id)."""
    base = _by_id(suite.base)
    head = _by_id(suite.head)
    ids = list(head) + [i for i in base if i not in head]
    return [CaseRow(i, base.get(i), head.get(i)) for i in ids]


def _by_id(result) -> dict[str, CaseResult]:
    cases: dict[str, CaseResult] = {}
    for case in result.cases if result is not None else ():
        cases.setdefault(case.case_id, case)
    return cases


def wanted(row: CaseRow, only: Iterable[str]) -> bool:
    """Whether `row` passes any of the filters `only` (none: every row). `failed`: the judged side
    failed (not errored); `errors`: a side errored; `flipped`: passed on one side, failed on the other."""
    only = set(only)
    if not only:
        return True
    judged = row.judged
    return (("failed" in only and status(judged) == "fail")
            or ("errors" in only and "error" in (status(row.base), status(row.head)))
            or ("flipped" in only and row.flipped))


def chosen_suites(report: SavedReport, name: str | None, only: Iterable[str] = ()) -> tuple[SavedSuite, ...]:
    """The report's suites, or the one named; InputError for an unknown name (listing the report's
    suites) or for `flipped` on an `eval` report (it has one side)."""
    if "flipped" in set(only) and report.kind != "run":
        raise InputError("--flipped compares base and head: this is an `eval` report", report.path,
                         hint="`gpo-action run` writes a report with both sides")
    if name is None:
        return report.suites
    hits = tuple(s for s in report.suites if s.name == name)
    if not hits:
        known = ", ".join(s.name for s in report.suites) or "none"
        raise InputError(f"no suite named {name!r} in the report", report.path, hint=f"its suites: {known}")
    return hits


def report_renderable(report: SavedReport, *, suite: str | None = None, only: Sequence[str] = (),
                      max_chars: int | None = None) -> Group:
    """The view `gpo-action show` prints (InputError as `chosen_suites`)."""
    suites = chosen_suites(report, suite, only)
    parts: list[Any] = [_report_header(report)]
    if report.interrupted:
        parts.append(Text("this run was interrupted: cases it did not evaluate show as errors (NotEvaluated)",
                          style="yellow"))
    if not report.suites:
        parts.extend(Text.assemble("note: ", visible(n)) for n in report.notes or ("the report holds no suite",))
    for saved in suites:
        rows = case_rows(saved)
        shown = [r for r in rows if wanted(r, only)]
        parts.append(Text())
        parts.append(_suite_header(report, saved, len(shown), len(rows), only))
        for row in shown:
            parts.append(_case(report, row, max_chars))
    return Group(*parts)


def _report_header(report: SavedReport) -> Text:
    head = Text("gpo-action show: ", style="bold")
    head.append(visible(report.path))
    if report.kind == "run":
        head.append(f" (run: base {report.base[:12] or '?'} -> working tree")
    else:
        head.append(" (eval")
    head.append(f", exit {report.exit_code})" if report.exit_code is not None else ")")
    return head


def _suite_header(report: SavedReport, saved: SavedSuite, shown: int, total: int, only: Sequence[str]) -> Text:
    line = Text("suite ", style="bold")
    line.append(visible(saved.name, "bold"))
    if saved.comparison is not None:
        c = saved.comparison
        line.append(f": {verdict_label(c)}", style=STATUS_STYLE["fail"] if c.failed else None)
        line.append(f" (base {pct(c.base_score)}, head {pct(c.head_score)})")
    else:
        result = saved.head
        if result is not None:
            line.append(f": {pct(result.score)} ({result.passed} passed, {result.failed} failed, "
                        f"{result.errors} errors)")
    which = f" ({', '.join(only)})" if only else ""
    line.append(f"; {shown} of {total} cases shown{which}", style="dim")
    return line


def _case(report: SavedReport, row: CaseRow, max_chars: int | None) -> Text:
    case = row.judged
    if case is None:  # never: a row is made from a case on one side at least
        return Text()
    out = Text("\ncase ", style="bold")
    out.append(visible(row.case_id, "bold"))
    if case.source:
        out.append(" (")
        out.append(visible(case.source))
        out.append(")")
    out.append(": ")
    if report.kind == "run":
        for side, result in (("base", row.base), ("head", row.head)):
            out.append(f"{side} ")
            out.append(status(result), style=STATUS_STYLE[status(result)])
            out.append(", " if side == "base" else "")
        if row.flipped:
            out.append(" (flipped)", style="yellow")
    else:
        out.append(status(case), style=STATUS_STYLE[status(case)])
    out.append("\n  input\n")
    if not case.vars:
        out.append(f"{INDENT}(no variables)\n", style="dim")
    for name, value in case.vars.items():
        out.append(INDENT)
        out.append(visible(str(name)))
        out.append(": ")
        out.append(_block(_as_text(value), max_chars, INDENT + "  "))
        out.append("\n")
    out.append("  expected\n")
    out.append(INDENT)
    out.append(_block(_as_text(case.expected) if case.expected is not None else "(none)", max_chars, INDENT))
    out.append("\n")
    sides = (("base", row.base), ("head", row.head)) if report.kind == "run" else (("", row.head),)
    for side, result in sides:
        if result is None:
            out.append(f"  {side} output\n", style="bold")
            out.append(f"{INDENT}(no {side} side: the suite is not on the {side})\n", style="dim")
            continue
        for index, sample in enumerate(result.samples):
            out.append(_sample(side, index, len(result.samples), sample, max_chars))
    out.rstrip()
    return out


def _sample(side: str, index: int, count: int, sample: SampleResult, max_chars: int | None) -> Text:
    label = f"{side} output" if side else "output"
    if count > 1:
        label += f" {index + 1} of {count}"
    word = "error" if sample.error is not None else ("pass" if sample.passed else "fail")
    out = Text(f"  {label} ", style="bold")
    out.append(word, style=STATUS_STYLE[word])
    if sample.score is not None and sample.error is None:
        out.append(f", score {sample.score:.2f}")
    if sample.cached:
        out.append(", cached", style="dim")
    out.append("\n")
    if sample.error is not None:
        out.append(INDENT)
        out.append(f"error ({sample.error_type or 'error'}): ", style="red")
        out.append(_block(sample.error, max_chars, INDENT))
        out.append("\n")
    if sample.output is not None:
        out.append(INDENT)
        out.append(_block(sample.output, max_chars, INDENT))
        out.append("\n")
    elif sample.error is None:
        out.append(f"{INDENT}(no output)\n", style="dim")
    if sample.checks:
        out.append("  reasons\n")
    for check in sample.checks:
        verdict = "pass" if check.passed else "fail"
        out.append(INDENT)
        out.append(verdict, style=STATUS_STYLE[verdict])
        out.append(" ")
        out.append(visible(check.type))
        out.append(f" ({check.score:.2f})")
        if check.reason:
            out.append(": ")
            out.append(_block(check.reason, max_chars, INDENT + "  "))
        out.append("\n")
    return out


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _block(text: str, max_chars: int | None, indent: str) -> Text:
    """`text` shown literally, its later lines indented by `indent`; cut at `max_chars` if given."""
    cut = 0
    if max_chars is not None and len(text) > max_chars:
        cut, text = len(text) - max_chars, text[:max_chars]
    out = visible(text)
    lines = out.split("\n", allow_blank=True)
    joined = Text("\n" + indent).join(lines)
    if cut:
        joined.append(f" [{cut:,} more characters: --max-chars]", style="dim")
    return joined


__all__ = ["CaseRow", "FILTERS", "case_rows", "chosen_suites", "escape_controls", "report_renderable", "status",
           "visible", "wanted"]
