"""The HTML report (`--html PATH`, the Action's `.gpo/report.html`): one self-contained file, made
from the same dict as the JSON report (`jsonreport.eval_report`, `pr_pipeline.report_data`).

    text = html_report(data)                 # a dict of kind "eval" or "run" -> the page

Per suite: the verdict table at the top, then a table with one row per case (`tr.case`; on `run`
the base and head sides side by side, paired by case id), each side with its score, its
output(s), the failed assertions' reasons and any error; when a fix ran, its figures, the word
diff of the prompt and the trajectory chart (inline SVG, `chart.trajectory_svg`). Filters (all /
flipped / failed / errors) are radio buttons and CSS: a row is `flipped` when it passed on one
side and failed on the other (both evaluated, as `compare` decides), `failed` when it failed on
the side that is judged (the head; the base when the suite is gone from the head), `errors` when
either side has an error (a provider error, a skipped or a not evaluated case).

Every text in it is hostile (a pull request's prompt and cases, a model's output): each is
scrubbed of the run's secrets (before it is escaped, so a secret holding `&` or `<` is still
found) and of the characters HTML does not allow (`junit.clean`), cut (an output at `TEXT_CHARS`),
and escaped by Jinja2's autoescape. The page has no script at all, and its
Content-Security-Policy (`default-src 'none'`) lets it load nothing and run nothing, so even a
mistake in escaping could not execute or fetch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping, Sequence

from gpo_action.compare import Comparison
from gpo_action.fixes import ChartPoint
from gpo_action.llm.types import SKIPPED
from gpo_action.report.chart import trajectory_svg
from gpo_action.report.formats import format_cost, format_delta, format_p, pct, verdict_label
from gpo_action.report.junit import clean, cut, failure_reasons
from gpo_action.results import CaseResult, SuiteResult

TEXT_CHARS = 20_000                 # each output, expected value, prompt diff shown (the JSON has all)
VARS_CHARS = 2_000                  # a case's variables, shown under its id
TEMPLATE = "report.html.j2"
FILTERS = ("all", "flipped", "failed", "errors")


def text(value: object, limit: int = TEXT_CHARS) -> str:
    """`value` as the page may show it: secrets scrubbed, forbidden characters removed, cut."""
    return cut(clean(value), limit)


@dataclass(frozen=True)
class Sample:
    number: int
    passed: bool
    score: str
    output: str | None


@dataclass(frozen=True)
class Side:
    """One case on one side: `status` is pass, fail, error or skipped."""

    status: str
    score: str
    samples: tuple[Sample, ...]
    reasons: tuple[str, ...]
    error: str | None
    error_type: str | None


@dataclass(frozen=True)
class Row:
    row_id: str                     # "s0-c3": safe in an id, whatever the case id holds
    case_id: str
    vars: str
    expected: str | None
    base: Side | None
    head: Side | None
    flip: str | None                # "broke" (pass -> fail), "fixed" (fail -> pass) or None
    failed: bool
    errored: bool

    @property
    def classes(self) -> str:
        marks = ["case", f"flip-{self.flip}" if self.flip else ""]
        marks += [name for name, on in (("flipped", self.flip), ("failed", self.failed), ("errors", self.errored))
                  if on]
        return " ".join(m for m in marks if m)


@dataclass(frozen=True)
class Fix:
    message: str
    proposed: bool
    skipped: str | None
    figures: tuple[tuple[str, str], ...]
    diff: tuple[tuple[str, str], ...]
    chart: str                      # inline SVG made of numbers and a sanitized title


@dataclass(frozen=True)
class Suite:
    index: int
    name: str
    anchor: str
    verdict: str
    summary: tuple[tuple[str, str], ...]        # the verdict table's cells, by column
    facts: tuple[tuple[str, str], ...]          # prompt, model, ...
    notes: tuple[str, ...]
    rows: tuple[Row, ...]
    fix: Fix | None

    def count(self, name: str) -> int:
        return len(self.rows) if name == "all" else sum(1 for r in self.rows if name in r.classes.split())


def html_report(data: Mapping[str, Any]) -> str:
    """The page for a JSON report dict of kind "eval" or "run"."""
    kind = data.get("kind")
    if kind == "eval":
        suites = [_eval_suite(i, s) for i, s in enumerate(data.get("suites") or ())]
        columns = ("suite", "score", "passed", "failed", "errors", "floor", "tokens", "cost", "seconds")
    elif kind == "run":
        suites = _run_suites(data)
        columns = ("suite", "verdict", "base", "head", "change [CI]", "p", "paired", "errors base/head")
    else:
        raise ValueError(f"not a gpo-action report: kind {kind!r} (eval or run)")
    filters = [f for f in FILTERS if f != "flipped" or kind == "run"]
    counts = {f: sum(s.count(f) for s in suites) for f in filters}
    missing = {text(suite, 200): len(ids) for suite, ids in (data.get("missing") or {}).items()}
    return _template().render(kind=kind, suites=suites, columns=columns, filters=filters, counts=counts,
                              header=_header(data), notes=_notes(data), interrupted=bool(data.get("interrupted")),
                              missing=missing)


@functools.lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, StrictUndefined

    # autoescape on for everything: no value reaches the page unescaped but the chart's SVG (Markup).
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8"))


def _header(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    facts = [("tool", f"gpo-action {data.get('version', '')}".strip()), ("exit code", str(data.get("exit_code")))]
    if data.get("kind") == "run":
        facts[1:1] = [("base", text(data.get("base") or "-", 80)), ("head", text(data.get("head") or "-", 80))]
    usage = data.get("usage") or {}
    if usage:
        facts.append(("usage", text(", ".join(f"{k} {v}" for k, v in usage.items()), 500)))
    return facts


def _notes(data: Mapping[str, Any]) -> list[str]:
    """The run's notes: its own, the policy's warnings, the models that could not run here."""
    policy = data.get("policy") or {}
    notes = list(data.get("notes") or ()) + list(policy.get("notes") or ())
    notes += [f"warning: {change.get('message')}" for change in policy.get("changes") or ()]
    notes += [f"{model}: {why}" for model, why in (data.get("skipped_models") or {}).items()]
    notes += list((data.get("fixes") or {}).get("notes") or ())
    return [text(note, 4_000) for note in notes]


def _eval_suite(index: int, data: Mapping[str, Any]) -> Suite:
    result = SuiteResult.from_dict(data)
    rows = tuple(_row(index, n, None, case) for n, case in enumerate(result.cases))
    floor = "-" if result.min_score is None else pct(result.min_score) + (" (below)" if result.below_min else "")
    summary = (("score", pct(result.score)), ("passed", str(result.passed)), ("failed", str(result.failed)),
               ("errors", str(result.errors)), ("floor", floor), ("tokens", f"{result.tokens:,}"),
               ("cost", format_cost(result.cost)), ("seconds", f"{result.seconds:.1f}"))
    verdict = "below-min" if result.below_min else ("errors" if result.errors else "evaluated")
    return Suite(index, text(result.name, 200), f"suite-{index}", verdict, summary, _facts(result),
                 tuple(text(n) for n in result.notes), rows, None)


def _run_suites(data: Mapping[str, Any]) -> list[Suite]:
    fixes = {f.get("suite"): f for f in ((data.get("fixes") or {}).get("fixes") or ())}
    out = []
    triples = zip(data.get("comparisons") or (), data.get("base_results") or (), data.get("head_results") or ())
    for index, (comparison_data, base_data, head_data) in enumerate(triples):
        comparison = Comparison.from_dict(comparison_data)
        base = SuiteResult.from_dict(base_data) if base_data else None
        head = SuiteResult.from_dict(head_data) if head_data else None
        summary = (("verdict", verdict_label(comparison)), ("base", pct(comparison.base_score)),
                   ("head", pct(comparison.head_score)), ("change [CI]", format_delta(comparison)),
                   ("p", format_p(comparison.p_value)), ("paired", str(comparison.n_paired)),
                   ("errors base/head", f"{comparison.base_errors}/{comparison.head_errors}"))
        facts = _facts(head or base)
        fix = fixes.get(comparison.suite)
        out.append(Suite(index, text(comparison.suite, 200), f"suite-{index}", comparison.verdict, summary, facts,
                         tuple(text(n) for n in comparison.notes), tuple(_paired_rows(index, base, head)),
                         _fix(fix) if fix else None))
    return out


def _facts(result: SuiteResult | None) -> tuple[tuple[str, str], ...]:
    if result is None:
        return ()
    return (("suite file", text(result.path, 500)), ("prompt", text(result.prompt, 500)),
            ("model", text(result.model, 500)), ("cases", str(len(result.cases))))


def _paired_rows(index: int, base: SuiteResult | None, head: SuiteResult | None) -> list[Row]:
    """A row per case: the k-th case with an id on the base beside the k-th with it on the head (a
    repeated id pairs in order), in the head's order, then the cases only the base has."""
    base_cases: dict[tuple[str, int], CaseResult] = {}
    for key, case in _keyed(base.cases if base else ()):
        base_cases[key] = case
    rows, number = [], 0
    for key, case in _keyed(head.cases if head else ()):
        rows.append(_row(index, number, base_cases.pop(key, None), case))
        number += 1
    for case in base_cases.values():
        rows.append(_row(index, number, case, None))
        number += 1
    return rows


def _keyed(cases: Sequence[CaseResult]):
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.case_id] = seen.get(case.case_id, -1) + 1
        yield (case.case_id, seen[case.case_id]), case


def _row(index: int, number: int, base: CaseResult | None, head: CaseResult | None) -> Row:
    """One case (on `eval` the one side is `head`); a suite gone from the head is judged on its base."""
    judged = head if head is not None else base
    flip = None
    if base is not None and head is not None and base.error is None and head.error is None \
            and base.passed != head.passed:
        flip = "broke" if base.passed else "fixed"
    shown = ", ".join(f"{name}={value}" for name, value in judged.vars.items())
    return Row(
        row_id=f"s{index}-c{number}", case_id=text(judged.case_id, 500), vars=text(shown, VARS_CHARS),
        expected=None if judged.expected is None else text(judged.expected),
        base=_side(base) if base is not None else None, head=_side(head) if head is not None else None,
        flip=flip, failed=judged.error is None and not judged.passed,
        errored=any(c is not None and c.error is not None for c in (base, head)))


def _side(case: CaseResult) -> Side:
    if case.error is not None:
        status = "skipped" if case.error_type == SKIPPED else "error"
    else:
        status = "pass" if case.passed else "fail"
    samples = tuple(Sample(n, s.passed, pct(s.score), None if s.output is None else text(s.output))
                    for n, s in enumerate(case.samples, 1))
    # every failed sample's reasons, also in a case that passes by its pass rate (repeats)
    reasons = tuple(text(r, 2_000) for r in failure_reasons(case)) if case.error is None else ()
    return Side(status, pct(case.score), samples, reasons,
                None if case.error is None else text(case.error, 4_000),
                None if case.error_type is None else text(case.error_type, 100))


def _fix(data: Mapping[str, Any]) -> Fix:
    result = data.get("result") or {}
    points = tuple(ChartPoint(int(p[0]), float(p[1]), None if p[2] is None else float(p[2]))
                   for p in data.get("points") or ())
    figures = []
    if result:
        figures = [("dev", f"{pct(result.get('original_dev'))} → {pct(result.get('best_dev'))}"),
                   ("holdout", f"{pct(result.get('original_holdout'))} → {pct(result.get('best_holdout'))}"),
                   ("holdout p", format_p(result.get("holdout_p"))),
                   ("steps", f"{result.get('steps_done', 0)} of {result.get('steps', 0)}"),
                   ("edit", _words(result.get("edit_words", 0)))]
        if result.get("stop_reason"):
            figures.append(("stopped by", text(result["stop_reason"], 500)))
    diff = _diff(result.get("diff") or ()) if result.get("best") != result.get("original") else ()
    return Fix(message=text(result.get("message") or "", 4_000), proposed=bool(result.get("proposed")),
               skipped=None if data.get("skipped") is None else text(data["skipped"], 4_000),
               figures=tuple(figures), diff=diff,
               chart=trajectory_svg(points, f"{data.get('suite', '')}: dev score by step"))


def _words(n: int) -> str:
    return f"{n} word" if n == 1 else f"{n} words"


def _diff(ops: Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """The word diff's parts, cleaned, cut after TEXT_CHARS characters in all."""
    out, used = [], 0
    for kind, part in ops:
        part = clean(part)
        if used + len(part) > TEXT_CHARS:
            out.append((kind, part[: max(0, TEXT_CHARS - used)]))
            out.append(("note", f" … (diff cut at {TEXT_CHARS:,} characters)"))
            break
        used += len(part)
        out.append((kind if kind in ("equal", "delete", "insert") else "equal", part))
    return tuple(out)


__all__ = ["FILTERS", "TEXT_CHARS", "html_report", "text"]
