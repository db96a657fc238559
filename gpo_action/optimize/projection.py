"""`--dry-run`: what a run would cost at most, from the cache's state, without any model call.

Calls are upper bounds: every candidate is assumed new (no duplicates, no rejections, no racing)
and each optimizer step one request for its n candidates (plus one for reflection). Tokens are
estimates: prompt characters / 4, plus `max_tokens` where set (else COMPLETION_GUESS per call).
Cost prices those tokens at list prices per token (`litellm_price`, through `llm.prices`, which
reads litellm's local price map), when a model has one; otherwise it is shown as unknown. The
caps then say where the run would stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from gpo_action import assertions as A
from gpo_action.evaluate import EvalJob, build_requests
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.llm.prices import price_per_token
from gpo_action.llm.types import ModelConfig
from gpo_action.optimize import metaprompts as M
from gpo_action.optimize.refiners import get_refiner
from gpo_action.optimize.spec import BudgetLimits, OptimizerSpec
from gpo_action.optimize.views import View
from gpo_action.suites import split_cases

COMPLETION_GUESS = 100   # completion tokens assumed per task call without max_tokens
Price = Callable[[ModelConfig, int, int], float | None]


@dataclass(frozen=True)
class ProjectionRow:
    phase: str
    role: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Projection:
    rows: tuple[ProjectionRow, ...]
    caps: Mapping[str, float] = field(default_factory=dict)
    stops_at: str | None = None           # the first cap the projected run would reach
    notes: tuple[str, ...] = ()

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.rows)

    @property
    def cost(self) -> float | None:
        costs = [r.cost for r in self.rows if r.calls]
        return None if any(c is None for c in costs) else sum(costs)


def litellm_price(model: ModelConfig, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for the tokens at the model's list price (`llm.prices`, litellm's local price map); 0 for
    replay/ and local/ models; None if unknown."""
    per_token = price_per_token(model.name)
    if per_token is None:
        return None
    return prompt_tokens * per_token[0] + completion_tokens * per_token[1]


def _row(phase, role, model, calls, prompt_each, completion_each, price: Price | None) -> ProjectionRow:
    p, c = calls * prompt_each, calls * completion_each
    cost = price(model, p, c) if price is not None and calls else (0.0 if not calls else None)
    return ProjectionRow(phase, role, calls, p, c, cost)


def project(job: EvalJob, spec: OptimizerSpec, budget: BudgetLimits, client: BudgetedCompleter, *,
            optimizer_model: ModelConfig, judge: ModelConfig | None = None, price: Price | None = None) -> Projection:
    suite, template = job.suite, job.template
    dev, holdout = split_cases(suite)
    judged = 1 + max((sum(1 for a in c.asserts if A.needs_llm(a)) for c in suite.cases), default=0)
    requests = build_requests(job)
    chars = max((sum(len(str(m.get("content") or "")) for m in r.messages) for r in requests), default=0)
    max_tokens = int(dict(template.params).get("max_tokens") or job.model.params.get("max_tokens") or 0)
    task_prompt, task_completion = math.ceil(chars / 4), max_tokens or COMPLETION_GUESS
    per_case = suite.repeats * judged
    original = client.uncached_count(requests) * judged
    view, shown = View(template), [(template.source, None)] * (spec.k if spec.direction != "none" else 0)
    context = {"task": suite.description, "feedback": None, "budget_words": spec.budget_start,
               "exemplars": [M.exemplar_view(c, view.label) for c in dev[:spec.exemplars]],
               **M.view_context(view, shown, (template.source, None))}
    meta = get_refiner(spec.refiner)().build(M.load_metaprompts(spec.metaprompts), context)
    meta_prompt, meta_completion = math.ceil(len(meta) / 4), spec.candidates * (math.ceil(len(template.source) / 4) + 20)
    asks = spec.steps * (2 if spec.reflection else 1)
    rows = (
        _row("original, dev and holdout", "task", job.model, original, task_prompt, task_completion, price),
        _row(f"{asks} optimizer requests ({spec.candidates} candidates each)", "optimizer", optimizer_model, asks,
             meta_prompt, meta_completion, price),
        _row(f"candidates on dev ({spec.steps} x {spec.candidates} x {len(dev)} cases)", "task", job.model,
             spec.steps * spec.candidates * len(dev) * per_case, task_prompt, task_completion, price),
        _row("best prompt on holdout", "task", job.model, len(holdout) * per_case, task_prompt, task_completion, price),
    )
    caps = budget.caps()
    by_role = {role: sum(r.calls for r in rows if r.role == role) for role in ("task", "optimizer")}
    totals = {"max_calls": sum(by_role.values()), "max_task_calls": by_role["task"],
              "max_optimizer_calls": by_role["optimizer"], "max_tokens": sum(r.tokens for r in rows)}
    cost = None if any(r.cost is None for r in rows if r.calls) else sum(r.cost or 0.0 for r in rows)
    if cost is not None:
        totals["max_usd"] = cost
    stops_at = next((name for name, total in totals.items() if name in caps and total > caps[name]), None)
    notes = []
    if cost is None:
        notes.append("cost unknown: no price for a model; max_usd still caps the run")
    if not max_tokens:
        notes.append(f"task completions assumed {COMPLETION_GUESS} tokens each (no max_tokens set)")
    notes.append("a provider without n support takes one optimizer request per candidate")
    return Projection(rows, caps, stops_at, tuple(notes))
