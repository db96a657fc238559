"""The scripted server's rate limits (tests/support/buckets.py), over plain HTTP.

The server's buckets run on an injected clock (`ManualClock`), so refills are driven by the test,
never by waiting. One test runs the server as a process (its CLI flags and exit counters), one
sends litellm through gpo-action's client against a limited server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.providers import import_litellm
from gpo_action.llm.types import LLMRequest, ModelConfig
from tests.support.buckets import openai_duration, rfc3339
from tests.support.openai_server import ScriptedOpenAIServer

SERVER = Path(__file__).resolve().parent / "support" / "openai_server.py"


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def chat(server: ScriptedOpenAIServer, text: str = "hello there", **fields) -> httpx.Response:
    body = {"model": "scripted", "messages": [{"role": "user", "content": text}], **fields}
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=10)


def limit_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if "ratelimit" in k or k.startswith("retry-after")}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_requests_past_the_bucket_get_429_with_openai_headers_and_are_counted(clock):
    with ScriptedOpenAIServer(rps=5, clock=clock) as server:
        answers = [chat(server) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
        assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"5"}
        # each admitted request leaves the bucket 1/5 s further from full
        assert [a.headers["x-ratelimit-reset-requests"] for a in answers[:5]] == ["200ms", "400ms", "600ms", "800ms", "1s"]
        refused = answers[5]
        assert refused.json()["error"]["type"] == "requests"
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.headers["retry-after-ms"] == "200" and refused.headers["retry-after"] == "1"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert "x-ratelimit-limit-tokens" not in refused.headers  # no token limit set, none described
        assert answers[0].json()["choices"][0]["message"]["content"] == "hello there"
        assert server.total == 6 and server.admitted == 5 and server.rate_limited == 1
        assert server.limited_by == {"requests": 1}
        assert server.status_counts[429] == 1 and server.outcomes["rate-limited"] == 1
        assert server.counters()["rate_limited"] == 1 and server.counters()["admitted"] == 5


def test_the_bucket_refills_continuously_up_to_its_capacity(clock):
    with ScriptedOpenAIServer(rps=5, clock=clock) as server:
        assert [chat(server).status_code for _ in range(6)] == [200] * 5 + [429]
        clock.advance(0.1)  # half a request's worth
        assert chat(server).status_code == 429
        clock.advance(0.1)
        assert chat(server).status_code == 200
        assert chat(server).status_code == 429
        clock.advance(60)  # a minute idle fills the bucket to 5, not more
        answers = [chat(server) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].headers["x-ratelimit-remaining-requests"] == "4"
        assert server.admitted == 6 + 5 and server.rate_limited == 3 + 1


def test_tokens_are_prompt_tokens_plus_max_tokens_charged_at_admission(clock):
    # 600 tokens per minute: a bucket of 10 tokens, refilled at 10 per second
    with ScriptedOpenAIServer(tpm=600, clock=clock) as server:
        first = chat(server, "two words", max_tokens=3)  # 2 + 3
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-tokens"] == "10"
        assert first.headers["x-ratelimit-remaining-tokens"] == "5"
        assert first.headers["x-ratelimit-reset-tokens"] == "500ms"
        assert first.json()["usage"]["prompt_tokens"] == 2  # the count the bucket charged
        assert chat(server, "three words here", max_completion_tokens=2).headers["x-ratelimit-remaining-tokens"] == "0"
        refused = chat(server, "one")  # no max_tokens: 1 token, still too many
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
        assert refused.headers["retry-after-ms"] == "100"
        clock.advance(0.1)
        assert chat(server, "one").status_code == 200
        assert server.limited_by == {"tokens": 1} and server.admitted == 3


def test_a_request_larger_than_the_bucket_is_refused_without_a_retry_after(clock):
    with ScriptedOpenAIServer(tpm=600, clock=clock) as server:
        refused = chat(server, "hi", max_tokens=50)
        assert refused.status_code == 429
        assert "Request too large" in refused.json()["error"]["message"]
        assert "retry-after" not in refused.headers and "retry-after-ms" not in refused.headers
        assert refused.headers["x-ratelimit-remaining-tokens"] == "10"  # a refusal costs nothing


def test_both_limits_at_once_refuse_by_the_one_that_is_short(clock):
    with ScriptedOpenAIServer(rps=10, tpm=600, clock=clock) as server:
        assert chat(server, "a b c d", max_tokens=4).status_code == 200  # 8 of 10 tokens, 1 of 10 requests
        refused = chat(server, "a b", max_tokens=1)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
        assert refused.headers["x-ratelimit-remaining-requests"] == "9"
        assert server.limited_by == {"tokens": 1}


def test_anthropic_style_sends_anthropic_headers_with_rfc3339_resets(clock):
    with ScriptedOpenAIServer(rps=4, tpm=600, header_style="anthropic", clock=clock) as server:
        before = datetime.now(timezone.utc)
        ok = chat(server, "two words", max_tokens=6)  # input 2 of 10, output 6 of 10
        assert ok.status_code == 200
        headers = limit_headers(ok)
        assert not any(k.startswith("x-ratelimit") for k in headers)
        assert headers["anthropic-ratelimit-requests-limit"] == "4"
        assert headers["anthropic-ratelimit-requests-remaining"] == "3"
        assert headers["anthropic-ratelimit-input-tokens-remaining"] == "8"
        assert headers["anthropic-ratelimit-output-tokens-remaining"] == "4"
        assert headers["anthropic-ratelimit-input-tokens-limit"] == headers["anthropic-ratelimit-output-tokens-limit"] == "10"
        # tokens-*: the more restrictive of the two (output: 4 left)
        assert headers["anthropic-ratelimit-tokens-remaining"] == "4"
        assert headers["anthropic-ratelimit-tokens-reset"] == headers["anthropic-ratelimit-output-tokens-reset"]
        resets = {name: datetime.fromisoformat(headers[f"anthropic-ratelimit-{name}-reset"].replace("Z", "+00:00"))
                  for name in ("requests", "input-tokens", "output-tokens")}
        # the output bucket is 6 tokens from full (0.6 s), the input bucket 2 (0.2 s), requests 1 of 4 (0.25 s)
        assert resets["input-tokens"] < resets["requests"] < resets["output-tokens"]
        assert all(reset > before for reset in resets.values())
        refused = chat(server, "two words", max_tokens=6)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
        assert refused.headers["retry-after"] == "1" and "retry-after-ms" not in refused.headers
        assert server.rate_limited == 1


def test_reset_refills_the_buckets_and_keeps_the_limits(clock):
    with ScriptedOpenAIServer(rps=1, clock=clock) as server:
        assert [chat(server).status_code for _ in range(2)] == [200, 429]
        server.reset()
        assert server.rate_limited == 0
        assert [chat(server).status_code for _ in range(2)] == [200, 429]
        server.set_rate_limits()  # none
        assert chat(server).status_code == 200 and "x-ratelimit-limit-requests" not in chat(server).headers


def test_without_limits_answers_carry_no_limit_headers(openai_server):
    answer = chat(openai_server)
    assert answer.status_code == 200 and limit_headers(answer) == {}
    assert openai_server.admitted == 1 and openai_server.rate_limited == 0


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (0.0204, "20ms"), (1, "1s"), (1.5, "1.5s"),
                                           (59.241, "59.241s"), (360, "6m0s"), (3725.5, "1h2m5.5s")])
def test_durations_are_written_as_openai_writes_them(seconds, text):
    assert openai_duration(seconds) == text


def test_rfc3339_has_milliseconds_and_utc():
    assert rfc3339(0.25) == "1970-01-01T00:00:00.250Z"


def test_the_server_process_takes_the_flags_and_prints_its_counters():
    # a window of 1,000 s at 0.001 requests per second: a bucket of 1 request, refilled in 1,000 s
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--rps", "0.001", "--tpm", "0.6",
                             "--rate-window", "1000", "--header-style", "openai"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        answers = [httpx.post(url + "/v1/chat/completions", json={"model": "m", "max_tokens": 4, "messages": [
            {"role": "user", "content": "hi"}]}, timeout=10) for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert [a.status_code for a in answers] == [200, 429, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "1"
    assert answers[0].headers["x-ratelimit-limit-tokens"] == "10"  # 0.6 per minute x 1,000 s
    assert answers[0].headers["x-ratelimit-remaining-tokens"] == "5"  # 1 prompt token + 4
    assert answers[1].json()["error"]["type"] == "requests"
    counters = json.loads(out.split("counters ", 1)[1].splitlines()[0])
    assert counters["total"] == 3 and counters["admitted"] == 1 and counters["rate_limited"] == 2
    assert counters["limited_by"] == {"requests": 2} and counters["statuses"] == {"200": 1, "429": 2}


class AdvancingSleep:
    """The client's backoff sleep: records each delay and moves the server's clock by it."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


def test_litellm_through_gpo_action_completes_every_request_against_a_limited_server(clock):
    with ScriptedOpenAIServer(rps=3, clock=clock) as server:
        model = ModelConfig("openai/scripted", {"api_base": server.url + "/v1", "api_key": "test-key"})
        sleep = AdvancingSleep(clock)
        settings = ClientSettings(concurrency=8, max_retries=10, retry_base=0.01, retry_max=5.0)
        with LLMClient(settings, sleep=sleep) as client:
            responses = client.complete([LLMRequest(model, ({"role": "user", "content": f"q{i}"},))
                                         for i in range(8)])
        assert [r.text for r in responses] == [f"q{i}" for i in range(8)]
        assert server.admitted == 8 and server.rate_limited >= 5
        assert server.total == server.admitted + server.rate_limited == client.usage.calls
        assert len(sleep.delays) == server.rate_limited  # one backoff after each 429


@pytest.mark.parametrize("style, header", [("openai", "x-ratelimit-remaining-requests"),
                                           ("anthropic", "anthropic-ratelimit-requests-remaining")])
def test_litellm_hands_the_limit_headers_to_its_caller_on_answers_and_on_429s(clock, style, header):
    """The seam a header-reading client relies on: litellm's answer keeps the provider's headers
    (prefixed `llm_provider-`) in `_hidden_params["additional_headers"]`, and its RateLimitError
    keeps the 429's own in `.response.headers`, whatever the header style."""
    litellm = import_litellm()  # configured as the client configures it: local price map, no retries
    with ScriptedOpenAIServer(rps=1, header_style=style, clock=clock) as server:
        call = dict(model="openai/scripted", api_base=server.url + "/v1", api_key="test-key", max_retries=0,
                    messages=[{"role": "user", "content": "hi"}])
        answer = litellm.completion(**call)
        assert answer._hidden_params["additional_headers"][f"llm_provider-{header}"] == "0"
        with pytest.raises(litellm.RateLimitError) as refused:
            litellm.completion(**call)
        assert refused.value.response.headers[header] == "0"
        assert refused.value.response.headers["retry-after"] == "1"


def test_a_slow_request_rate_still_admits_one_request_per_refill(clock):
    with ScriptedOpenAIServer(rps=0.5, clock=clock) as server:  # half a request per 1 s window
        assert [chat(server).status_code for _ in range(2)] == [200, 429]
        clock.advance(2)
        assert chat(server).status_code == 200
