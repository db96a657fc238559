"""The client meets rate limits the way providers announce them: litellm over real HTTP to the
scripted server in its token-bucket mode (real clock), in-process and through the worker processes."""

from __future__ import annotations

import threading
import time

import pytest

from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig, RateLimit
from tests.support import RecordedSleep
from tests.support.openai_server import ScriptedOpenAIServer, echo_reply

CANARY = "sk-canary-ratelimit-0123456789"


def model(server: ScriptedOpenAIServer, **params) -> ModelConfig:
    return ModelConfig("openai/scripted", {"api_base": server.url + "/v1", "api_key": CANARY, **params})


def asks(m: ModelConfig, n: int, prefix: str = "q") -> list[LLMRequest]:
    return [LLMRequest(m, ({"role": "user", "content": f"{prefix}{i}"},)) for i in range(n)]


@pytest.mark.parametrize("style", ["openai", "anthropic"])
def test_a_rate_limited_server_answers_every_request_with_few_429s(style):
    # 64 slots against 20 requests a second: once one answer has told the limit, requests wait for
    # it instead of being refused (a fixed-concurrency client has 44 of its first 64 refused)
    with ScriptedOpenAIServer(latency=0.05, rps=20, header_style=style) as server:
        m = model(server, max_tokens=8)
        with LLMClient(ClientSettings(concurrency=64, processes=0, max_retries=8)) as client:
            client.complete(asks(m, 1, "first"))
            responses = client.complete(asks(m, 120))
        assert [r.text for r in responses] == [f"q{i}" for i in range(120)]
        assert server.admitted == 121
        assert server.rate_limited <= 12, server.counters()
        gate, = client.gates.all()
        assert gate.stats.limited == server.rate_limited


def test_through_the_worker_processes_one_budget_is_shared_and_the_headers_arrive():
    with ScriptedOpenAIServer(latency=0.05, rps=40) as server:
        m = model(server, max_tokens=8)
        with LLMClient(ClientSettings(concurrency=32, processes=2, max_retries=8)) as client:
            client.complete(asks(m, 1, "first"))
            responses = client.complete(asks(m, 160))
            assert len(client.worker_pids) == 2
        assert all(r.ok for r in responses) and server.admitted == 161
        assert server.rate_limited <= 16, server.counters()
        gate, = client.gates.all()
        assert "requests" in gate._buckets and gate._buckets["requests"].rate  # learned from the workers' answers
        assert CANARY not in repr(gate.__dict__)


def test_a_configured_rate_limit_paces_requests_before_any_answer():
    arrivals: list[float] = []
    lock = threading.Lock()

    def reply(body, index):
        with lock:
            arrivals.append(time.monotonic())
        return echo_reply(body, index)

    with ScriptedOpenAIServer(reply=reply) as server:  # no limit of its own: only the configuration paces
        m = model(server)
        settings = ClientSettings(concurrency=16, processes=0, rate_limits={m.name: RateLimit(rpm=600)})
        with LLMClient(settings) as client:
            started = time.monotonic()
            responses = client.complete(asks(m, 25))
        assert all(r.ok for r in responses)
    arrivals.sort()
    # 10 a second, one second's worth at once: the 25th request cannot be sent before 1.5 s after the
    # start, nor more than 15 in its first half second (16: one of slack). Counted from the start, not from the first
    # arrival, which a slow first connection can delay past the later sends (CI, 2026-12-03: 1.39 s).
    assert arrivals[-1] - started >= 1.45
    assert sum(1 for t in arrivals if t - started < 0.5) <= 16


def test_after_a_429_nothing_is_sent_until_its_retry_after_is_over():
    arrivals: list[tuple[float, str]] = []
    lock = threading.Lock()

    def reply(body, index):
        with lock:
            arrivals.append((time.monotonic(), body["messages"][-1]["content"]))
        return echo_reply(body, index)

    with ScriptedOpenAIServer(reply=reply, retry_after=0.4) as server:
        server.enqueue_faults("429")
        m = model(server)
        sleep = RecordedSleep()  # the backoff itself does not wait: only the gate's pause can
        with LLMClient(ClientSettings(concurrency=4, processes=0, retry_base=0.01), sleep=sleep) as client:
            started = time.monotonic()
            client.complete(asks(m, 1, "first"))
            client.complete(asks(m, 3, "next"))
        gate, = client.gates.all()
        assert gate.stats.limited == 1 and gate.window.size == 2  # halved once, not yet grown back
    assert sleep.delays and [text for _, text in arrivals][0] == "first0"
    assert arrivals[0][0] - started >= 0.4  # the retry went only when the 429's retry-after was over
    assert server.total == 5
