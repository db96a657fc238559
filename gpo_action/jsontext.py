"""`contains-json`: the output holds a JSON object somewhere (prose around it, a code fence),
and with a schema in `value`, one such object matches it (promptfoo's semantics). The schema is
the subset `gpo_action.schemas` knows, as for `is-json`."""

from __future__ import annotations

import json
from typing import Any, Iterator

from gpo_action.assertions import Assertion, Verdict, checker
from gpo_action.schemas import check_schema, schema_problem

MAX_OBJECTS = 200  # a bound on the candidates tried, for an output made of braces


def json_objects(text: str) -> Iterator[Any]:
    """Every JSON object in `text` that starts at a `{`, outermost first, left to right."""
    decoder = json.JSONDecoder()
    start, tried = text.find("{"), 0
    while start >= 0 and tried < MAX_OBJECTS:
        tried += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        yield value
        start = text.find("{", end)


def _schema(assertion: Assertion) -> None:
    if isinstance(assertion.value, dict):
        check_schema(assertion.value, "$", assertion.type)


@checker("contains-json", defaults_to_expected=False, validate=_schema)
def contains_json(output: str, value: Any, assertion: Assertion) -> Verdict:
    found = list(json_objects(output))
    if not found:
        return Verdict(False, 0.0, "output contains no JSON object")
    if not isinstance(value, dict):
        return Verdict(True, 1.0, "output contains JSON")
    check_schema(value, "$", assertion.type)
    problems = [schema_problem(obj, value, "$") for obj in found]
    if any(problem is None for problem in problems):
        return Verdict(True, 1.0, "output contains JSON matching the schema")
    return Verdict(False, 0.0, f"no JSON in the output matches the schema: {problems[0]}")
