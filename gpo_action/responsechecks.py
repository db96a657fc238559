"""Checks on the response's own figures, not its text: `latency`, `cost`, `finish-reason`.

promptfoo's semantics: `latency` passes when the call took at most `threshold` milliseconds,
`cost` when it cost at most `threshold` dollars (both need a threshold), `finish-reason` when the
provider's finish reason equals `value` ("stop", "length", "content_filter", "tool_calls"; any
case). The figures come from `ResponseFacts`: a cached answer keeps the latency and cost it first
had (`llm/cache.py` stores them), so a rerun grades the same. A figure the provider never gave
(latency of a row cached before figures were stored, the cost of a model with no known price, no
finish reason) fails with that reason: a cost counted as 0 because it is unknown never passes.
"""

from __future__ import annotations

from typing import Any

from gpo_action.assertions import Assertion, ResponseFacts, Verdict, checker


def _needs_threshold(assertion: Assertion) -> None:
    if assertion.threshold is None:
        raise ValueError(f"assertion {assertion.type!r}: needs a `threshold` "
                         f"({'milliseconds' if 'latency' in assertion.type else 'dollars'})")


def _at_most(figure: float | None, limit: float | None, what: str, unit: str, assertion: Assertion) -> Verdict:
    if limit is None:
        raise ValueError(f"{assertion.type} needs a threshold")
    if figure is None:
        return Verdict(False, 0.0, f"the response has no {what}")
    ok = figure <= limit
    return Verdict(ok, 1.0 if ok else 0.0, f"{what} {figure:g}{unit} {'<=' if ok else '>'} {limit:g}{unit}")


@checker("latency", defaults_to_expected=False, facts=True, validate=_needs_threshold)
def latency(output: str, value: Any, assertion: Assertion, facts: ResponseFacts) -> Verdict:
    figure = None if facts.latency_ms is None else round(facts.latency_ms, 1)
    return _at_most(figure, assertion.threshold, "latency", " ms", assertion)


@checker("cost", defaults_to_expected=False, facts=True, validate=_needs_threshold)
def cost(output: str, value: Any, assertion: Assertion, facts: ResponseFacts) -> Verdict:
    return _at_most(facts.cost, assertion.threshold, "cost", " $", assertion)


def _needs_reason(assertion: Assertion) -> None:
    if not isinstance(assertion.value, str) or not assertion.value.strip():
        raise ValueError(f"assertion {assertion.type!r}: needs the expected finish reason in `value` "
                         "(stop, length, content_filter, tool_calls)")


@checker("finish-reason", defaults_to_expected=False, facts=True, validate=_needs_reason)
def finish_reason(output: str, value: Any, assertion: Assertion, facts: ResponseFacts) -> Verdict:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("finish-reason needs the expected reason in `value`")
    if facts.finish_reason is None:
        return Verdict(False, 0.0, "the provider gave no finish reason")
    ok = facts.finish_reason.strip().lower() == value.strip().lower()
    return Verdict(ok, 1.0 if ok else 0.0, f"finish reason {facts.finish_reason!r}"
                   + ("" if ok else f", expected {value.strip()!r}"))
