"""llm/ratelimits.py: what providers' headers say, the adaptive window, the buckets, the gate."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from gpo_action.llm.ratelimits import (Bucket, Gate, Gates, Quota, Window, gate_key, paced,
                                       parse_duration, parse_reset, rate_headers, read_signals)
from gpo_action.llm.types import ModelConfig, RateLimit

NOW = 1_800_000_000.0  # a wall-clock reading


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_rate_limit_headers_are_kept_with_litellms_prefix_dropped():
    kept = rate_headers({"llm_provider-x-ratelimit-remaining-requests": "7", "X-RateLimit-Reset-Tokens": "1s",
                         "llm_provider-anthropic-ratelimit-tokens-remaining": "90", "Retry-After": "2",
                         "set-cookie": "session=canary", "authorization": "Bearer sk-canary", "x-request-id": "r1"})
    assert kept == {"x-ratelimit-remaining-requests": "7", "x-ratelimit-reset-tokens": "1s",
                    "anthropic-ratelimit-tokens-remaining": "90", "retry-after": "2"}
    assert rate_headers(None) == {} and rate_headers("not headers") == {}


@pytest.mark.parametrize("text, seconds", [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5),
                                           ("0.5", 0.5), ("17", 17.0), ("2m", 120.0)])
def test_openai_reset_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "-3", "1s junk", "nan"])
def test_a_duration_that_is_not_one_is_none(text):
    assert parse_duration(text) is None


def test_resets_given_as_times_are_seconds_from_now():
    when = 1_800_000_010.0
    from datetime import datetime, timezone
    stamp = datetime.fromtimestamp(when, timezone.utc).isoformat().replace("+00:00", "Z")
    assert parse_reset(stamp, when - 10) == pytest.approx(10.0)
    assert parse_reset(stamp, when + 5) == 0.0  # already past
    assert parse_reset("Thu, 01 Jan 2037 00:00:00 GMT", 2114380800.0 - 3) == pytest.approx(3.0)


def test_openai_headers_give_both_quotas_and_retry_after_ms_wins():
    signals = read_signals({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
                            "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "150000",
                            "x-ratelimit-remaining-tokens": "149984", "x-ratelimit-reset-tokens": "6m0s",
                            "retry-after": "3", "retry-after-ms": "250"}, NOW)
    assert signals.requests == Quota(59, 60, 1.0)
    assert signals.tokens == Quota(149984, 150000, 360.0)
    assert signals.retry_after == pytest.approx(0.25)
    assert read_signals({"retry-after": "3"}, NOW).retry_after == 3.0
    assert read_signals({}, NOW) == read_signals({"x-ratelimit-remaining-requests": "many"}, NOW)


def test_anthropic_headers_give_quotas_with_reset_times_and_input_tokens_when_tokens_are_absent():
    from datetime import datetime, timezone
    reset = datetime.fromtimestamp(NOW + 2, timezone.utc).isoformat()
    signals = read_signals({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "3",
                            "anthropic-ratelimit-requests-reset": reset,
                            "anthropic-ratelimit-input-tokens-limit": "40000",
                            "anthropic-ratelimit-input-tokens-remaining": "1000",
                            "anthropic-ratelimit-input-tokens-reset": reset}, NOW)
    assert signals.requests == Quota(3, 50, pytest.approx(2.0))
    assert signals.tokens == Quota(1000, 40000, pytest.approx(2.0))
    both = read_signals({"anthropic-ratelimit-tokens-remaining": "5", "anthropic-ratelimit-input-tokens-remaining": "9"}, NOW)
    assert both.tokens.remaining == 5


def test_tokens_are_the_prompt_scaled_by_how_the_provider_counted_plus_max_tokens_or_the_mean_completion():
    gate = Gate("m", 4)
    messages = ({"role": "user", "content": "x" * 400},)
    assert gate.tokens_for(messages, {"max_tokens": 50}) == (104, 154)
    assert gate.tokens_for(messages, {"max_tokens": 50}, n=3) == (104, 104 + 150)
    assert gate.tokens_for(messages, {}) == (104, 104)  # nothing known of its completions yet
    gate.note_usage(104, 52, 30)   # this provider counts half as many prompt tokens, and wrote 30
    gate.note_usage(104, 52, 10)
    assert gate.tokens_for(messages, {}) == (104, 52 + 20)
    assert gate.tokens_for(messages, {"max_completion_tokens": 8}) == (104, 52 + 8)
    gate.note_usage(104, 0, 5)  # an answer that says nothing of its prompt teaches nothing
    assert gate.tokens_for(messages, {}) == (104, 52 + 20)


def test_a_gate_is_one_per_model_endpoint_and_key_and_keeps_no_key():
    env = {"OPENAI_API_KEY": "sk-canary-1"}
    model = ModelConfig("openai/gpt-4o-mini")
    key = gate_key(model, {}, env)
    assert "sk-canary-1" not in repr(key) and key[2] == hashlib.sha256(b"sk-canary-1").hexdigest()[:12]
    gates = Gates(16)
    one = gates.gate(model, {}, env)
    assert gates.gate(model, {}, dict(env)) is one
    assert gates.gate(model, {"api_key": "sk-canary-2"}, env) is not one
    assert gates.gate(model, {"api_base": "http://127.0.0.1:9/v1"}, env) is not one
    assert gates.gate(ModelConfig("openai/gpt-4o"), {}, env) is not one


def test_the_window_halves_once_per_window_of_429s_and_grows_by_one_after_a_run_of_successes():
    window = Window(ceiling=8)
    sent = [window.opened() for _ in range(8)]
    assert not window.open
    for epoch in sent[:3]:  # three 429s of requests sent at size 8: one halving
        window.closed(epoch, ok=False, limited=True)
    assert window.size == 4
    later = window.opened()
    window.closed(later, ok=False, limited=True)  # sent after the halving: halves again
    assert window.size == 2
    for epoch in sent[3:]:
        window.closed(epoch, ok=True, limited=False)  # a run of 5 successes: +1
    assert window.size == 3
    window.closed(window.opened(), ok=False, limited=True)
    assert window.size == 1.5 and window.streak == 0  # a 429 ends the run
    for _ in range(100):
        window.closed(window.opened(), ok=True, limited=False)
    assert window.size == 8  # never above the ceiling
    for _ in range(10):
        window.closed(window.opened(), ok=False, limited=True)
    assert window.size == 1 and window.open  # never below one


def test_a_configured_limit_paces_at_its_rate_with_one_seconds_worth_at_once():
    bucket = paced(per_minute=600, now=0.0)  # 10 a second
    for _ in range(10):
        assert bucket.delay(1, 0.0) == 0
        bucket.take(1, 0.0)
    assert bucket.delay(1, 0.0) == pytest.approx(0.1)
    assert bucket.delay(1, 0.05) == pytest.approx(0.05)
    big = paced(per_minute=600, now=0.0)
    big.take(25, 0.0)  # a request bigger than the bucket goes, and its debt is waited for
    assert big.delay(1, 0.0) == pytest.approx(1.6)


def test_headers_set_the_level_and_the_refill_rate():
    bucket = Bucket(None, 1.0, 1.0, 0.0)
    bucket.observe(Quota(remaining=0, limit=50, reset=1.0), now=0.0)  # 50 used, whole again in 1 s: 50/s
    assert bucket.rate == pytest.approx(50.0)
    assert bucket.delay(1, 0.0) == pytest.approx(0.02)
    unknown = Bucket(None, 1.0, 1.0, 0.0)
    unknown.observe(Quota(remaining=0, limit=None, reset=3.0), now=0.0)  # no limit told: wait for the reset
    assert unknown.delay(1, 1.0) == pytest.approx(2.0) and unknown.delay(1, 3.0) == 0


def test_a_429_pauses_the_gate_for_its_retry_after_capped_by_the_longest_wait():
    clock = Clock()
    gate = Gate("m", 4, max_pause=5.0, clock=clock, wall=lambda: NOW)

    async def go():
        ticket = await gate.acquire(10)
        gate.release(ticket, ok=False, limited=True, headers={"retry-after-ms": "1500"})
        assert gate.delay(10, clock.now) == pytest.approx(1.5)
        gate_two = Gate("m", 4, max_pause=5.0, clock=clock, wall=lambda: NOW)
        t = await gate_two.acquire(1)
        gate_two.release(t, ok=False, limited=True, retry_after=60)
        assert gate_two.delay(1, clock.now) == pytest.approx(5.0)
        assert gate.stats.limited == 1 and gate.window.size == 2

    asyncio.run(go())


def test_the_gate_lets_no_more_than_its_window_through_and_a_release_admits_the_next():
    gate = Gate("m", 3)
    admitted: list[int] = []

    async def go():
        answered = asyncio.Event()

        async def one(i: int):
            ticket = await gate.acquire(1)
            admitted.append(i)
            await answered.wait()
            gate.release(ticket, ok=True)

        tasks = [asyncio.ensure_future(one(i)) for i in range(7)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(admitted) == 3 and gate.window.in_flight == 3
        answered.set()
        await asyncio.gather(*tasks)
        assert len(admitted) == 7 and gate.window.in_flight == 0

    asyncio.run(go())


def test_headers_that_say_nothing_is_left_hold_requests_until_the_provider_refills():
    clock = Clock()
    gate = Gate("m", 16, clock=clock, wall=lambda: NOW)

    async def go():
        ticket = await gate.acquire(1)
        gate.release(ticket, ok=True, headers={"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
                                               "x-ratelimit-reset-requests": "1s"})
        # 100 used, back in 1 s: 100 a second; it keeps back RESERVE_SECONDS (0.1 s) of refill, 10 requests
        assert gate.delay(1, clock.now) == pytest.approx(0.11)
        clock.now += 0.11
        assert gate.delay(1, clock.now) == 0

    asyncio.run(go())


def test_an_answer_counts_from_when_its_request_left_and_an_older_answer_changes_nothing():
    clock = Clock()
    gate = Gate("m", 64, clock=clock, wall=lambda: NOW)
    headers = {"x-ratelimit-limit-requests": "50", "x-ratelimit-remaining-requests": "20", "x-ratelimit-reset-requests": "600ms"}

    async def go():
        first = await gate.acquire(1)
        clock.now += 0.01
        later = [await gate.acquire(1) for _ in range(5)]  # sent after `first`: its answer cannot count them
        clock.now += 0.19
        gate.release(first, ok=True, headers=headers)
        bucket = gate._buckets["requests"]
        # 20 left when `first` was counted, 0.2 s of refill at 30/50 per 0.6 s (50 a second), 5 sent since
        assert bucket.rate == pytest.approx(50.0)
        assert bucket.level == pytest.approx(20 + 0.2 * 50 - 5)
        gate.release(later[0], ok=True, headers={**headers, "x-ratelimit-remaining-requests": "2",
                                                 "x-ratelimit-reset-requests": "960ms"})
        assert bucket.level == pytest.approx(2 + 0.19 * 50 - 4)
        gate.release(first, ok=True, headers={**headers, "x-ratelimit-remaining-requests": "49",
                                              "x-ratelimit-reset-requests": "20ms"})  # stale news
        assert bucket.level == pytest.approx(2 + 0.19 * 50 - 4)

    asyncio.run(go())


def test_a_configured_rate_limit_reaches_the_client_from_gpo_yaml(tmp_path):
    from gpo_action.config import load_config

    (tmp_path / "gpo.yaml").write_text("models:\n  task: {model: openai/x, rate_limit: {rpm: 120, tpm: 9000}}\n"
                                       "  judge: {model: openai/x, rate_limit: {rpm: 60}}\n")
    assert load_config(tmp_path / "gpo.yaml", tree=tmp_path).rate_limits() == {"openai/x": RateLimit(60, 9000)}


def test_a_learned_wait_past_the_longest_backoff_is_not_waited():
    clock = Clock()
    gate = Gate("m", 4, max_pause=30.0, clock=clock, wall=lambda: NOW)

    async def go():
        ticket = await gate.acquire(1)  # a spent daily quota, or a bogus reset: 2 a million hours
        gate.release(ticket, ok=True, headers={"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0",
                                               "x-ratelimit-reset-requests": "1000000h"})
        assert gate.delay(1, clock.now) == 0
        ticket = await gate.acquire(1)
        gate.release(ticket, ok=True, headers={"anthropic-ratelimit-requests-limit": "2",
                                               "anthropic-ratelimit-requests-remaining": "0",
                                               "anthropic-ratelimit-requests-reset": "2999-01-01T00:00:00Z"})
        assert gate.delay(1, clock.now) == 0

    asyncio.run(go())


def test_an_endpoint_refusing_everything_stops_pausing_the_gate_after_some_halvings():
    clock = Clock()
    gate = Gate("m", 64, max_pause=30.0, clock=clock, wall=lambda: NOW)

    async def go():
        for cut in range(1, 12):
            ticket = await gate.acquire(1) if gate.delay(1, clock.now) == 0 else None
            if ticket is None:  # paused: the pause is over when the clock says so
                clock.now = gate._pause_until
                ticket = await gate.acquire(1)
            gate.release(ticket, ok=False, limited=True, headers={"retry-after": "5"})
            assert gate.window.cuts == cut
            assert (gate.delay(1, clock.now) > 0) == (cut <= 4)
        ticket = await gate.acquire(1)
        gate.release(ticket, ok=True)
        assert gate.window.cuts == 0  # a success: a 429 pauses again
        ticket = await gate.acquire(1)
        gate.release(ticket, ok=False, limited=True, headers={"retry-after": "5"})
        assert gate.delay(1, clock.now) == pytest.approx(5.0)

    asyncio.run(go())
