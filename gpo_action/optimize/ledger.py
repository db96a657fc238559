"""The budget in action: what a run has spent, what a dispatch would cost, and the call limits
handed to the client.

Spend is read from the client's counters (`client.usage`) around each dispatch and attributed to
a role (task or optimizer); seconds come from a monotonic clock and add up over resumed sessions.
Before a dispatch the engine asks `admit(role, calls, ...)`: the projection of one call is the
largest seen so far for that role (tokens, cost, seconds), or the upfront estimate of the request
when larger (prompt characters / 4 plus `max_tokens`). With a token or dollar cap and nothing seen
yet for a role, the engine first sends a single call (`needs_calibration`). The `CallLimit` that
`admit` returns caps the dispatch itself, retries included, so a cap holds even when retries or
judge calls exceed the projection.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from gpo_action.llm.client import CallLimit
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.llm.types import LLMRequest
from gpo_action.optimize.stoppers import AnyStopper, Dispatch, Spend


def upfront_tokens(requests: Sequence[LLMRequest], n: int = 1) -> int:
    """A per-request token estimate made before any call: prompt characters / 4, plus `max_tokens`
    (times `n` candidates) when the request sets it."""
    most = 0
    for request in requests:
        chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        completion = int(request.merged_params().get("max_tokens") or 0)
        most = max(most, math.ceil(chars / 4) + n * completion)
    return most


class Ledger:
    def __init__(self, client: BudgetedCompleter, stoppers: AnyStopper, *, clock: Callable[[], float] = time.monotonic,
                 spent: Spend | None = None):
        self.client = client
        self.stoppers = stoppers
        self.clock = clock
        self.spend = spent if spent is not None else Spend()
        self._base_seconds = self.spend.seconds
        self._started = clock()
        self._tokens: dict[str, int] = {}        # largest tokens of one call seen, by role
        self._cost: dict[str, float] = {}        # largest cost of one call seen, by role
        self._cost_per_token: dict[str, float] = {}
        self._wave: dict[str, float] = {}        # longest seconds of one wave of concurrent calls
        self._calibrating = any(stoppers.limit_of(name) is not None for name in ("max_tokens", "max_usd"))

    def restore(self, spend: Spend) -> None:
        """Continue from what an earlier session spent (its seconds included)."""
        self.spend = spend
        self._base_seconds = spend.seconds
        self._started = self.clock()

    # ---- reading ---------------------------------------------------------------------------
    def now(self) -> Spend:
        self.spend.seconds = self._base_seconds + (self.clock() - self._started)
        return self.spend

    def stop_reason(self) -> str | None:
        return self.stoppers.stop_reason(self.now())

    def unit(self, role: str, upfront: int = 0) -> Dispatch:
        """The projection of one more call of `role`."""
        tokens = max(upfront, self._tokens.get(role, 0))
        cost = max(self._cost.get(role, 0.0), self._cost_per_token.get(role, 0.0) * tokens)
        concurrency = max(1, int(self.client.concurrency or 1))
        return Dispatch(role, 1, tokens, cost, self._wave.get(role, 0.0) / concurrency)

    def needs_calibration(self, role: str) -> bool:
        """True when a token or dollar cap is set and no call of `role` has been seen yet."""
        return self._calibrating and role not in self._tokens

    # ---- deciding --------------------------------------------------------------------------
    def admit(self, role: str, calls: int, upfront: int = 0,
              reserve: Sequence[Dispatch] = ()) -> tuple[CallLimit | None, str | None]:
        """(the client's limit, None) when `calls` more calls of `role` fit under every cap after
        `reserve`; otherwise (None, the name of the binding stopper)."""
        reason = self.stoppers.stop_reason(self.now(), dispatch=True)
        if reason is not None:
            return None, reason
        room, binding = self.stoppers.room(self.now(), self.unit(role, upfront), reserve)
        if room is not None and room < calls:
            return None, binding
        return (CallLimit(room) if room is not None else None), None

    # ---- recording -------------------------------------------------------------------------
    @contextmanager
    def charge(self, role: str) -> Iterator[None]:
        """Attribute what the client spends inside the block to `role`."""
        usage = self.client.usage
        calls, tokens, cost = usage.calls, usage.tokens, usage.cost
        started = self.clock()
        try:
            yield
        finally:
            made = usage.calls - calls
            if role == "task":
                self.spend.task_calls += made
            else:
                self.spend.optimizer_calls += made
            self.spend.tokens += usage.tokens - tokens
            self.spend.cost += usage.cost - cost
            if made:
                concurrency = max(1, int(self.client.concurrency or 1))
                wave = (self.clock() - started) / math.ceil(made / concurrency)
                self._wave[role] = max(self._wave.get(role, 0.0), wave)

    def observe(self, role: str, tokens: int, cost: float) -> None:
        """One call's usage (a fresh answer, not a cache hit): keeps the per-call maxima."""
        self._tokens[role] = max(self._tokens.get(role, 0), int(tokens))
        self._cost[role] = max(self._cost.get(role, 0.0), float(cost))
        if tokens > 0:
            self._cost_per_token[role] = max(self._cost_per_token.get(role, 0.0), float(cost) / tokens)
