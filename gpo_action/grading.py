"""What the graded checkers are given besides the output text (see `assertions.Checker`): the
response's own figures (`ResponseFacts`) and, for the judge-graded types, how the judge is asked
and its reply read (`Judge`). Plain dataclasses; `assertions` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from gpo_action.assertions import Assertion, Verdict


@dataclass(frozen=True)
class ResponseFacts:
    """What a checker registered with `facts=True` may read besides the output text: the response's
    own figures (a cached answer keeps the ones it first had), the case's vars, the tools the
    prompt file declares (`params.tools`, `params.functions`) and the embeddings of `embeds` texts."""

    prompt: str = ""  # the last user message the model was asked
    latency_ms: float | None = None
    cost: float | None = None
    finish_reason: str | None = None
    cached: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Mapping[str, Any], ...] = ()
    functions: tuple[Mapping[str, Any], ...] = ()
    embeddings: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


class JudgeReplyError(ValueError):
    """A judge reply that does not have the form its prompt asked for."""


@dataclass(frozen=True)
class Judge:
    """How a judge-graded type asks (`prompt(output, value, assertion, facts) -> messages`) and
    grades the reply (`parse(text, assertion, facts) -> Verdict`, before `not-`; a reply it cannot
    read raises `JudgeReplyError`, which the case reports as an error, not a fail). `needs_value`:
    a missing value fails the assertion without a judge call. `embeds(reply, facts)`: texts to
    embed before `parse` reads them in `facts.embeddings` (answer-relevance)."""

    prompt: Callable[[str, Any, Assertion, ResponseFacts], tuple[dict, ...]]
    parse: Callable[[str, Assertion, ResponseFacts], Verdict]
    needs_value: bool = True
    embeds: Callable[[str, ResponseFacts], list[str]] | None = None


__all__ = ["Judge", "JudgeReplyError", "ResponseFacts"]
