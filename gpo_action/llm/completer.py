"""What evaluate and optimize need of a model client: two small protocols, not `LLMClient` itself
(httpx's transport seam, style guide section 2), so neither depends on litellm or on the client's
plumbing, and a stand-in needs only these methods.

    Completer          evaluate: complete(requests, on_result) -> one response per request, in order
    Embedder           evaluate, for `similar` and `answer-relevance`: embed(model, texts) -> vectors
    BudgetedCompleter  optimize: also a CallLimit per batch, n candidates per request, the cache
                       peek, provider capabilities, embeddings and the counters the budget reads

`LLMClient` is both. `evaluate.CachedAnswers` (answers from the cache after a stopped run) and the
optimizer's `scoring._Limited` (the client with one CallLimit on every batch) are Completers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from gpo_action.llm.types import LLMRequest, LLMResponse, ModelConfig, Usage

if TYPE_CHECKING:
    from gpo_action.llm.retries import CallLimit

OnResult = Callable[[int, LLMResponse], None]


class Completer(Protocol):
    """Answers a batch: one response per request, in request order; `on_result(index, response)`
    as each is known. A failure is a response with `error` set, never an exception."""

    def complete(self, requests: Sequence[LLMRequest], on_result: OnResult | None = None) -> list[LLMResponse]: ...


class Embedder(Protocol):
    """Embeds texts (one vector per text, in order); raises ProviderError when it cannot."""

    def embed(self, model: ModelConfig, texts: Sequence[str]) -> list[list[float]]: ...


class BudgetedCompleter(Protocol):
    """A client the optimizer can hold to a budget (`LLMClient`): every batch may carry a
    `CallLimit`, `usage` counts what it spent, `concurrency` is how many calls run at once, and
    `cache` (None: none) is what a resumed run reads its earlier answers from."""

    usage: Usage
    concurrency: int
    cache: Any

    def complete(self, requests: Sequence[LLMRequest], on_result: OnResult | None = None, *,
                 limit: CallLimit | None = None) -> list[LLMResponse]: ...

    def complete_n(self, request: LLMRequest, n: int, *, limit: CallLimit | None = None) -> list[LLMResponse]: ...

    def uncached_count(self, requests: Sequence[LLMRequest]) -> int: ...

    def supports(self, model: ModelConfig, feature: str) -> bool: ...

    def embed(self, model: ModelConfig, texts: Sequence[str], *, limit: CallLimit | None = None) -> list[list[float]]: ...
