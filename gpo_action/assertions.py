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
texts whose embeddings it needs. The other promptfoo types register from their own modules
(`textmetrics`, `responsechecks`, `jsontext`, `toolcalls`, `graders`, `similar`), imported at the end.
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
from gpo_action.jsvalues import js_parse_json, js_string, split_commas, utf16_units
from gpo_action.patterns import MAX_REGEX_INPUT, PatternTimeout, compile_pattern, search
from gpo_action.registry import Registry
from gpo_action.schemas import check_schema, same_json, schema_problem, short_json
from gpo_action.templates import parse_template, render_text

Normalizer = Literal["strip", "lower", "collapse_spaces", "strip_punctuation"]

DEFAULT_LEVENSHTEIN_THRESHOLD = 5
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


def _compile_checked(pattern: Any, what: str, type_: str, *, javascript: bool = False) -> Any:
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
            match = search(_compile_checked(assertion.extract, "extract", assertion.type), output)
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
        _compile_checked(assertion.extract, "extract", assertion.type)
    value = assertion.value
    for text in (value if isinstance(value, list) else [value]):
        if isinstance(text, str) and "{" in text:
            try:
                parse_template(text, "<assertion value>", kind="text")
            except TemplateError as exc:
                raise ValueError(f"assertion {assertion.type!r}: value is not a valid template: {exc.message}") from None
    static = isinstance(value, str) and "{{" not in value and "{%" not in value
    if base == "regex" and (static or (value is not None and not isinstance(value, str))):
        _compile_checked(value, "regex", assertion.type, javascript=True)
    if base in _LIST_CHECKERS and value is not None and not isinstance(value, (str, list)):
        raise ValueError(f"assertion {assertion.type!r}: value must be a list or a comma-separated string")
    if base in _LIST_CHECKERS and (static or isinstance(value, list)):
        _items(value, assertion.type)
    if base in _TEXT_RULES and value is not None and (static or not isinstance(value, str)):
        _text(value, assertion.type)
    if base == "is-json" and value is not None and (static or not isinstance(value, str)):
        _schema(value, assertion.type)
    if spec.needs_llm and (spec.judge is None or spec.judge.needs_value) and is_missing(value):
        raise ValueError(f"assertion {assertion.type!r}: needs a rubric in `value`")
    if spec.validate is not None:
        spec.validate(assertion)


def is_missing(value: Any) -> bool:
    """No value to check against: None or a blank string."""
    return value is None or (isinstance(value, str) and not value.strip())


# -- checkers -------------------------------------------------------------------------------------

# promptfoo's rule per type for a single value: (numbers allowed, empty string allowed)
_TEXT_RULES = {"contains": (True, False), "icontains": (True, False), "starts-with": (False, False),
               "levenshtein": (False, True)}


def _text(value: Any, name: str) -> str:
    """The value as the text promptfoo compares (`String(value)`); what promptfoo refuses raises."""
    base = split_type(name)[0]
    numbers, empty = _TEXT_RULES.get(base, (True, True))
    if value is None:
        raise ValueError(f"{name} needs a value (or the case's expected)")
    if isinstance(value, str):
        if value == "" and not empty:
            raise ValueError(f"{name} needs a non-empty value")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and numbers:
        return js_string(value)
    kinds = "a string or a number" if numbers else "a string"
    raise ValueError(f"{name} needs {kinds} as its value, got {type(value).__name__}")


def _verdict(ok: bool, yes: str, no: str) -> Verdict:
    return Verdict(ok, 1.0 if ok else 0.0, yes if ok else no)


@checker("equals")
def equals(output: str, value: Any, assertion: Assertion) -> Verdict:
    """promptfoo's rule: a mapping or list equals the output parsed as JSON; anything else is
    compared as text (`String(value)`: 42 equals "42" but not "42.0", true equals "true")."""
    if value is None:
        raise ValueError("equals needs a value (or the case's expected)")
    if isinstance(value, (dict, list)):
        try:
            parsed = js_parse_json(output)
        except (ValueError, RecursionError):
            return Verdict(False, 0.0, f"output is not JSON; expected {short_json(value)}")
        return _verdict(same_json(parsed, value), f"output equals {short_json(value)}",
                        f"expected {short_json(value)}, got {short_json(output)}")
    text = js_string(value)
    return _verdict(output == text, f"output equals {short_json(text)}", f"expected {short_json(text)}, got {short_json(output)}")


@checker("contains")
def contains(output: str, value: Any, assertion: Assertion) -> Verdict:
    text = _text(value, "contains")
    return _verdict(text in output, f"output contains {short_json(text)}", f"output does not contain {short_json(text)}")


@checker("icontains")
def icontains(output: str, value: Any, assertion: Assertion) -> Verdict:
    text = _text(value, "icontains")
    return _verdict(text.lower() in output.lower(), f"output contains {short_json(text)} (any case)",
                    f"output does not contain {short_json(text)} (any case)")


def _items(value: Any, name: str) -> list[str]:
    """promptfoo's items: a list as is (each as `String(item)`), a string split by its comma rule
    (`jsvalues.split_commas`: quoted fields keep their commas). An empty list checks nothing: refused."""
    if isinstance(value, str):
        if value == "":
            raise ValueError(f"{name} needs a value (or the case's expected)")
        items: Any = split_commas(value)
    else:
        items = value
    if not isinstance(items, list):
        raise ValueError(f"{name} needs a list or a comma-separated string")
    if any(isinstance(item, (dict, list)) for item in items):
        raise ValueError(f"{name} needs a list of strings or numbers")
    if not items:
        raise ValueError(f"{name} needs at least one item")
    return [js_string(item) for item in items]


def _any_all(output: str, value: Any, name: str, want_all: bool, fold: bool) -> Verdict:
    items = _items(value, name)
    haystack = output.lower() if fold else output
    found = [item for item in items if (item.lower() if fold else item) in haystack]
    if want_all:
        missing = [item for item in items if item not in found]
        return _verdict(not missing, f"output contains all of {short_json(items)}", f"output is missing {short_json(missing)}")
    return _verdict(bool(found), f"output contains {short_json(found[0]) if found else ''}",
                    f"output contains none of {short_json(items)}")


@checker("contains-any")
def contains_any(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "contains-any", want_all=False, fold=False)


@checker("contains-all")
def contains_all(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "contains-all", want_all=True, fold=False)


@checker("icontains-any")
def icontains_any(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "icontains-any", want_all=False, fold=True)


@checker("icontains-all")
def icontains_all(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "icontains-all", want_all=True, fold=True)


_LIST_CHECKERS = frozenset({"contains-any", "contains-all", "icontains-any", "icontains-all"})


@checker("regex")
def regex(output: str, value: Any, assertion: Assertion) -> Verdict:
    """JavaScript syntax (see `jsregex`), matched anywhere in the output seen as JavaScript sees it."""
    pattern = _compile_checked(value, "regex", assertion.type, javascript=True)
    found = search(pattern, utf16_units(output))  # bounded input and time: see gpo_action.patterns
    return _verdict(found is not None, f"output matches {short_json(value)}", f"output does not match {short_json(value)}")


@checker("starts-with")
def starts_with(output: str, value: Any, assertion: Assertion) -> Verdict:
    text = _text(value, "starts-with")
    return _verdict(output.startswith(text), f"output starts with {short_json(text)}", f"output does not start with {short_json(text)}")


def _schema(value: Any, type_: str) -> dict | None:
    """is-json's schema: a mapping, or (as in promptfoo) a string holding it as YAML; None: no schema."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        from gpo_action.errors import InputError
        from gpo_action.yamlsource import parse_yaml

        try:
            value = parse_yaml(value, "<is-json value>").data
        except InputError as exc:
            raise ValueError(f"assertion {type_!r}: the schema string is not YAML: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"assertion {type_!r}: schema at $ must be a mapping")
    check_schema(value, "$", type_)
    return value


@checker("is-json", defaults_to_expected=False)
def is_json(output: str, value: Any, assertion: Assertion) -> Verdict:
    schema = _schema(value, assertion.type)
    try:
        data = js_parse_json(output)
    except (ValueError, RecursionError) as exc:
        return Verdict(False, 0.0, f"output is not valid JSON: {exc}")
    if schema is not None:
        if problem := schema_problem(data, schema, "$"):
            return Verdict(False, 0.0, f"JSON does not match the schema: {problem}")
        return Verdict(True, 1.0, "output is JSON matching the schema")
    return Verdict(True, 1.0, "output is valid JSON")


@checker("levenshtein")
def levenshtein(output: str, value: Any, assertion: Assertion) -> Verdict:
    from rapidfuzz.distance import Levenshtein

    text = _text(value, "levenshtein")
    distance = Levenshtein.distance(utf16_units(output), utf16_units(text))  # JavaScript counts UTF-16 units
    limit = DEFAULT_LEVENSHTEIN_THRESHOLD if assertion.threshold is None else assertion.threshold
    ok = distance <= limit  # scored 1 or 0, as in promptfoo
    return Verdict(ok, 1.0 if ok else 0.0, f"Levenshtein distance {distance} {'<=' if ok else '>'} {limit:g}")


@checker("llm-rubric", needs_llm=True, defaults_to_expected=False)
def llm_rubric(output: str, value: Any, assertion: Assertion) -> Verdict:
    raise ValueError("llm-rubric is graded by a judge model: use rubric_messages() and parse_rubric()")


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
from gpo_action import graders, jsontext, responsechecks, similar, textmetrics, toolcalls  # noqa: E402,F401
