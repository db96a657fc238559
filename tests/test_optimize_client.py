"""The client's call limit (retries included) and its cache peek, over real HTTP to the scripted server."""

from __future__ import annotations

import pytest

from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import BUDGET_EXHAUSTED, CallLimit, ClientSettings, LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig
from tests.support import RecordedSleep


def model(server) -> ModelConfig:
    return ModelConfig("openai/scripted", {"api_base": server.url + "/v1", "api_key": "k"})


def ask(m: ModelConfig, text: str) -> LLMRequest:
    return LLMRequest(m, ({"role": "user", "content": text},))


def client(cache=None, **settings) -> LLMClient:
    return LLMClient(ClientSettings(retry_base=0.01, **settings), cache=cache, sleep=RecordedSleep())


def test_a_limit_caps_dispatches_and_the_rest_end_as_budget_errors(openai_server, tmp_path):
    requests = [ask(model(openai_server), f"q{i}") for i in range(5)]
    limit = CallLimit(3)
    with ResponseCache(tmp_path / "c.sqlite") as cache, client(cache, concurrency=2) as c:
        responses = c.complete(requests, limit=limit)
        assert openai_server.total == 3 and limit.remaining == 0 and limit.taken == 3
        assert sum(r.ok for r in responses) == 3
        refused = [r for r in responses if not r.ok]
        assert [r.error_type for r in refused] == [BUDGET_EXHAUSTED] * 2
        assert all(r.attempts == 0 and "not dispatched" in r.error for r in refused)
        assert c.usage.calls == 3
        again = c.complete(requests)  # refusals were not cached: they are asked now; hits cost nothing
    assert [r.text for r in again] == [f"q{i}" for i in range(5)]
    assert openai_server.total == 5


@pytest.mark.parametrize("k", range(0, 7))
def test_retries_count_against_the_limit(openai_server, k):
    openai_server.set_fault_rates(p500=0.5, seed=k)
    limit = CallLimit(k)
    with client(max_retries=4, concurrency=3) as c:
        responses = c.complete([ask(model(openai_server), f"q{i}") for i in range(4)], limit=limit)
    assert openai_server.total <= k and c.usage.calls == openai_server.total
    assert all(r.ok or r.error_type in (BUDGET_EXHAUSTED, "ServerError") for r in responses)


def test_a_retry_refused_by_the_limit_names_the_last_error(openai_server):
    openai_server.enqueue_faults("500", "500")
    with client(max_retries=4) as c:
        [response] = c.complete([ask(model(openai_server), "hello")], limit=CallLimit(1))
    assert response.error_type == BUDGET_EXHAUSTED and response.attempts == 1
    assert "call budget exhausted" in response.error and "server" in response.error.lower()
    assert openai_server.total == 1


def test_complete_n_under_a_limit_is_one_call_and_cache_hits_are_free(openai_server, tmp_path):
    request = ask(model(openai_server), "write")
    with ResponseCache(tmp_path / "c.sqlite") as cache, client(cache) as c:
        limit = CallLimit(1)
        first = c.complete_n(request, 4, limit=limit)
        assert [r.ok for r in first] == [True] * 4 and openai_server.total == 1 and limit.remaining == 0
        again = c.complete_n(request, 4, limit=CallLimit(0))
        assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
        refused = c.complete_n(LLMRequest(request.model, request.messages, sample=100), 2, limit=CallLimit(0))
    assert [r.error_type for r in refused] == [BUDGET_EXHAUSTED] * 2
    assert openai_server.total == 1


def test_uncached_count_peeks_without_calling(openai_server, tmp_path):
    m = model(openai_server)
    requests = [ask(m, "a"), ask(m, "b"), ask(m, "a"), LLMRequest(m, ({"role": "user", "content": "a"},), sample=1)]
    with ResponseCache(tmp_path / "c.sqlite") as cache, client(cache) as c:
        assert c.uncached_count(requests) == 3  # duplicates are sent once
        c.complete([ask(m, "a")])
        assert c.uncached_count(requests) == 2
        c.complete(requests)
        assert c.uncached_count(requests) == 0
    assert openai_server.total == 3
    with client() as no_cache:
        assert no_cache.uncached_count(requests) == 3
