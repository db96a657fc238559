"""LLMClient over real HTTP: litellm -> the scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig
from tests.support import RecordedSleep
from tests.support.openai_server import ScriptedOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-test-SECRET-0123456789"


def scripted(server: ScriptedOpenAIServer, name: str = "openai/scripted", api_key: str = "test-key") -> ModelConfig:
    return ModelConfig(name, {"api_base": server.url + "/v1", "api_key": api_key})


def ask(model: ModelConfig, text: str, **fields) -> LLMRequest:
    return LLMRequest(model, ({"role": "user", "content": text},), **fields)


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


def fast_client(sleep: RecordedSleep, *, cache=None, base_dir=Path("."), **settings) -> LLMClient:
    """A client whose backoff does not wait: `sleep` records the delays instead."""
    settings.setdefault("retry_base", 0.01)
    return LLMClient(ClientSettings(**settings), cache=cache, base_dir=base_dir, sleep=sleep)


def test_results_in_request_order_with_rules_and_usage(openai_server):
    openai_server.add_rule(r"charged twice", "Category: billing")
    model = scripted(openai_server)
    texts = [f"question {i}" for i in range(12)] + ["I was charged twice"]
    seen: list[int] = []
    with LLMClient(ClientSettings(concurrency=5)) as client:
        responses = client.complete([ask(model, t) for t in texts], on_result=lambda i, r: seen.append(i))
    assert [r.text for r in responses] == texts[:-1] + ["Category: billing"]
    assert all(r.ok and not r.cached and r.attempts == 1 for r in responses)
    assert sorted(seen) == list(range(13))
    assert client.usage.calls == 13 and client.usage.errors == 0
    assert client.usage.prompt_tokens == sum(len(t.split()) for t in texts)
    assert responses[0].prompt_tokens == 2 and responses[0].completion_tokens == 2


def test_concurrency_is_bounded_per_model(openai_server):
    openai_server.set_latency(0.05)
    model = scripted(openai_server)
    with LLMClient(ClientSettings(concurrency=4)) as client:
        responses = client.complete([ask(model, f"q{i}") for i in range(20)])
    assert all(r.ok for r in responses)
    assert openai_server.total == 20
    assert openai_server.peak == 4


def test_rate_limit_is_retried_after_retry_after(openai_server, sleep):
    openai_server.retry_after = 0.3
    openai_server.enqueue_faults("429")
    with fast_client(sleep, retry_max=5.0) as client:
        [response] = client.complete([ask(scripted(openai_server), "hello")])
    assert response.ok and response.text == "hello" and response.attempts == 2
    assert openai_server.total == 2  # litellm and the openai SDK did not retry on their own
    assert sleep.delays and sleep.delays[0] >= 0.3
    assert client.usage.calls == 2


def test_retry_after_is_capped_by_retry_max(openai_server, sleep):
    openai_server.retry_after = 100
    openai_server.enqueue_faults("429")
    with fast_client(sleep, retry_max=2.0) as client:
        [response] = client.complete([ask(scripted(openai_server), "hello")])
    assert response.ok and sleep.delays == [2.0]


def test_server_errors_become_per_request_errors_after_all_retries(openai_server, sleep):
    openai_server.set_fault_rates(p500=1.0)
    with fast_client(sleep, max_retries=2, retry_base=0.1, retry_max=0.3) as client:
        responses = client.complete([ask(scripted(openai_server), f"q{i}") for i in range(3)])
    assert [r.error_type for r in responses] == ["ServerError"] * 3
    assert all(r.text is None and r.attempts == 3 and "after 3 attempts" in r.error for r in responses)
    assert openai_server.total == 9
    assert client.usage.errors == 3 and client.usage.calls == 9
    delays = sleep.delays
    assert len(delays) == 6 and all(0.05 <= d <= 0.3 for d in delays)  # jittered, capped


def test_hang_past_the_timeout_is_a_provider_timeout(openai_server, sleep):
    """How soon after the timeout it fires is a figure of bench/timings.py."""
    openai_server.enqueue_faults("hang")
    with fast_client(sleep, timeout=0.5, max_retries=0) as client:
        [response] = client.complete([ask(scripted(openai_server), "hello")])
    assert response.error_type == "ProviderTimeout" and response.attempts == 1 and response.text is None
    assert openai_server.total == 1  # reached the server once, not retried


def test_a_hanging_request_does_not_block_the_others(openai_server, sleep):
    openai_server.enqueue_faults("hang")
    with fast_client(sleep, timeout=1.0, max_retries=0, concurrency=4) as client:
        responses = client.complete([ask(scripted(openai_server), f"q{i}") for i in range(8)])
    assert sum(r.error_type == "ProviderTimeout" for r in responses) == 1
    assert sum(r.ok for r in responses) == 7


@pytest.mark.parametrize("fault", ["garbage", "empty"])
def test_bad_responses_are_retried(openai_server, fault, sleep):
    openai_server.enqueue_faults(fault)
    with fast_client(sleep) as client:
        [response] = client.complete([ask(scripted(openai_server), "hello")])
    assert response.ok and response.text == "hello" and response.attempts == 2


@pytest.mark.parametrize("fault", ["garbage", "empty"])
def test_bad_responses_are_reported_after_retries(openai_server, fault, sleep):
    openai_server.enqueue_faults(*[fault] * 3)
    with fast_client(sleep, max_retries=2) as client:
        [response] = client.complete([ask(scripted(openai_server), "hello")])
    assert response.error_type == "BadResponse" and response.attempts == 3
    assert openai_server.total == 3


def test_auth_errors_are_not_retried_and_never_show_the_key(openai_server, sleep):
    openai_server.enqueue_faults("401")
    with fast_client(sleep) as client:
        [response] = client.complete([ask(scripted(openai_server, api_key=SECRET), "hello")])
    assert response.error_type == "AuthError" and response.attempts == 1
    assert "Incorrect API key" in response.error and SECRET not in response.error
    assert openai_server.total == 1


def test_seeded_random_faults_all_recover(openai_server, sleep):
    openai_server.set_fault_rates(p429=0.2, p500=0.1, pgarbage=0.05, pempty=0.05, seed=3)
    with fast_client(sleep, max_retries=10, concurrency=8) as client:
        responses = client.complete([ask(scripted(openai_server), f"q{i}") for i in range(40)])
    assert [r.text for r in responses] == [f"q{i}" for i in range(40)]
    assert client.usage.calls == openai_server.total > 40
    assert sum(openai_server.outcomes[f] for f in ("429", "500", "garbage", "empty")) == openai_server.total - 40


def test_duplicate_requests_in_a_batch_are_sent_once(openai_server):
    model = scripted(openai_server)
    requests = [ask(model, "same", tag=f"case{i}") for i in range(5)] + [ask(model, "other")]
    seen: list[int] = []
    with LLMClient() as client:
        responses = client.complete(requests, on_result=lambda i, r: seen.append(i))
    assert openai_server.total == 2
    assert [r.text for r in responses] == ["same"] * 5 + ["other"]
    assert sorted(seen) == list(range(6))


def test_second_call_is_answered_from_the_cache(openai_server, tmp_path):
    model = scripted(openai_server)
    requests = [ask(model, f"q{i}") for i in range(6)]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        with LLMClient(cache=cache) as client:
            first = client.complete(requests)
        with LLMClient(cache=cache) as client:
            seen: list[int] = []
            second = client.complete(requests, on_result=lambda i, r: seen.append(i))
    assert openai_server.total == 6
    assert [r.text for r in second] == [r.text for r in first]
    assert all(r.cached for r in second) and seen == list(range(6))
    assert client.usage.cache_hits == 6 and client.usage.calls == 0
    assert second[0].prompt_tokens == first[0].prompt_tokens  # nominal usage kept


def test_answers_arrive_while_another_process_holds_the_cache_lock_and_are_written_once_it_is_free(openai_server, tmp_path):
    # The cache write is off each slot's path: with the file locked by another writer, every
    # answer still reaches on_result (concurrency 2, 12 requests: no slot waits for a write),
    # and complete() returns once the lock is released and the answers are written.
    import sqlite3
    import threading

    path = tmp_path / "cache.sqlite"
    model = scripted(openai_server)
    with ResponseCache(path, busy_timeout=60) as cache:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        answered = threading.Event()
        seen: list[int] = []

        def on_result(index: int, response) -> None:
            seen.append(index)
            if len(seen) == 12:
                answered.set()

        with LLMClient(ClientSettings(concurrency=2), cache=cache) as client:
            outcome: dict = {}
            thread = threading.Thread(target=lambda: outcome.update(
                responses=client.complete([ask(model, f"q{i}") for i in range(12)], on_result=on_result)))
            thread.start()
            try:
                assert answered.wait(60), f"only {len(seen)} answers while the cache was locked"
                assert "responses" not in outcome  # still writing
            finally:
                other.execute("COMMIT")
                other.close()
            thread.join(60)
        assert [r.text for r in outcome["responses"]] == [f"q{i}" for i in range(12)]
        assert len(cache) == 12 and openai_server.total == 12


def test_errors_are_never_cached(openai_server, tmp_path, sleep):
    model = scripted(openai_server)
    requests = [ask(model, f"q{i}") for i in range(3)]
    openai_server.enqueue_faults("ok", "500", "ok")
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        with fast_client(sleep, cache=cache, concurrency=1, max_retries=0) as client:
            first = client.complete(requests)
        assert [r.ok for r in first] == [True, False, True]
        with fast_client(sleep, cache=cache) as client:
            second = client.complete(requests)
    assert [r.text for r in second] == ["q0", "q1", "q2"]
    assert [r.cached for r in second] == [True, False, True]
    assert openai_server.total == 4
    assert openai_server.requests[-1]["messages"][-1]["content"] == "q1"


def test_secrets_never_reach_the_cache_file(openai_server, tmp_path):
    path = tmp_path / "cache.sqlite"
    model = scripted(openai_server, api_key=SECRET)
    with ResponseCache(path) as cache, LLMClient(cache=cache) as client:
        assert all(r.ok for r in client.complete([ask(model, f"q{i}") for i in range(5)]))
    files = [p for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite")]
    assert files
    for file in files:
        assert SECRET.encode() not in file.read_bytes()
    assert all(SECRET not in json.dumps(body) for body in openai_server.requests)


def test_a_fully_cached_run_does_not_import_litellm(openai_server, tmp_path):
    path = tmp_path / "cache.sqlite"
    model = scripted(openai_server)
    with ResponseCache(path) as cache, LLMClient(cache=cache) as client:
        client.complete([ask(model, "one"), ask(model, "two")])
        client.complete_n(ask(model, "three"), 2)
    code = f"""
import json, sys
from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig
model = ModelConfig("openai/scripted", json.loads({json.dumps(json.dumps(dict(model.params)))}))
ask = lambda text: LLMRequest(model, ({{"role": "user", "content": text}},))
with ResponseCache({str(path)!r}) as cache, LLMClient(cache=cache) as client:
    texts = [r.text for r in client.complete([ask("one"), ask("two")])]
    texts += [r.text for r in client.complete_n(ask("three"), 2)]
    print(json.dumps({{"texts": texts, "calls": client.usage.calls,
                      "heavy": sorted(m for m in ("litellm", "openai", "aiohttp") if m in sys.modules)}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"texts": ["one", "two", "three", "three #1"], "calls": 0, "heavy": []}
    assert openai_server.total == 3


def test_complete_n_sends_one_request_and_caches_each_sample(openai_server, tmp_path):
    model = scripted(openai_server)
    request = ask(model, "write a title")
    with ResponseCache(tmp_path / "cache.sqlite") as cache, LLMClient(cache=cache) as client:
        candidates = client.complete_n(request, 3)
        assert [c.text for c in candidates] == ["write a title", "write a title #1", "write a title #2"]
        assert openai_server.total == 1 and openai_server.requests[0]["n"] == 3
        assert sum(c.completion_tokens for c in candidates) == client.usage.completion_tokens
        again = client.complete_n(request, 3)
        single = client.complete([LLMRequest(model, request.messages, sample=2)])
    assert [c.text for c in again] == [c.text for c in candidates] and all(c.cached for c in again)
    assert single[0].cached and single[0].text == "write a title #2"
    assert openai_server.total == 1


def test_complete_n_asks_only_for_the_missing_samples(openai_server, tmp_path):
    model = scripted(openai_server)
    request = ask(model, "draft")
    with ResponseCache(tmp_path / "cache.sqlite") as cache, LLMClient(cache=cache) as client:
        client.complete([request])  # sample 0 is now cached
        candidates = client.complete_n(request, 3)
    assert [c.cached for c in candidates] == [True, False, False]
    assert openai_server.total == 2 and openai_server.requests[1]["n"] == 2


def test_unknown_price_is_noted_once_per_model(openai_server):
    notes: list[str] = []
    with LLMClient(notes=notes.append) as client:
        client.complete([ask(scripted(openai_server), f"q{i}") for i in range(3)])
        client.complete([ask(scripted(openai_server), "again")])
        priced = client.complete([ask(scripted(openai_server, name="openai/gpt-4o-mini"), "hello there")])
    assert notes == ["no price known for openai/scripted: cost counted as 0"]
    assert priced[0].cost > 0 and client.usage.cost == pytest.approx(priced[0].cost)


def test_many_requests_use_a_bounded_pool_of_tasks(tmp_path):
    lines = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(10_000)]
    (tmp_path / "big.jsonl").write_text("\n".join(lines))
    model = ModelConfig("replay/big.jsonl")
    most_tasks = 0

    def count_tasks(index, response):
        nonlocal most_tasks
        most_tasks = max(most_tasks, len(asyncio.all_tasks()))

    with LLMClient(ClientSettings(concurrency=8), base_dir=tmp_path) as client:
        responses = client.complete([ask(model, f"q{i}") for i in range(10_000)], on_result=count_tasks)
    assert responses[9_999].text == "a9999" and all(r.ok for r in responses)
    # 8 workers, each with at most one call in flight (wait_for wraps it in a task), and the dispatcher
    assert most_tasks <= 2 * 8 + 1


def test_complete_works_from_inside_a_running_event_loop(openai_server):
    model = scripted(openai_server)

    async def notebook_cell(client: LLMClient) -> list:
        return client.complete([ask(model, "from a notebook")])

    with LLMClient() as client:
        [inside] = asyncio.run(notebook_cell(client))
        [after] = client.complete([ask(model, "and after")])
    assert inside.text == "from a notebook" and after.text == "and after"


def test_the_scripted_server_serves_deterministic_embeddings(openai_server):
    def embed(texts):
        body = json.dumps({"model": "scripted-embedding", "input": texts}).encode()
        request = urllib.request.Request(openai_server.url + "/v1/embeddings", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as reply:
            return [item["embedding"] for item in json.load(reply)["data"]]

    first, second = embed(["the cat sat", "stock prices fell"]), embed(["the cat sat", "stock prices fell"])
    assert first == second and len(first[0]) == 64
    assert sum(v * v for v in first[0]) == pytest.approx(1.0)
    assert first[0] != first[1]


# ---- embeddings ------------------------------------------------------------------------------

def test_embed_batches_texts_caches_each_and_counts_usage(openai_server, sleep, tmp_path):
    from tests.support.openai_server import embed_text

    model = scripted(openai_server, "openai/scripted-embedding")
    texts = ["classify the ticket", "route the bug", "classify the ticket"]
    with fast_client(sleep, cache=ResponseCache(tmp_path / "c.sqlite")) as client:
        vectors = client.embed(model, texts)
        assert vectors == [pytest.approx(embed_text(t)) for t in texts]
        assert openai_server.total == 1 and openai_server.requests[0]["input"] == texts[:2]  # one call, distinct texts
        assert client.usage.calls == 1 and client.usage.prompt_tokens == 6
        assert client.embed(model, ["route the bug", "new words here"])[0] == pytest.approx(embed_text("route the bug"))
        assert openai_server.total == 2 and openai_server.requests[1]["input"] == ["new words here"]
        assert client.usage.cache_hits == 1
    with fast_client(sleep, cache=ResponseCache(tmp_path / "c.sqlite")) as client:  # a new process: cache only
        assert len(client.embed(model, texts)) == 3 and openai_server.total == 2 and client.usage.calls == 0


def test_embed_chunks_large_batches(openai_server, sleep):
    from gpo_action.llm.embeddings import EMBED_BATCH

    texts = [f"text number {i}" for i in range(EMBED_BATCH + 5)]
    with fast_client(sleep) as client:
        assert len(client.embed(scripted(openai_server), texts)) == len(texts)
    assert sorted(len(r["input"]) for r in openai_server.requests) == [5, EMBED_BATCH]


def test_embed_retries_then_raises_a_provider_error(openai_server, sleep, tmp_path):
    from gpo_action.errors import ProviderError, ServerError

    (tmp_path / "recorded.jsonl").write_text("", encoding="utf-8")
    openai_server.enqueue_faults("500")
    with fast_client(sleep, max_retries=2, base_dir=tmp_path) as client:
        assert len(client.embed(scripted(openai_server), ["a b"])) == 1 and client.usage.calls == 2
        openai_server.enqueue_faults("500", "500", "500")
        with pytest.raises(ServerError, match="embedding failed.*after 3 attempts"):
            client.embed(scripted(openai_server), ["c d"])
        assert client.usage.calls == 5 and client.usage.errors == 1
        with pytest.raises(ProviderError, match="embeddings not supported by 'replay/'"):
            client.embed(ModelConfig("replay/recorded.jsonl"), ["x"])
