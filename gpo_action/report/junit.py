"""JUnit XML, the report CI systems read (Jenkins, GitLab, Buildkite, test-report actions): pure
functions from results to the XML text; `eval_junit` for `eval --junit`, `run_junit` for `run
--junit` and the Action's `.gpo/junit.xml`.

The layout is the Surefire/Ant one (tests/data/junit/junit-10.xsd, the schema Jenkins checks):

    <testsuites name="gpo-action" tests failures errors time>
      <testsuite name=SUITE tests failures errors skipped time>     one per suite
        <properties> prompt, model, score (run: verdict, base and head score, delta, p) </properties>
        <testcase classname=SUITE name="ID: VARS"/>                 eval: one per case
        <testcase classname="SUITE.base" name=CASE/>                run: one per case and side
        <testcase classname="SUITE.head" name=CASE/>
        <testcase classname=SUITE name="verdict"/>                  run: fails when the gate does

A failed case carries `<failure>` (message: the failed assertions' reasons; text: every reason, the
expected value and the output, each cut to a few KB), a provider error `<error>` (its type), a case
whose model could not run here `<skipped>`. Every text is scrubbed of the run's secrets and loses
the characters XML 1.0 forbids (control characters but tab and newlines, lone surrogates), so a
model's output cannot break the file; ElementTree escapes the rest.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable, Sequence

from gpo_action.llm.types import SKIPPED
from gpo_action.report.formats import format_delta, format_p, pct
from gpo_action.results import CaseResult, SuiteResult
from gpo_action.secrets import scrub

MESSAGE_CHARS = 500                 # a failure's message attribute (shown in one line by most CIs)
TEXT_CHARS = 4000                   # each part of a failure's text: reasons, expected, output
NAME_CHARS = 80                     # the vars shown after a case's id in its testcase name
# What XML 1.0 allows (its `Char` production); everything else is dropped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class _Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, other: "_Counts") -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped


def clean(text: object) -> str:
    """`text` as it may stand in the XML: secrets scrubbed, characters XML 1.0 forbids removed."""
    return _NOT_XML.sub("", scrub(str(text)))


def cut(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with a note of how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... (cut: {len(text)} characters in all)"


def case_name(case: CaseResult) -> str:
    """A testcase's name: the case id, then its variables' values (a CI lists cases by name)."""
    shown = ", ".join(str(value) for value in case.vars.values())
    name = f"{case.case_id}: {cut(shown, NAME_CHARS)}" if shown else case.case_id
    return clean(" ".join(name.split()))


def eval_junit(results: Sequence[SuiteResult]) -> str:
    """The JUnit XML of an evaluation: one testsuite per suite, one testcase per case."""
    root, total = _root(), _Counts()
    for result in results:
        suite, counts = _suite(root, result.name, result.seconds, _properties(result))
        for case in result.cases:
            _case(suite, result.name, case, counts)
        _finish(suite, counts, total)
    return _serialize(root, total, sum(r.seconds for r in results))


def run_junit(result) -> str:
    """The JUnit XML of a `run` (a pipeline.RunResult): one testsuite per compared suite, a testcase
    per case on each side (classname SUITE.base, SUITE.head) and one for the suite's verdict."""
    root, total = _root(), _Counts()
    seconds = 0.0
    for comparison, base, head in zip(result.comparisons, result.base_results, result.head_results):
        sides = [(side, r) for side, r in (("base", base), ("head", head)) if r is not None]
        spent = sum(r.seconds for _, r in sides)
        seconds += spent
        props = _comparison_properties(comparison) + (_properties(head) if head is not None else [])
        suite, counts = _suite(root, comparison.suite, spent, props)
        for side, side_result in sides:
            for case in side_result.cases:
                _case(suite, f"{comparison.suite}.{side}", case, counts)
        _verdict(suite, comparison, counts)
        _finish(suite, counts, total)
    return _serialize(root, total, seconds)


def _root() -> ET.Element:
    return ET.Element("testsuites", {"name": "gpo-action"})


def _suite(root: ET.Element, name: str, seconds: float, properties: list[tuple[str, str]]):
    suite = ET.SubElement(root, "testsuite", {"name": clean(name)})
    props = ET.SubElement(suite, "properties")
    for key, value in properties:
        ET.SubElement(props, "property", {"name": key, "value": clean(value)})
    suite.set("time", _seconds(seconds))
    return suite, _Counts()


def _finish(suite: ET.Element, counts: _Counts, total: _Counts) -> None:
    for key in ("tests", "failures", "errors", "skipped"):
        suite.set(key, str(getattr(counts, key)))
    total.add(counts)


def _serialize(root: ET.Element, total: _Counts, seconds: float) -> str:
    # The schema's <testsuites> has no `skipped` attribute: the suites carry it.
    for key in ("tests", "failures", "errors"):
        root.set(key, str(getattr(total, key)))
    root.set("time", _seconds(seconds))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _seconds(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def _properties(result: SuiteResult) -> list[tuple[str, str]]:
    return [("prompt", result.prompt), ("model", result.model), ("score", pct(result.score))]


def _comparison_properties(comparison) -> list[tuple[str, str]]:
    return [("verdict", comparison.verdict), ("base_score", pct(comparison.base_score)),
            ("head_score", pct(comparison.head_score)), ("delta", format_delta(comparison)),
            ("p_value", format_p(comparison.p_value))]


def _case(suite: ET.Element, classname: str, case: CaseResult, counts: _Counts) -> None:
    element = ET.SubElement(suite, "testcase", {"classname": clean(classname), "name": case_name(case)})
    counts.tests += 1
    if case.error is not None:
        message = cut(clean(case.error), MESSAGE_CHARS)
        if case.error_type == SKIPPED:
            counts.skipped += 1
            ET.SubElement(element, "skipped", {"message": message})
        else:
            counts.errors += 1
            error = ET.SubElement(element, "error", {"type": clean(case.error_type or "Error"), "message": message})
            error.text = cut(clean(case.error), TEXT_CHARS)
    elif not case.passed:
        counts.failures += 1
        reasons = list(failure_reasons(case))
        failure = ET.SubElement(element, "failure", {"type": "assertion",
                                                     "message": cut(clean("; ".join(reasons)), MESSAGE_CHARS)})
        failure.text = _failure_text(case, reasons)


def failure_reasons(case: CaseResult) -> Iterable[str]:
    """Why each failed sample failed: its failed assertions (`type: reason`), else its score; each
    prefixed `sample N: ` when the case has repeats (also the HTML report's list of reasons)."""
    many = len(case.samples) > 1
    for number, sample in enumerate(case.samples, 1):
        if sample.passed:
            continue
        prefix = f"sample {number}: " if many else ""
        failed = [c for c in sample.checks if not c.passed]
        if not failed:
            yield f"{prefix}score {pct(sample.score)} below the pass mark"
        for check in failed:
            yield f"{prefix}{check.type}: {check.reason}" if check.reason else f"{prefix}{check.type} failed"


def _failure_text(case: CaseResult, reasons: list[str]) -> str:
    parts = [cut(clean("\n".join(reasons)), TEXT_CHARS)]
    if case.expected is not None:
        parts.append("expected: " + cut(clean(case.expected), TEXT_CHARS))
    failing = next((s for s in case.samples if not s.passed), None)
    output = failing.output if failing is not None else case.output
    parts.append("output: " + ("(none)" if output is None else cut(clean(output), TEXT_CHARS)))
    return "\n".join(parts)


def _verdict(suite: ET.Element, comparison, counts: _Counts) -> None:
    element = ET.SubElement(suite, "testcase", {"classname": clean(comparison.suite), "name": "verdict"})
    counts.tests += 1
    message = (f"{comparison.verdict}: head {pct(comparison.head_score)} vs base {pct(comparison.base_score)}, "
               f"delta {format_delta(comparison)}, p = {format_p(comparison.p_value)}")
    text = "\n".join(clean(note) for note in comparison.notes) or None
    if comparison.verdict == "error":
        counts.errors += 1
        ET.SubElement(element, "error", {"type": "ProviderErrors", "message": clean(message)}).text = text
    elif comparison.failed:
        counts.failures += 1
        ET.SubElement(element, "failure", {"type": "gate", "message": clean(message)}).text = text


__all__ = ["case_name", "clean", "cut", "eval_junit", "failure_reasons", "run_junit"]
