"""How often one call is dispatched: the allowance it draws on (`CallLimit`), the retry loop and
its backoff. Completions and embeddings both go through `retry` (from `LLMClient._retry`).

    tries = await retry(step, limit=limit, max_retries=4, wait=pause, dispatched=count)
    delay = backoff_delay(attempt, error, base=0.5, cap=30.0, rng=rng)

A dispatch first takes a unit of the limit (retries too); a retryable `ProviderError` is retried
after `wait(attempt, error)`, at most `max_retries` times; anything else ends the tries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Awaitable, Callable

from gpo_action.errors import ProviderError


class CallLimit:
    """An allowance of provider dispatches, shared by every request of the calls it is given to.

    `take()` is called before each dispatch (first attempts and retries alike); it spends one
    unit, or returns False when none is left. Workers run on the client's one event loop, so the
    check and the decrement cannot interleave.
    """

    def __init__(self, remaining: int):
        self.remaining = max(0, int(remaining))
        self.taken = 0

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        self.taken += 1
        return True

    def __repr__(self) -> str:
        return f"CallLimit(remaining={self.remaining}, taken={self.taken})"


@dataclass
class Tries:
    """How the dispatches of one retried call went (`retry`)."""

    attempts: int = 0
    error: ProviderError | None = None       # the last failure, also when a later dispatch succeeded
    exhausted: bool = False                  # the call limit refused a dispatch


async def retry(step: Callable[[], Awaitable[bool]], *, limit: CallLimit | None, max_retries: int,
                wait: Callable[[int, ProviderError], Awaitable[None]], dispatched: Callable[[], None]) -> Tries:
    """Dispatch `step()` until it says it is done (True), retrying a retryable ProviderError after
    `wait(attempt, error)`, at most `max_retries` times. Each dispatch first takes a unit of
    `limit` and is reported to `dispatched()`; a refused one ends the tries (`exhausted`)."""
    tries = Tries()
    while True:
        if limit is not None and not limit.take():
            tries.exhausted = True
            return tries
        tries.attempts += 1
        dispatched()
        try:
            if await step():
                return tries
            continue
        except ProviderError as failure:
            tries.error = failure
        if not tries.error.retryable or tries.attempts > max_retries:
            return tries
        await wait(tries.attempts, tries.error)


def backoff_delay(attempt: int, error: ProviderError, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter (half to full step), at least Retry-After, at most `cap`."""
    step = min(cap, base * 2 ** (attempt - 1))
    delay = step * (0.5 + 0.5 * rng.random())
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    return min(delay, cap)
