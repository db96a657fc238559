"""`is-valid-openai-tools-call` and `is-valid-openai-function-call`: the output is a call of a
tool the prompt file declares, with arguments that match that tool's parameter schema.

Tools are declared as OpenAI's, in a chat prompt file's `params` (passed to the model as they are):
`params.tools: [{type: function, function: {name, description, parameters}}]`, or the older
`params.functions: [{name, parameters}]`. A reply that only calls tools reaches us as its
`tool_calls` in JSON (`llm/providers.choice_text`), the form promptfoo grades too:

    tools-call:    [{"type": "function", "function": {"name": "...", "arguments": "{...}"}}, ...]
                   (a single call, or {"tool_calls": [...]}, is accepted as well)
    function-call: {"name": "...", "arguments": "{...}"}

`arguments` may be a JSON string (as OpenAI sends it) or an object. The schema is the subset of
`gpo_action.schemas`; a keyword outside it fails the assertion with that reason.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from gpo_action.assertions import Assertion, ResponseFacts, Verdict, checker
from gpo_action.schemas import check_schema, schema_problem


def _declared(facts: ResponseFacts) -> dict[str, Mapping[str, Any]]:
    """Function name -> its declaration, from `params.tools` and `params.functions`."""
    functions: dict[str, Mapping[str, Any]] = {}
    for tool in facts.tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            functions[function["name"]] = function
    for function in facts.functions:
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            functions[function["name"]] = function
    return functions


def _call_problem(name: Any, arguments: Any, declared: Mapping[str, Mapping[str, Any]]) -> str | None:
    if not isinstance(name, str) or name not in declared:
        return f"calls {name!r}, which the prompt file does not declare (declared: {', '.join(sorted(declared))})"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return f"{name}: arguments are not JSON ({exc})"
    if arguments is None:
        arguments = {}
    schema = declared[name].get("parameters")
    if isinstance(schema, dict):
        check_schema(schema, f"{name}.parameters", "is-valid-openai-tools-call")
        if (problem := schema_problem(arguments, schema, "$")) is not None:
            return f"{name}: arguments do not match its parameters: {problem}"
    return None


def _parse(output: str) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        return None


def _tool_calls(data: Any) -> list[tuple[Any, Any]] | str:
    """(name, arguments) of each tool call, or what the output is instead."""
    if isinstance(data, dict):
        data = data.get("tool_calls", [data])
    if not isinstance(data, list) or not data:
        return "output is not a list of tool calls"
    functions = [call.get("function") if isinstance(call, dict) else None for call in data]
    if not all(isinstance(function, dict) for function in functions):
        return "a tool call has no `function`"
    return [(function.get("name"), function.get("arguments")) for function in functions]


def _function_call(data: Any) -> list[tuple[Any, Any]] | str:
    """(name, arguments) of the one function call, or what the output is instead."""
    if isinstance(data, dict) and "function_call" in data:
        data = data["function_call"]
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) and "function" in data[0]:
        data = data[0]["function"]  # one tool call: its function
    if not isinstance(data, dict) or "name" not in data:
        return 'output is not a function call ({"name", "arguments"})'
    return [(data.get("name"), data.get("arguments"))]


def _graded(output: str, facts: ResponseFacts, read: Callable[[Any], list[tuple[Any, Any]] | str],
            undeclared: str) -> Verdict:
    declared = _declared(facts)
    if not declared:
        return Verdict(False, 0.0, undeclared)
    calls = read(_parse(output))
    if isinstance(calls, str):
        return Verdict(False, 0.0, calls)
    for name, arguments in calls:
        if (problem := _call_problem(name, arguments, declared)) is not None:
            return Verdict(False, 0.0, problem)
    return Verdict(True, 1.0, f"valid call{'s' * (len(calls) > 1)} of {', '.join(str(name) for name, _ in calls)}")


@checker("is-valid-openai-tools-call", defaults_to_expected=False, facts=True)
def tools_call(output: str, value: Any, assertion: Assertion, facts: ResponseFacts) -> Verdict:
    return _graded(output, facts, _tool_calls, "the prompt file declares no tools (params.tools)")


@checker("is-valid-openai-function-call", defaults_to_expected=False, facts=True)
def function_call(output: str, value: Any, assertion: Assertion, facts: ResponseFacts) -> Verdict:
    return _graded(output, facts, _function_call,
                   "the prompt file declares no functions (params.functions or params.tools)")
