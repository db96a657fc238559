"""Assertions: one registry from promptfoo-compatible type name to checker.

`check()` does the shared work once, then dispatches:
  1. `extract`: the output becomes the first matching group (or the whole match) of a regex;
  2. `value`: strings are rendered as Jinja2 with the case's vars and `expected`; no `value` but an
     `expected` means value = expected (except for checkers whose value is a schema or a rubric);
  3. `normalize`: steps applied in order to the output and to string values;
  4. the checker from `CHECKERS`; 5. the `not-` prefix, flipped in `flip` and nowhere else.
Steps 1-3 are `prepare()`, public so that `gpo_action.rubric` shares them.
A checker that raises gives a failed Verdict with the message as its reason, never a crash.
Errors (a raising checker, a failed extraction, a value that cannot render) are not flipped by `not-`.
`is-json` checks against the JSON-schema subset in `gpo_action.schemas`.
`llm-rubric` needs a judge model, so `check()` refuses it: `gpo_action.rubric` builds the judge's
prompt (`rubric_messages()`) and grades the reply (`parse_rubric()`); it imports this module, not
the reverse. `score_case()` aggregates the verdicts of a case (weights, threshold).
Code assertions (`javascript`, `python`) are refused: nothing from a pull request is executed.
A checker registered with `facts=True` is also given the response's own figures (`ResponseFacts`:
latency, cost, finish reason, declared tools, embeddings; `gpo_action.grading`); one with a `judge`
(a `Judge`: prompt builder and reply parser) is graded by the judge model as llm-rubric is; one with `embeds` names the
texts whose embeddings it needs. The checkers register from their own modules, imported at the
end: `textchecks` (equals, contains*, regex, starts-with, is-json, levenshtein, llm-rubric's entry),
`textmetrics`, `responsechecks`, `jsontext`, `toolcalls`, `graders`, `similar`.
User regexes (`regex`, `extract`) run through `gpo_action.patterns`: bounded input, and a timeout.

Same-named types mean what they mean in promptfoo (its 0.121 source, checked by
tests/test_promptfoo_semantics.py against recorded promptfoo verdicts): values are compared as
JavaScript's `String(value)` (`jsvalues`), `contains-any`/`-all` strings split by promptfoo's comma
rule (quotes keep commas), `equals` with a mapping or list compares parsed JSON and otherwise
strings, `regex` takes JavaScript syntax (`jsregex`; `extract` stays Python syntax, it is ours).
A value loaded from a `file://` reference (`filerefs.FileText`) is used as written, not rendered.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from gpo_action.errors import TemplateError
from gpo_action.filerefs import FileText
from gpo_action.grading import Judge, JudgeReplyError, ResponseFacts
from gpo_action.jsregex import translate
from gpo_action.patterns import MAX_REGEX_INPUT, PatternTimeout, compile_pattern, search
from gpo_action.registry import Registry
from gpo_action.templates import parse_template, render_text

Normalizer = Literal["strip", "lower", "collapse_spaces", "strip_punctuation"]

REFUSED = {
    "javascript": "gpo-action never runs code from a suite (a pull request could change it)",
    "python": "gpo-action never runs code from a suite (a pull request could change it)",
}


class Assertion(BaseModel):
    """One assertion as written in a suite (`assert:` list entries)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str = Field(description="checker name, optionally prefixed with 'not-'")
    value: Any = Field(default=None, description="expected value; strings are Jinja2-rendered with the case's vars and `expected`")
    weight: float = Field(default=1.0, ge=0, description="weight in the case score; 0 = reported only")
    extract: str | None = Field(default=None, description="regex; the output is replaced by its first group (or whole match) before checking")
    normalize: tuple[Normalizer, ...] = Field(default=(), description="applied in order to output and value before comparing")
    threshold: float | None = Field(default=None, ge=0, description="pass mark for graded checkers (levenshtein: max distance; llm-rubric: min score)")
    metric: str | None = Field(default=None, min_length=1, description="named score this assertion adds to (reported per metric); rendered with the case's vars")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float
    reason: str = ""
    error: bool = False   # the checker raised: the case fails whatever its weights and threshold (promptfoo's rule)


@dataclass(frozen=True)
class Checker:
    """A registered checker and what the registry knows about it."""

    name: str
    fn: Callable[..., Verdict]
    needs_llm: bool = False
    defaults_to_expected: bool = True  # a missing `value` takes the case's `expected`
    facts: bool = False  # fn(output, value, assertion, facts: ResponseFacts)
    judge: Judge | None = None  # for needs_llm; None: llm-rubric's (gpo_action.rubric)
    embeds: Callable[[str, Any, Assertion], list[str]] | None = None  # texts to embed (models.embedding)
    validate: Callable[[Assertion], None] | None = None  # load-time check (ValueError naming the problem)

    def __call__(self, output: str, value: Any, assertion: Assertion, facts: ResponseFacts | None = None) -> Verdict:
        if self.facts:
            return self.fn(output, value, assertion, facts or ResponseFacts())
        return self.fn(output, value, assertion)


CHECKERS: Registry[Checker] = Registry(
    "checker", unknown="unknown assertion type {name!r}; known types: {known} (each also as 'not-<type>')",
    taken="a checker named {name!r} is already registered")


def checker(name: str, needs_llm: bool = False, *, defaults_to_expected: bool = True, facts: bool = False,
            judge: Judge | None = None, embeds: Callable[[str, Any, Assertion], list[str]] | None = None,
            validate: Callable[[Assertion], None] | None = None):
    """Register `fn(output, value, assertion) -> Verdict` under a promptfoo type name (with
    `facts=True`, `fn(output, value, assertion, facts)`; see `Checker`)."""
    if name.startswith("not-") or name in REFUSED:
        raise ValueError(f"cannot register a checker named {name!r}")

    def register(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
        CHECKERS.register(name, Checker(name, fn, needs_llm or judge is not None, defaults_to_expected, facts or embeds is not None,
                                        judge, embeds, validate))
        return fn

    return register


def get_checker(name: str) -> Checker:
    """The checker for a base type name (without `not-`); ValueError lists the known names."""
    if name in REFUSED:
        raise ValueError(f"assertion type {name!r} is not supported: {REFUSED[name]}; "
                         "use regex, is-json or llm-rubric instead")
    return CHECKERS.lookup(name)


def split_type(type_: str) -> tuple[str, bool]:
    """("not-contains") -> ("contains", True); ("contains") -> ("contains", False)."""
    return (type_[4:], True) if type_.startswith("not-") else (type_, False)


def needs_llm(assertion: Assertion) -> bool:
    return get_checker(split_type(assertion.type)[0]).needs_llm


# -- shared steps -------------------------------------------------------------------------------

def _strip_punctuation(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P")).strip()


_SPACES = re.compile(r"\s+")
_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "lower": str.lower,
    "collapse_spaces": lambda text: _SPACES.sub(" ", text),
    "strip_punctuation": _strip_punctuation,
}


def compile_checked(pattern: Any, what: str, type_: str, *, javascript: bool = False) -> Any:
    """A user pattern, compiled by `gpo_action.patterns` (searched there with a timeout);
    `javascript`: the pattern is JavaScript syntax (the `regex` type), translated by `jsregex`."""
    if not isinstance(pattern, str) or (javascript and pattern == ""):
        got = "an empty string" if isinstance(pattern, str) else type(pattern).__name__
        raise ValueError(f"assertion {type_!r}: {what} must be a string pattern, got {got}")
    try:
        return compile_pattern(translate(pattern) if javascript else pattern)
    except re.error as exc:
        raise ValueError(f"assertion {type_!r}: invalid {what} pattern {pattern!r}: {exc}") from None
    except ValueError as exc:  # jsregex.JsRegexError: a construct not translated
        raise ValueError(f"assertion {type_!r}: {what} pattern {pattern!r}: {exc}") from None


def _normalize(value: Any, steps: tuple[str, ...]) -> Any:
    if not steps:
        return value
    if isinstance(value, list):
        return [_normalize(item, steps) for item in value]
    if isinstance(value, str):
        for step in steps:
            value = _NORMALIZERS[step](value)
    return value


def _render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render strings (also inside lists and mappings, e.g. a schema's `enum`) as templates."""
    if isinstance(value, FileText):  # loaded from a file: used as written, as promptfoo does
        return value
    if isinstance(value, str):
        return render_text(value, context, "<assertion value>") if "{" in value else value
    if isinstance(value, list):
        return [_render_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: _render_value(item, context) for key, item in value.items()}
    return value


def prepare(assertion: Assertion, spec: Checker, output: str, vars: Mapping[str, Any] | None,
            expected: Any) -> tuple[str, Any] | Verdict:
    """Steps 1-3 of `check` (extract, value, normalize): (output, value), or a Verdict when they
    already fail the assertion."""
    if assertion.extract is not None:
        try:
            match = search(compile_checked(assertion.extract, "extract", assertion.type), output)
        except PatternTimeout as exc:
            return Verdict(False, 0.0, f"extract: {exc}")
        except ValueError as exc:
            return Verdict(False, 0.0, str(exc))
        if match is None:
            return Verdict(False, 0.0, f"extract pattern not found: {assertion.extract!r}")
        output = next((g for g in match.groups() if g is not None), "") if match.re.groups else match.group(0)
    if assertion.value is None:
        value = expected if spec.defaults_to_expected else None
    else:
        try:
            value = _render_value(assertion.value, {**(vars or {}), "expected": expected})
        except TemplateError as exc:
            return Verdict(False, 0.0, f"assertion value: {exc.message}")
    steps = assertion.normalize
    return _normalize(output, steps), _normalize(value, steps)


def flip(verdict: Verdict, base: str) -> Verdict:
    """The one place `not-` is applied."""
    reason = f"expected not {base}: {verdict.reason}" if verdict.passed else verdict.reason
    return Verdict(not verdict.passed, 1.0 - verdict.score, reason)


def check(assertion: Assertion, output: str, vars: Mapping[str, Any] | None = None, expected: Any = None,
          facts: ResponseFacts | None = None) -> Verdict:
    """Grade one output. Raises ValueError only for an unknown type or an llm-rubric that needs its judge
    (see `gpo_action.rubric`); everything that goes wrong with the data is a failed Verdict."""
    base, inverse = split_type(assertion.type)
    spec = get_checker(base)
    prepared = prepare(assertion, spec, output, vars, expected)
    if isinstance(prepared, Verdict):
        return prepared
    output, value = prepared
    if spec.needs_llm:
        if (spec.judge is None or spec.judge.needs_value) and is_missing(value):
            return Verdict(False, 0.0, f"{base} needs a rubric in `value`")
        raise ValueError(f"{base} is graded by a judge model: use rubric_messages() and parse_rubric()")
    try:
        verdict = spec(output, value, assertion, facts)
    except Exception as exc:  # promptfoo's rule: a failing checker is a failed assertion, not a crash
        return Verdict(False, 0.0, f"{assertion.type} error: {exc}", error=True)
    return flip(verdict, base) if inverse else verdict


def validate_assertion(assertion: Assertion) -> None:
    """Raise ValueError naming the problem; suites call this at load time, before any model call."""
    base, _ = split_type(assertion.type)
    spec = get_checker(base)
    for step in assertion.normalize:
        if step not in _NORMALIZERS:
            raise ValueError(f"assertion {assertion.type!r}: unknown normalize step {step!r}; "
                             f"known: {', '.join(_NORMALIZERS)}")
    if assertion.extract is not None:
        compile_checked(assertion.extract, "extract", assertion.type)
    value = assertion.value
    for text in (value if isinstance(value, list) else [value]):
        if isinstance(text, str) and "{" in text:
            try:
                parse_template(text, "<assertion value>", kind="text")
            except TemplateError as exc:
                raise ValueError(f"assertion {assertion.type!r}: value is not a valid template: {exc.message}") from None
    if spec.needs_llm and (spec.judge is None or spec.judge.needs_value) and is_missing(value):
        raise ValueError(f"assertion {assertion.type!r}: needs a rubric in `value`")
    if spec.validate is not None:
        spec.validate(assertion)


def is_static(value: Any) -> bool:
    """A string value with no template code: what it checks against is known at load time."""
    return isinstance(value, str) and "{{" not in value and "{%" not in value


def is_missing(value: Any) -> bool:
    """No value to check against: None or a blank string."""
    return value is None or (isinstance(value, str) and not value.strip())


# -- aggregation -------------------------------------------------------------------------------------

def score_case(assertions: Iterable[Assertion], verdicts: Iterable[Verdict], threshold: float | None = None) -> tuple[float, bool]:
    """Weighted mean of the scores, and whether the case passes, as promptfoo computes them.

    Weight 0 means reported only: it never fails the case. When every weight is 0 the score is 0.
    Passed = every assertion of weight > 0 passed; with a threshold, score >= threshold instead.
    A checker that raised (`Verdict.error`) fails the case in every case, as a throwing assertion
    makes promptfoo's test an error."""
    assertions, verdicts = list(assertions), list(verdicts)
    if not verdicts:
        raise ValueError("score_case needs at least one assertion")
    if len(assertions) != len(verdicts):
        raise ValueError(f"score_case got {len(assertions)} assertions but {len(verdicts)} verdicts")
    total_score = total_weight = 0.0
    for a, v in zip(assertions, verdicts):  # summed in promptfoo's order, so float ties agree
        total_score += v.score * a.weight
        total_weight += a.weight
    score = total_score / total_weight if total_weight > 0 else 0.0
    if any(v.error for v in verdicts):
        return score, False
    if threshold is not None:
        return score, score >= threshold
    return score, all(v.passed for a, v in zip(assertions, verdicts) if a.weight != 0)


__all__ = [
    "Assertion", "Checker", "CHECKERS", "Judge", "JudgeReplyError", "MAX_REGEX_INPUT", "ResponseFacts", "Verdict", "check", "checker", "flip",
    "get_checker", "is_missing", "needs_llm", "prepare", "score_case", "split_type", "validate_assertion",
]

# The other promptfoo types register themselves from their modules, which import this one.
from gpo_action import textchecks  # noqa: E402,F401  (first: the registry lists types in this order)
from gpo_action import graders, jsontext, responsechecks, similar, textmetrics, toolcalls  # noqa: E402,F401
