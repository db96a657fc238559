"""One provider call and its retries: `CallMixin`, mixed into `LLMClient` (`client.py`).

A job (one request, the cache keys of its candidates) is obtained by `_obtain`: dispatches under
the call limit with backoff between them (`_retry`, i.e. `retries.retry`), each dispatch waiting
at the rate-limit gate of its model, endpoint and key (`_gated`, `ratelimits`) and bounded by the
client's timeout (`_call`); its tokens and cost are counted in `usage` (`_account`). Failures after
the retries become error responses, never exceptions. Embeddings (`embeddings.py`) use `_retry`,
`_gated`, `_call` and `_account` too.

The mixin reads the client's settings and state: `timeout`, `max_retries`, `retry_base`,
`retry_max`, `usage`, `gates`, `env`, `_sleep`, `_rng`, `_clock` and `_note_once`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, NamedTuple, TypeVar

from gpo_action.errors import BadResponse, ProviderError, ProviderTimeout, RateLimited
from gpo_action.llm.providers import Provider, redact
from gpo_action.llm.ratelimits import Gate
from gpo_action.llm.retries import CallLimit, Tries, backoff_delay, retry
from gpo_action.llm.types import BUDGET_EXHAUSTED, LLMRequest, LLMResponse, split_usage
from gpo_action.secrets import remember_params

T = TypeVar("T")

# Extra seconds the client waits beyond `timeout` before abandoning a provider call itself.
TIMEOUT_GRACE = 1.0


@dataclass
class _Job:
    """One provider request to obtain: `keys[i]` receives candidate i."""

    request: LLMRequest
    provider: Provider
    keys: list[str]
    limit: CallLimit | None = None


class _Answer(NamedTuple):
    """One candidate of a provider call, with its share of the call's usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    finish_reason: str | None
    priced: bool  # False: the provider knew no price, so `cost` is 0 by default, not measured


class CallMixin:
    """`_obtain` and what it is made of (see the module doc)."""

    async def _obtain(self, job: _Job) -> list[LLMResponse]:
        """Candidates for `job.keys`, retrying retryable errors; failures become error responses."""
        request, wanted = job.request, len(job.keys)
        params = request.merged_params()
        remember_params(params)  # a key given in code is scrubbed from what the answer echoes, too
        started = self._clock()
        candidates: list[_Answer] = []

        async def step() -> bool:
            candidates.extend(await self._attempt(job, params, wanted - len(candidates), len(candidates)))
            return len(candidates) >= wanted

        tries = await self._retry(job.limit, step)
        attempts, error = tries.attempts, tries.error
        seconds = self._clock() - started
        responses = [
            LLMResponse(text=a.text, prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens, cost=a.cost,
                        attempts=attempts, seconds=seconds, finish_reason=a.finish_reason, priced=a.priced)
            for a in candidates
        ]
        if len(responses) < wanted:
            error = error or ProviderError("no response was produced")
            message = redact(f"{error.message} (after {attempts} attempt{'s' * (attempts != 1)})", params)
            error_type = type(error).__name__
            if tries.exhausted:
                message = "call budget exhausted: not dispatched" if attempts == 0 else f"call budget exhausted: {message}"
                error_type = BUDGET_EXHAUSTED
            failed = LLMResponse(text=None, attempts=attempts, seconds=seconds, error=message, error_type=error_type)
            responses.extend([failed] * (wanted - len(responses)))
        return responses

    async def _attempt(self, job: _Job, params: dict[str, Any], n: int, offset: int) -> list[_Answer]:
        """One provider call for up to `n` candidates; every failure is raised as a ProviderError."""
        request = job.request
        gate = self.gates.gate(request.model, params, os.environ if self.env is None else self.env)
        estimate, tokens = gate.tokens_for(request.messages, params, n)
        raw = await self._gated(gate, tokens, lambda: job.provider.acomplete(
            request.messages, params, n, self.timeout, sample=request.sample + offset, tag=request.tag))
        gate.note_usage(estimate, raw.prompt_tokens, raw.completion_tokens / max(1, len(raw.texts)))
        cost = self._account(request.model.name, raw.prompt_tokens, raw.completion_tokens, raw.cost)
        reasons = list(getattr(raw, "finish_reasons", None) or [])
        answers = [(t, reasons[i] if i < len(reasons) else None) for i, t in enumerate(raw.texts) if isinstance(t, str)][:n]
        if not answers:
            raise BadResponse("the provider returned no completion")
        shares = split_usage(raw.prompt_tokens, raw.completion_tokens, cost, len(answers))
        return [_Answer(text, *share, reason, raw.cost is not None) for (text, reason), share in zip(answers, shares)]

    async def _retry(self, limit: CallLimit | None, step: Callable[[], Awaitable[bool]]) -> Tries:
        """`retries.retry` with this client's settings: each dispatch counts in `usage.calls`, and
        the wait between tries is `backoff_delay` (through the injectable `sleep`)."""

        def dispatched() -> None:
            self.usage.calls += 1

        async def wait(attempt: int, error: ProviderError) -> None:
            await self._sleep(backoff_delay(attempt, error, base=self.retry_base, cap=self.retry_max, rng=self._rng))

        return await retry(step, limit=limit, max_retries=self.max_retries, wait=wait, dispatched=dispatched)

    async def _gated(self, gate: Gate, tokens: float, start: Callable[[], Awaitable[T]]) -> T:
        """`_call(start)` once `gate` lets a request of `tokens` go (`ratelimits`); its answer,
        or its 429, tells the gate what the provider allows."""
        ticket = await gate.acquire(tokens)
        try:
            result = await self._call(start)
        except RateLimited as error:
            gate.release(ticket, ok=False, limited=True, headers=error.headers, retry_after=error.retry_after)
            if gate.stats.limited == 1:
                self._note_once(f"limited:{id(gate)}", f"{gate.name}: the provider answered 429 (rate limited): "
                                "fewer requests go at once, at the pace its rate-limit headers allow")
            raise
        except BaseException:
            gate.release(ticket, ok=False)
            raise
        gate.release(ticket, ok=True, headers=getattr(result, "rate_headers", None))
        return result

    async def _call(self, start: Callable[[], Awaitable[T]]) -> T:
        """One provider call (`start()` makes it) under the client's timeout; every failure is
        raised as a ProviderError: a timeout as ProviderTimeout, a provider's own bug as one too."""
        try:  # not wait_for: under 3.11 a cancel that meets the answer is lost (the worker goes on)
            async with asyncio.timeout(self.timeout + TIMEOUT_GRACE):
                return await start()
        except ProviderError:
            raise
        except TimeoutError:
            raise ProviderTimeout(f"no answer within {self.timeout:g} s") from None
        except Exception as failure:  # noqa: BLE001  (a provider bug is still one call's error)
            raise ProviderError(f"{type(failure).__name__}: {failure}") from None

    def _account(self, model_name: str, prompt_tokens: int, completion_tokens: int, cost: float | None) -> float:
        """Count one call's tokens and cost in `usage`; an unknown price (None) is noted once per
        model and counted as 0. Returns the cost counted."""
        if cost is None:
            self._note_once(f"price:{model_name}", f"no price known for {model_name}: cost counted as 0")
            cost = 0.0
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self.usage.cost += cost
        return cost
