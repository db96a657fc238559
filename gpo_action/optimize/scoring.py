"""Scoring prompts on cases through `evaluate_jobs`, inside the budget.

`Scorer.evaluate(templates, cases)` scores several templates in one client batch (so their calls
run concurrently), after asking the ledger whether their uncached calls fit; templates that do
not fit are left unscored and the stop reason is returned. Every call goes through a
`CallLimit`, so retries and judge calls cannot cross a cap either; a template whose evaluation
was cut short by the limit is left unscored too. `Scorer.race(...)` scores on growing dev slices
and drops candidates that a paired test finds clearly worse than the leader (`clearly_worse`).

A prompt's score is the mean case score over the cases evaluated, with provider errors counted
as 0 (a prompt must not look better because the provider failed on its hard cases).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Sequence

from gpo_action import assertions as A
from gpo_action.evaluate import EvalJob, build_requests, evaluate_jobs
from gpo_action.llm.client import BUDGET_EXHAUSTED, CallLimit
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.llm.types import ModelConfig
from gpo_action.optimize.ledger import Ledger, upfront_tokens
from gpo_action.optimize.stoppers import Dispatch
from gpo_action.results import SuiteResult
from gpo_action.suites import Case, Suite
from gpo_action.templates import PromptTemplate


@dataclass(frozen=True)
class Evaluation:
    result: SuiteResult          # per-case results on the cases evaluated
    score: float                 # mean case score, errors counting 0
    cases: int
    errors: int


def mean_score(result: SuiteResult) -> float:
    if not result.cases:
        return 0.0
    return sum(c.score or 0.0 for c in result.cases) / len(result.cases)


def _cut_short(result: SuiteResult) -> bool:
    return any(s.error_type == BUDGET_EXHAUSTED or (s.error or "").startswith("judge failed: call budget exhausted")
               for c in result.cases for s in c.samples)


def _joined(first: Evaluation, more: Evaluation | None) -> Evaluation:
    """`first` extended by the cases of `more` (None: not scored further)."""
    if more is None:
        return first
    result = replace(first.result, cases=first.result.cases + more.result.cases)
    return Evaluation(result, mean_score(result), len(result.cases), result.errors)


def clearly_worse(candidate: SuiteResult, leader: SuiteResult, z: float) -> bool:
    """A one-sided paired test on the cases both were scored on: with d = leader - candidate per case
    (errors count 0), the candidate is clearly worse when mean(d) - z * sd(d) / sqrt(n) > 0."""
    theirs = {c.case_id: c.score or 0.0 for c in leader.cases}
    d = [theirs[c.case_id] - (c.score or 0.0) for c in candidate.cases if c.case_id in theirs]
    if len(d) < 2:
        return False
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return mean - z * sd / math.sqrt(len(d)) > 0


class _Limited:
    """The client as `evaluate_jobs` sees it (a `Completer` and an `Embedder`), with every batch
    under one CallLimit."""

    def __init__(self, client: BudgetedCompleter, limit: CallLimit | None):
        self._client, self._limit = client, limit

    def complete(self, requests, on_result=None):
        return self._client.complete(requests, on_result, limit=self._limit)

    def embed(self, model, texts):
        return self._client.embed(model, texts, limit=self._limit)


class Scorer:
    def __init__(self, client: BudgetedCompleter, ledger: Ledger, suite: Suite, model: ModelConfig, judge: ModelConfig | None = None,
                 embedding: ModelConfig | None = None):
        self.client, self.ledger, self.suite, self.model, self.judge = client, ledger, suite, model, judge
        self.embedding = embedding  # for `similar` and `answer-relevance`

    def calls_per_case(self, cases: Sequence[Case]) -> int:
        """Most calls one case can take: its samples, each with a judge call per llm-rubric assertion."""
        judged = max((sum(1 for a in c.asserts if A.needs_llm(a)) for c in cases), default=0)
        return self.suite.repeats * (1 + judged)

    def reserve_for(self, cases: Sequence[Case], template: PromptTemplate) -> Dispatch:
        """A projection of scoring a new prompt on `cases` (kept free for the holdout check)."""
        if not cases:
            return Dispatch("task", 0)
        requests = build_requests(EvalJob(self.suite, template, self.model, tuple(cases[:1])))
        return self.ledger.unit("task", upfront_tokens(requests)).times(len(cases) * self.calls_per_case(cases))

    def reserve_uncached(self, cases: Sequence[Case], template: PromptTemplate) -> Dispatch:
        """A projection of scoring `template` on `cases`, counting only the calls the cache cannot answer."""
        if not cases:
            return Dispatch("task", 0)
        requests = build_requests(EvalJob(self.suite, template, self.model, tuple(cases)))
        judged = max(1, self.calls_per_case(cases) // max(1, self.suite.repeats))
        return self.ledger.unit("task", upfront_tokens(requests)).times(self.client.uncached_count(requests) * judged)

    def evaluate(self, templates: Sequence[PromptTemplate], cases: Sequence[Case],
                 reserve: Sequence[Dispatch] = ()) -> tuple[list[Evaluation | None], str | None]:
        """Score each template on `cases`; (None for those left unscored, the stop reason or None)."""
        if not templates:
            return [], None
        cases = tuple(cases)
        jobs = [EvalJob(self.suite, t, self.model, cases) for t in templates]
        requests = [build_requests(job) for job in jobs]
        judged = max(1, self.calls_per_case(cases) // max(1, self.suite.repeats))
        needed = [self.client.uncached_count(r) * judged for r in requests]
        upfront = max(upfront_tokens(r) for r in requests)
        if sum(needed) > judged and self.ledger.needs_calibration("task"):  # one call first, to learn its size
            first = next(i for i, n in enumerate(needed) if n)
            _, reason = self.evaluate([templates[first]], cases[:1], reserve)
            if reason is not None:
                return [None] * len(templates), reason
            needed[first] = self.client.uncached_count(requests[first]) * judged
        count, limit, reason = len(jobs), None, None
        while count:  # as many templates as fit, in order; the first refusal is the stop reason
            limit, refused = self.ledger.admit("task", sum(needed[:count]), upfront, reserve)
            if refused is None:
                break
            reason = reason or refused
            count -= 1
        if not count:
            return [None] * len(templates), reason
        with self.ledger.charge("task"):
            limited = _Limited(self.client, limit)
            results = evaluate_jobs(jobs[:count], limited, judge=self.judge, embedding=self.embedding, embedder=limited)
        out: list[Evaluation | None] = []
        for result in results:
            for case in result.cases:
                for sample in case.samples:
                    if not sample.cached and sample.error is None:
                        self.ledger.observe("task", sample.prompt_tokens + sample.completion_tokens, sample.cost)
            if _cut_short(result):
                out.append(None)
                reason = reason or self.ledger.stop_reason() or "max_calls"
            else:
                out.append(Evaluation(result, mean_score(result), len(result.cases), result.errors))
        return out + [None] * (len(templates) - count), reason

    def race(self, templates: Sequence[PromptTemplate], cases: Sequence[Case], slices: Sequence[float], z: float,
             reserve: Sequence[Dispatch] = ()) -> tuple[list[Evaluation | None], list[bool], str | None]:
        """Score on growing slices of `cases` (a fixed shuffle); after each, drop the templates that
        are `clearly_worse` than the leader. Returns (evaluations, complete flags: False for those
        raced out, stop reason)."""
        if not templates:  # every candidate of the step was rejected: nothing to race
            return [], [], None
        order = sorted(cases, key=lambda c: hashlib.sha256(f"race:{c.id}".encode("utf-8")).digest())
        evals: list[Evaluation | None] = [None] * len(templates)
        alive = list(range(len(templates)))
        sizes = sorted({max(1, math.ceil(f * len(order))) for f in slices} | {len(order)})
        done = 0
        for n in sizes:  # each round scores only the cases the survivors have not seen yet
            scored, reason = self.evaluate([templates[i] for i in alive], order[done:n], reserve)
            for i, e in zip(alive, scored):
                evals[i] = e if evals[i] is None else _joined(evals[i], e)
            done = n
            if reason is not None:
                return evals, [e is not None and e.cases == len(order) for e in evals], reason
            if n == len(order):
                break
            leader = max(alive, key=lambda i: evals[i].score)
            alive = [i for i in alive if not clearly_worse(evals[i].result, evals[leader].result, z)]
        return evals, [e is not None and e.cases == len(order) for e in evals], None
