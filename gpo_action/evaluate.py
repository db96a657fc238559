"""Template x suite -> results: render every case, ask the model, score the outputs.

Sync functions over dataclasses; the only I/O goes through the LLM client, in batches (task
outputs, then judge calls for the judge-graded types, then one embedding call for the texts
`similar` and `answer-relevance` compare), so concurrency spans every suite of a run. Each output
is graded with its `ResponseFacts` (latency, cost, finish reason, the prompt file's tools).

A case whose render goes past a sandbox bound (`TemplateLimitError`: size, loops, CPU time) is that
case's error (`error_type` RENDER_LIMIT) and the other cases are evaluated; any other render failure
(an undefined variable, a refused attribute) stops the run before any call, naming every such case.

When a run is stopped (Ctrl-C, SIGTERM), what it finished is already in the response cache:
`evaluate_from_cache(jobs, cache)` scores exactly that, without calling any model, and marks every
other case as an error of type NOT_EVALUATED; `missing_cases(results)` lists them per suite.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from gpo_action import assertions as A
from gpo_action.errors import ProviderError, TemplateError, TemplateLimitError
from gpo_action.llm.completer import Completer, Embedder
from gpo_action.llm.types import LLMRequest, LLMResponse, ModelConfig
from gpo_action.results import CaseResult, Check, SampleResult, SuiteResult
from gpo_action.rubric import parse_rubric, rubric_messages
from gpo_action.suites import Case, Suite
from gpo_action.templates import PromptTemplate, render_text

ProgressFn = Callable[[int, int], None]

# How many render failures one error message lists before it says "and N more".
MAX_LISTED_ERRORS = 10
# `error_type` of a case that a stopped run did not get to (see `evaluate_from_cache`).
NOT_EVALUATED = "NotEvaluated"
# `error_type` of a case whose render went past a bound of the sandbox.
RENDER_LIMIT = "RenderLimit"
# `error_type` of a sample whose judge reply could not be read, or whose embeddings could not be had.
JUDGE_ERROR = "JudgeError"
EMBEDDING_ERROR = "EmbeddingError"


@dataclass(frozen=True)
class EvalJob:
    """One template evaluated on (some of) a suite's cases with one model."""

    suite: Suite
    template: PromptTemplate
    model: ModelConfig
    cases: tuple[Case, ...] | None = None  # None = every case of the suite

    @property
    def selected(self) -> tuple[Case, ...]:
        return self.suite.cases if self.cases is None else self.cases


def build_requests(job: EvalJob) -> list[LLMRequest]:
    """The requests of every case that renders (a case past a render limit has none); any other
    render failure stops the run before any call, naming it."""
    return [slot for slot in _render_slots(job) if isinstance(slot, LLMRequest)]


def _render_slots(job: EvalJob) -> list[LLMRequest | LLMResponse]:
    """One slot per case and sample: its request, or, for a case past a render limit, its error."""
    slots: list[LLMRequest | LLMResponse] = []
    problems: list[str] = []
    params = dict(job.template.params)
    for case in job.selected:
        try:
            messages = job.template.render(case.vars)
        except TemplateLimitError as exc:
            where = f"{job.suite.prompt}:{exc.line}" if exc.line else job.suite.prompt  # as the suite names it
            message = f"case {case.id} ({case.source or job.suite.path}): {where}: {exc.message}"
            error = LLMResponse(text=None, error=message, error_type=RENDER_LIMIT)
            slots.extend([error] * job.suite.repeats)
            continue
        except TemplateError as exc:
            problems.append(f"case {case.id} ({case.source or job.suite.path}): {exc.message}")
            continue
        for sample in range(job.suite.repeats):
            slots.append(LLMRequest(job.model, tuple(messages), params, sample, f"{job.suite.name}/{case.id}"))
    if problems:
        raise TemplateError(f"cannot render suite {job.suite.name!r}: {_listed(problems)}", path=job.template.path)
    return slots


def _listed(problems: Sequence[str]) -> str:
    more = len(problems) - MAX_LISTED_ERRORS
    return "; ".join(problems[:MAX_LISTED_ERRORS]) + (f"; and {more} more" if more > 0 else "")


def evaluate_jobs(
    jobs: Sequence[EvalJob],
    client: Completer,
    *,
    judge: ModelConfig | None = None,
    on_progress: ProgressFn | None = None,
    embedding: ModelConfig | None = None,
    embedder: Embedder | None = None,
) -> list[SuiteResult]:
    """Evaluate every job in one batch of task calls (one of judge calls, one of embeddings by
    `embedding` through `embedder`); results in job order."""
    _announce(jobs, client)
    per_job = [_render_slots(job) for job in jobs]
    flat = [s for slots in per_job for s in slots if isinstance(s, LLMRequest)]
    owner = [j for j, slots in enumerate(per_job) for s in slots if isinstance(s, LLMRequest)]
    started = time.monotonic()
    finished_at = [0.0] * len(jobs)
    done = 0

    def on_result(index: int, _response: LLMResponse) -> None:
        nonlocal done
        done += 1
        finished_at[owner[index]] = time.monotonic() - started
        if on_progress is not None:
            on_progress(done, len(flat))

    answers = iter(client.complete(flat, on_result=on_result))
    responses = [next(answers) if isinstance(s, LLMRequest) else s for slots in per_job for s in slots]
    facts: list[A.ResponseFacts | None] = []
    for job, slots in zip(jobs, per_job):
        cases = _cases_by_request(job)
        for i, slot in enumerate(slots):
            facts.append(response_facts(job, slot, responses[len(facts)], cases[i]))
    judged = _judge(jobs, per_job, responses, client, judge, facts)
    embedded, failed = _embed(jobs, per_job, responses, judged, facts, embedding, embedder)
    facts = [replace(f, embeddings=embedded) if f is not None else None for f in facts]

    results, offset = [], 0
    for j, job in enumerate(jobs):
        reqs = per_job[j]
        mine = responses[offset : offset + len(reqs)]
        results.append(_suite_result(job, mine, judged, offset, finished_at[j], facts, failed))
        offset += len(reqs)
    return results


def _announce(jobs: Sequence[EvalJob], client: Completer) -> None:
    """Tell a client that can use it (`LLMClient.expect`) how many requests per model come, before
    rendering: a cold cache then starts its worker processes (litellm's import) meanwhile."""
    expect = getattr(client, "expect", None)
    if expect is None:
        return
    counts: dict[str, tuple[ModelConfig, int]] = {}
    for job in jobs:
        model, count = counts.get(job.model.name, (job.model, 0))
        counts[job.model.name] = (model, count + len(job.selected) * job.suite.repeats)
    for model, count in counts.values():
        expect(model, count)


def response_facts(job: EvalJob, slot: LLMRequest | LLMResponse, response: LLMResponse,
                   case: Case) -> A.ResponseFacts | None:
    """What checkers may read of a response besides its text (see `assertions.ResponseFacts`)."""
    if not isinstance(slot, LLMRequest):
        return None
    prompt = next((str(m.get("content") or "") for m in reversed(slot.messages) if m.get("role") == "user"), "")
    params = job.template.params
    return A.ResponseFacts(
        prompt=prompt,
        latency_ms=response.seconds * 1000 if response.seconds > 0 else None,  # 0: never measured
        cost=response.cost if response.priced else None,  # unpriced: no figure to check
        finish_reason=response.finish_reason,
        cached=response.cached,
        vars=dict(case.vars),
        tools=tuple(params.get("tools") or ()) if isinstance(params.get("tools"), (list, tuple)) else (),
        functions=tuple(params.get("functions") or ()) if isinstance(params.get("functions"), (list, tuple)) else (),
    )


def _judge(jobs, per_job, responses, client: Completer, judge, facts) -> dict[tuple[int, int], LLMResponse]:
    """Ask the judge model about every (output, judge-graded assertion) pair; keyed by (request index, assertion index)."""
    keys: list[tuple[int, int]] = []
    requests: list[LLMRequest] = []
    offset = 0
    for job, reqs in zip(jobs, per_job):
        cases = _cases_by_request(job)
        for i, response in enumerate(responses[offset : offset + len(reqs)]):
            case = cases[i]
            if response.ok:
                for a_index, assertion in enumerate(case.asserts):
                    if A.needs_llm(assertion):
                        model = judge or job.model
                        msgs = rubric_messages(assertion, response.text or "", case.vars, case.expected, facts[offset + i])
                        if not msgs:  # nothing to judge (e.g. extract found nothing): check() fails it
                            continue
                        requests.append(LLMRequest(model, tuple(msgs), {"temperature": 0}, 0, f"{job.suite.name}/{case.id}#judge"))
                        keys.append((offset + i, a_index))
        offset += len(reqs)
    if not requests:
        return {}
    return dict(zip(keys, client.complete(requests)))


def _embed(jobs, per_job, responses, judged, facts, model: ModelConfig | None,
           embedder: Embedder | None) -> tuple[dict[str, tuple[float, ...]], dict[int, str]]:
    """Embed, in one call, every text that `similar` and `answer-relevance` compare: (text ->
    vector, request index -> why its embeddings could not be had)."""
    wanted: dict[int, list[str]] = {}
    offset = 0
    for job, reqs in zip(jobs, per_job):
        cases = _cases_by_request(job)
        for i, response in enumerate(responses[offset : offset + len(reqs)]):
            if response.ok:
                texts = _texts_to_embed(cases[i], response, judged, offset + i, facts[offset + i])
                if texts:
                    wanted[offset + i] = texts
        offset += len(reqs)
    if not wanted:
        return {}, {}
    if model is None or embedder is None:
        reason = "needs embeddings: set models.embedding in gpo.yaml"
        return {}, {index: reason for index in wanted}
    unique = list(dict.fromkeys(t for texts in wanted.values() for t in texts))
    try:
        vectors = embedder.embed(model, unique)
    except ProviderError as exc:
        return {}, {index: f"embedding failed: {exc.message}" for index in wanted}
    return {text: tuple(vector) for text, vector in zip(unique, vectors)}, {}


def _texts_to_embed(case: Case, response: LLMResponse, judged, index: int, facts) -> list[str]:
    texts: list[str] = []
    for a_index, assertion in enumerate(case.asserts):
        spec = A.get_checker(A.split_type(assertion.type)[0])
        if spec.embeds is not None:
            prepared = A.prepare(assertion, spec, response.text or "", case.vars, case.expected)
            if not isinstance(prepared, A.Verdict):
                try:
                    texts.extend(spec.embeds(*prepared, assertion))
                except ValueError:
                    pass  # a bad value: the checker says so
        reply = judged.get((index, a_index))
        if spec.judge is not None and spec.judge.embeds is not None and reply is not None and reply.ok:
            try:
                texts.extend(spec.judge.embeds(reply.text or "", facts))
            except ValueError:
                pass  # an unreadable reply: the case's error when it is graded
    return texts


def _cases_by_request(job: EvalJob) -> list[Case]:
    return [case for case in job.selected for _ in range(job.suite.repeats)]


def _suite_result(job: EvalJob, responses, judged, offset: int, seconds: float, facts, failed) -> SuiteResult:
    cases = job.selected
    repeats = job.suite.repeats
    results = []
    for c_index, case in enumerate(cases):
        samples = []
        for s in range(repeats):
            index = c_index * repeats + s
            threshold = case.threshold if case.threshold is not None else job.suite.threshold
            samples.append(score_sample(case, responses[index], judged, offset + index, threshold,
                                        facts[offset + index], failed.get(offset + index)))
        results.append(CaseResult(case.id, case.vars, case.expected, tuple(samples), case.source))
    return SuiteResult(
        name=job.suite.name,
        path=job.suite.path,
        prompt=job.template.path,
        model=job.model.name,
        cases=tuple(results),
        seconds=seconds,
        min_score=job.suite.min_score,
        notes=suite_notes(results),
    )


def suite_notes(cases: Sequence[CaseResult]) -> tuple[str, ...]:
    """What a suite's result says of its cases as a whole: those that went past a render limit."""
    limited = [c.error or "" for c in cases if c.error_type == RENDER_LIMIT]
    if not limited:
        return ()
    count = "1 case" if len(limited) == 1 else f"{len(limited)} cases"
    return (f"{count} went past a render limit (recorded as errors): {_listed(limited)}",)


def score_sample(case: Case, response: LLMResponse, judged, request_index: int, threshold: float | None,
                 facts: A.ResponseFacts | None = None, embedding_error: str | None = None) -> SampleResult:
    """Score one output against the case's assertions (pure, given the judge's replies and the
    embeddings in `facts`)."""
    usage = dict(
        prompt_tokens=response.prompt_tokens,
        completion_tokens=response.completion_tokens,
        cost=response.cost,
        cached=response.cached,
    )
    if not response.ok:
        return SampleResult(None, error=response.error, error_type=response.error_type, **usage)
    output = response.text or ""
    if embedding_error is not None:
        return SampleResult(output, error=embedding_error, error_type=EMBEDDING_ERROR, **usage)
    verdicts = []
    for a_index, assertion in enumerate(case.asserts):
        if A.needs_llm(assertion):
            reply = judged.get((request_index, a_index))
            if reply is None:
                verdicts.append(A.check(assertion, output, case.vars, case.expected))
                continue
            if not reply.ok:
                return SampleResult(output, error=f"judge failed: {reply.error}", error_type=JUDGE_ERROR, **usage)
            usage["prompt_tokens"] += reply.prompt_tokens
            usage["completion_tokens"] += reply.completion_tokens
            usage["cost"] += reply.cost
            try:
                verdicts.append(parse_rubric(reply.text or "", assertion, facts))
            except A.JudgeReplyError as exc:
                return SampleResult(output, error=f"judge failed: {exc}", error_type=JUDGE_ERROR, **usage)
        else:
            verdicts.append(A.check(assertion, output, case.vars, case.expected, facts))
    score, passed = A.score_case(case.asserts, verdicts, threshold)
    checks = tuple(
        Check(a.type, v.passed, v.score, v.reason, a.weight, metric_name(a.metric, case.vars))
        for a, v in zip(case.asserts, verdicts)
    )
    return SampleResult(output, score, passed, checks, **usage)


def metric_name(metric: str | None, vars) -> str | None:
    """An assertion's metric rendered with the case's vars (as promptfoo does); as written if it
    does not render."""
    if not metric or "{" not in metric:
        return metric
    try:
        return render_text(metric, dict(vars), "<metric>") or metric
    except TemplateError:
        return metric


class CachedAnswers:
    """Answers from the response cache only, in the client's `complete` shape: what a stopped run
    already obtained. A request the cache does not hold gets a NOT_EVALUATED error response."""

    def __init__(self, cache):
        self.cache = cache

    def complete(self, requests: Sequence[LLMRequest], on_result=None) -> list[LLMResponse]:
        from gpo_action.llm.cache import request_key

        keys = [request_key(r) for r in requests]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        missing = LLMResponse(text=None, error="not evaluated: the run stopped before this request was answered",
                              error_type=NOT_EVALUATED)
        responses = [found.get(key, missing) for key in keys]
        for index, response in enumerate(responses):
            if on_result is not None:
                on_result(index, response)
        return responses

    def embed(self, model: ModelConfig, texts: Sequence[str]) -> list[list[float]]:
        """The cached embeddings of `texts` (an `Embedder`); ProviderError when one is missing."""
        from gpo_action.llm.cache import embedding_key

        keys = [embedding_key(model, text) for text in texts]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        if any(key not in found for key in keys):
            raise ProviderError("not evaluated: the run stopped before these embeddings were made")
        return [[float(x) for x in json.loads(found[key].text or "[]")] for key in keys]


def evaluate_from_cache(jobs: Sequence[EvalJob], cache, *, judge: ModelConfig | None = None,
                        embedding: ModelConfig | None = None) -> list[SuiteResult]:
    """The results a stopped run has: cached answers scored, every other case NOT_EVALUATED. No model call."""
    answers = CachedAnswers(cache)
    return evaluate_jobs(jobs, answers, judge=judge, embedding=embedding, embedder=answers)


def render_limited(results: Sequence[SuiteResult]) -> int:
    """How many cases of `results` went past a render limit."""
    return sum(1 for r in results for c in r.cases if c.error_type == RENDER_LIMIT)


def missing_cases(results: Sequence[SuiteResult]) -> dict[str, list[str]]:
    """Per suite, the ids of the cases a stopped run did not evaluate (suites with none are left out)."""
    missing = {r.name: [c.case_id for c in r.cases if c.error_type == NOT_EVALUATED] for r in results}
    return {name: ids for name, ids in missing.items() if ids}
