"""`gpo-action eval --dry-run`: load and validate every suite, render every request, and count the
calls an eval would make per model (cache hits and misses, from a peek at the cache), calling no
model. Judge calls depend on the outputs, so they are counted as "at most"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from gpo_action.evaluate import build_requests


@dataclass(frozen=True)
class SuitePlan:
    name: str
    path: str
    cases: int
    model: str
    calls: int          # distinct task requests (cases x repeats that render)
    cached: int         # of those, answered by the cache
    judge_calls: int    # at most: one per judged assertion and sample


@dataclass(frozen=True)
class EvalPlan:
    suites: tuple[SuitePlan, ...]
    unavailable: dict[str, str]     # model -> why it cannot run here (only models with misses)


def plan_eval(ws, suites: Sequence) -> EvalPlan:
    """What `ws.evaluate(suites)` would do, without calling a model."""
    from gpo_action import assertions as A
    from gpo_action.llm.availability import missing_key_envs, model_status
    from gpo_action.llm.cache import request_key

    plans, unavailable = [], {}
    env, missing = ws.config.environ, missing_key_envs(ws.config)
    for job in ws.jobs(suites):
        requests = build_requests(job)
        distinct = len({request_key(r) for r in requests})
        misses = ws.client.uncached_count(requests)
        judged = sum(1 for case in job.selected for a in case.asserts if A.needs_llm(a)) * job.suite.repeats
        plans.append(SuitePlan(job.suite.name, job.suite.path, len(job.selected), job.model.name, distinct,
                               distinct - misses, judged))
        status = model_status(job.model, env, missing)
        if misses and not status.available:
            unavailable[job.model.name] = status.reason
    return EvalPlan(tuple(plans), unavailable)
