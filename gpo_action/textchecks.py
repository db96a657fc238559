"""promptfoo's deterministic checks on the output's text, registered in `assertions.CHECKERS`:
equals, contains, icontains, contains-any/-all, icontains-any/-all, regex, starts-with, is-json,
levenshtein; and llm-rubric's entry, which the judge grades (`rubric`). Each follows promptfoo 0.121
(see `assertions`' module doc), and each checks at load time (`validate`) what a static value lets
it check: a regex compiles, a list splits, a value is of a type promptfoo compares, a schema is one.
"""

from __future__ import annotations

from typing import Any

from gpo_action.assertions import Assertion, Verdict, checker, compile_checked, is_static, split_type
from gpo_action.jsvalues import js_parse_json, js_string, split_commas, utf16_units
from gpo_action.patterns import search
from gpo_action.schemas import check_schema, same_json, schema_problem, short_json

DEFAULT_LEVENSHTEIN_THRESHOLD = 5


# -- load-time checks (`Checker.validate`) -------------------------------------------------------

def _check_text(assertion: Assertion) -> None:
    if assertion.value is not None and (is_static(assertion.value) or not isinstance(assertion.value, str)):
        _text(assertion.value, assertion.type)


def _check_items(assertion: Assertion) -> None:
    value = assertion.value
    if value is not None and not isinstance(value, (str, list)):
        raise ValueError(f"assertion {assertion.type!r}: value must be a list or a comma-separated string")
    if is_static(value) or isinstance(value, list):
        _items(value, assertion.type)


def _check_regex(assertion: Assertion) -> None:
    value = assertion.value
    if is_static(value) or (value is not None and not isinstance(value, str)):
        compile_checked(value, "regex", assertion.type, javascript=True)


def _check_schema(assertion: Assertion) -> None:
    if assertion.value is not None and (is_static(assertion.value) or not isinstance(assertion.value, str)):
        _schema(assertion.value, assertion.type)


# -- the checkers --------------------------------------------------------------------------------

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


@checker("contains", validate=_check_text)
def contains(output: str, value: Any, assertion: Assertion) -> Verdict:
    text = _text(value, "contains")
    return _verdict(text in output, f"output contains {short_json(text)}", f"output does not contain {short_json(text)}")


@checker("icontains", validate=_check_text)
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


@checker("contains-any", validate=_check_items)
def contains_any(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "contains-any", want_all=False, fold=False)


@checker("contains-all", validate=_check_items)
def contains_all(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "contains-all", want_all=True, fold=False)


@checker("icontains-any", validate=_check_items)
def icontains_any(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "icontains-any", want_all=False, fold=True)


@checker("icontains-all", validate=_check_items)
def icontains_all(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _any_all(output, value, "icontains-all", want_all=True, fold=True)


@checker("regex", validate=_check_regex)
def regex(output: str, value: Any, assertion: Assertion) -> Verdict:
    """JavaScript syntax (see `jsregex`), matched anywhere in the output seen as JavaScript sees it."""
    pattern = compile_checked(value, "regex", assertion.type, javascript=True)
    found = search(pattern, utf16_units(output))  # bounded input and time: see gpo_action.patterns
    return _verdict(found is not None, f"output matches {short_json(value)}", f"output does not match {short_json(value)}")


@checker("starts-with", validate=_check_text)
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


@checker("is-json", defaults_to_expected=False, validate=_check_schema)
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


@checker("levenshtein", validate=_check_text)
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

