"""The optimizer model's side of a run: one admitted, charged request for n replies.

Every optimizer call of the engine (a step's candidates, a reflection) goes through `OptimizerAsk`,
so each is admitted by the ledger first (keeping the reserve), charged to the optimizer role, and
its fresh replies' tokens and cost observed, the same way.
"""

from __future__ import annotations

from gpo_action.llm.client import BUDGET_EXHAUSTED
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.llm.types import LLMRequest, LLMResponse, ModelConfig
from gpo_action.optimize.candidates import ReplyForm
from gpo_action.optimize.ledger import Ledger, upfront_tokens
from gpo_action.optimize.stoppers import Dispatch


class OptimizerAsk:
    def __init__(self, client: BudgetedCompleter, ledger: Ledger, model: ModelConfig, temperature: float,
                 suite: str) -> None:
        self.client, self.ledger, self.model, self.temperature, self.suite = client, ledger, model, temperature, suite

    def __call__(self, text: str, sample: int, n: int, reserve: list[Dispatch], what: str,
                 form: ReplyForm = ReplyForm()) -> tuple[list[LLMResponse], str | None]:
        """n optimizer replies to `text` (one request where the provider supports n), asked for in
        `form` (pre-filled, stop strings); (replies, stop reason)."""
        messages, params = ({"role": "user", "content": text},), {"temperature": self.temperature}
        if form.prefill:
            messages += ({"role": "assistant", "content": form.prefill},)
        if form.stop:
            params["stop"] = list(form.stop)
        request = LLMRequest(self.model, messages, params, sample, f"optimize/{self.suite}/{what}")
        limit, reason = self.ledger.admit("optimizer", 1, upfront_tokens([request], n), reserve)
        if reason is not None:
            return [], reason
        with self.ledger.charge("optimizer"):
            replies = self.client.complete_n(request, n, limit=limit)
        fresh = [r for r in replies if r.ok and not r.cached]
        if fresh:
            self.ledger.observe("optimizer", sum(r.prompt_tokens + r.completion_tokens for r in fresh),
                                sum(r.cost for r in fresh))
        if any(r.ok for r in replies):
            return replies, None
        if any(r.error_type == BUDGET_EXHAUSTED for r in replies):
            return [], self.ledger.stop_reason() or "max_optimizer_calls"
        return [], f"optimizer-error: {replies[0].error}" if replies else "optimizer-error"
