"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

In a test:

    with ScriptedOpenAIServer(latency=0.05) as server:
        server.add_rule(r"charged twice", "Category: billing")
        server.enqueue_faults("429", "500")          # the next two requests fail, then normal
        ... point litellm at server.url + "/v1" ...
        assert server.peak == 4

From a shell (for benchmarks run as separate processes); prints the URL, serves until killed:

    python tests/support/openai_server.py --port 0 --latency 0.2 --reply-mode echo --p429 0.1
    python tests/support/openai_server.py --rps 50 --tpm 54000 --header-style openai

On exit it prints two lines: `served N requests, peak concurrency P, statuses {...}, outcomes {...}`
and `counters {json}` (total, admitted, rate_limited, limited_by, statuses, outcomes, peak).

Routes: POST /v1/chat/completions, /chat/completions, /v1/embeddings, /embeddings.
What a request gets, in this order: the next scripted fault (or a seeded random one), then for each
of the `n` choices the next queued reply, else the first rule whose regex matches the last user
message, else the reply function (default: echo the last user message; choice i > 0 gets " #i").
`enqueue_messages` queues whole assistant messages (content, `tool_calls`, `finish_reason`) that
come before all of those; every other choice finishes with "stop".

Faults: "429" (with Retry-After), "500", "401" (its message quotes the bearer token, as a careless
provider might: for redaction tests), "hang" (sleeps `hang_seconds`, without blocking others),
"garbage" (200 with a malformed JSON body), "empty" (one choice with empty content), "ok".
Embedding requests take faults too (429, 500, 401, hang, garbage; the others answer normally).

Rate limits (`rps`, `tpm`, `rate_window`, `header_style`; tests/support/buckets.py says how they
count): before anything else, a request the buckets cannot hold is answered 429 at once (no
latency), with the provider's limit headers and retry-after and an OpenAI-shaped body (type
"requests" or "tokens", code "rate_limit_exceeded"); its outcome is "rate-limited". Every admitted
request's answer (200 or scripted fault) carries the limit headers as they stand after its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import signal
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

from aiohttp import web

if __package__:
    from .background import BackgroundServer
    from .buckets import HEADER_STYLES, Admission, RateLimits
    from .openai_payloads import (ReplyFunction, count_words, echo_reply, embed_text, error_response, fixed_reply,
                                  last_user_message, prompt_tokens, requested_completion)
else:  # run as a script (python tests/support/openai_server.py): its folder is first on sys.path
    from background import BackgroundServer
    from buckets import HEADER_STYLES, Admission, RateLimits
    from openai_payloads import (ReplyFunction, count_words, echo_reply, embed_text, error_response, fixed_reply,
                                 last_user_message, prompt_tokens, requested_completion)

__all__ = ["FAULTS", "ScriptedOpenAIServer", "ReplyFunction", "count_words", "echo_reply", "embed_text", "fixed_reply",
           "last_user_message", "prompt_tokens", "requested_completion", "main"]

FAULTS = ("429", "500", "401", "hang", "garbage", "empty", "ok")


class ScriptedOpenAIServer(BackgroundServer):
    """An OpenAI-compatible server in a background thread with its own event loop.

    Every setter is safe to call from the test's thread while the server runs. Counters:
    `total`, `status_counts` (HTTP status -> count), `outcomes` (fault name -> count),
    `in_flight`, `peak` (most requests in flight at once), `requests` (each request body),
    `authorizations` (each request's Authorization header, "" when absent), `admitted` (requests
    the rate limits let through: all of them without limits), `rate_limited` (requests they
    answered 429) and `limited_by` ("requests" / "tokens" -> count). `clock` drives the buckets.
    `url` is the base URL without a path (litellm wants url + "/v1").
    """

    thread_name = "openai-server"
    description = "scripted OpenAI server"
    runner_options = {"handler_cancellation": True}
    site_options = {"backlog": 1024}

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        reply: ReplyFunction = echo_reply,
        retry_after: float = 0.1,
        hang_seconds: float = 30.0,
        seed: int = 0,
        rps: float | None = None,
        tpm: float | None = None,
        rate_window: float = 1.0,
        header_style: str = "openai",
        clock: Callable[[], float] = time.monotonic,
        **fault_rates: float,
    ):
        super().__init__(host, port)
        self.latency = latency
        self.reply = reply
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._rules: list[tuple[re.Pattern[str], str]] = []
        self._replies: deque[str] = deque()
        self._messages: deque[dict[str, Any]] = deque()
        self._faults: deque[str] = deque()
        self._rates: dict[str, float] = {}
        self._rng = random.Random(seed)
        self._clock = clock
        self.set_rate_limits(rps, tpm, window=rate_window, header_style=header_style)
        self._reset_counters()
        if fault_rates:
            self.set_fault_rates(seed=seed, **fault_rates)

    # ---- lifecycle -------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in ("/v1/chat/completions", "/chat/completions"):
            app.router.add_post(path, self._chat)
        for path in ("/v1/embeddings", "/embeddings"):
            app.router.add_post(path, self._embeddings)
        return app

    # ---- scripting -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget scripts, rules, rates and counters; keep latency, the reply function and the
        rate limits (their buckets start full again)."""
        limits = self.limits
        self.set_rate_limits(limits.rps, limits.tpm, window=limits.window, header_style=limits.style)
        with self._lock:
            self._rules.clear()
            self._replies.clear()
            self._messages.clear()
            self._faults.clear()
            self._rates = {}
            self._reset_counters()

    def _reset_counters(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.total = 0
        self.status_counts: Counter[int] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0
        self.admitted = 0
        self.rate_limited = 0
        self.limited_by: Counter[str] = Counter()

    def set_rate_limits(self, rps: float | None = None, tpm: float | None = None, *, window: float = 1.0,
                        header_style: str = "openai") -> None:
        """Requests per second and tokens per minute (None: no limit), each a token bucket of
        `window` seconds of allowance, starting full; `header_style` "openai" or "anthropic"."""
        limits = RateLimits(rps, tpm, window=window, header_style=header_style, clock=self._clock)
        with self._lock:
            self.limits = limits

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def set_reply(self, reply: ReplyFunction | str) -> None:
        """The default reply: a function (body, choice_index) -> text, or a fixed text."""
        self.reply = fixed_reply(reply) if isinstance(reply, str) else reply

    def add_rule(self, pattern: str, reply: str) -> None:
        """When `pattern` matches (re.search) the last user message, reply with `reply`."""
        with self._lock:
            self._rules.append((re.compile(pattern), reply))

    def enqueue_replies(self, *texts: str) -> None:
        """Replies used first, one per choice, in order."""
        with self._lock:
            self._replies.extend(texts)

    def enqueue_messages(self, *messages: dict[str, Any]) -> None:
        """Assistant messages used first, one per choice: {"content": str | None, "tool_calls":
        [...], "finish_reason": str} (finish reason default: "tool_calls" with calls, else "stop")."""
        with self._lock:
            self._messages.extend(messages)

    def enqueue_faults(self, *outcomes: str) -> None:
        """Outcomes of the next requests, in order (see FAULTS)."""
        unknown = [o for o in outcomes if o not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.extend(outcomes)

    def set_fault_rates(self, seed: int = 0, keyed: bool = False, **rates: float) -> None:
        """Seeded random faults, e.g. set_fault_rates(p429=0.1, p500=0.05, phang=0.02, seed=0).

        By default the draws follow the order requests arrive in, which concurrency makes vary.
        `keyed=True` draws from (seed, last user message, how many times that message came before)
        instead, so each prompt meets the same sequence of outcomes in every run, whatever the
        order: `planned_outcome(message, attempt)` says which."""
        names = {f"p{name}": name for name in FAULTS if name != "ok"}
        unknown = [key for key in rates if key not in names]
        if unknown:
            raise ValueError(f"unknown rate {unknown[0]!r}; known: {', '.join(names)}")
        with self._lock:
            self._rates = {names[key]: float(p) for key, p in rates.items() if p}
            self._rng = random.Random(seed)
            self._seed = seed
            self._keyed = keyed
            self._seen: Counter[str] = Counter()

    def planned_outcome(self, message: str, attempt: int) -> str:
        """With keyed rates: the outcome of the `attempt`-th (0-based) request whose last user
        message is `message`."""
        digest = hashlib.blake2b(f"{self._seed}\0{attempt}\0{message}".encode(), digest_size=8).digest()
        return self._pick(int.from_bytes(digest, "big") / 2**64)

    def _pick(self, draw: float) -> str:
        for name, p in self._rates.items():
            if draw < p:
                return name
            draw -= p
        return "ok"

    def counters(self) -> dict[str, Any]:
        """The counters as JSON-ready data (what the CLI prints on exit after "counters ")."""
        with self._lock:
            return {"total": self.total, "admitted": self.admitted, "rate_limited": self.rate_limited,
                    "limited_by": dict(self.limited_by), "statuses": {str(k): v for k, v in self.status_counts.items()},
                    "outcomes": dict(self.outcomes), "peak": self.peak}

    # ---- handlers --------------------------------------------------------------------------
    def _next_outcome(self, body: dict[str, Any] | None = None) -> str:
        if self._faults:
            return self._faults.popleft()
        if self._rates:
            if getattr(self, "_keyed", False):
                message = last_user_message(body or {})
                attempt = self._seen[message]
                self._seen[message] += 1
                return self.planned_outcome(message, attempt)
            return self._pick(self._rng.random())
        return "ok"

    def _choice_text(self, body: dict[str, Any], index: int) -> str:
        if self._replies:
            return self._replies.popleft()
        message = last_user_message(body)
        for pattern, text in self._rules:
            if pattern.search(message):
                return text
        return self.reply(body, index)

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        return body if isinstance(body, dict) else {"_invalid": True}

    def _enter(self, body: dict[str, Any], authorization: str = "") -> None:
        with self._lock:
            self.requests.append(body)
            self.authorizations.append(authorization)
            self.total += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def _leave(self, status: int | None, outcome: str, refused: Admission | None = None) -> None:
        with self._lock:
            self.in_flight -= 1
            self.outcomes[outcome] += 1
            if refused is not None:
                self.rate_limited += 1
                self.limited_by[refused.kind or "requests"] += 1
            else:
                self.admitted += 1
            if status is not None:
                self.status_counts[status] += 1

    async def _answer(self, request: web.Request, respond) -> web.StreamResponse:
        """Count the request, draw its scripted outcome, wait the latency, answer with `respond`."""
        body = await self._read_json(request)
        self._enter(body, request.headers.get("Authorization", ""))
        status: int | None = None
        outcome = "ok"
        refused: Admission | None = None
        try:
            with self._lock:
                admission = self._admit(body)
                if admission is not None and not admission.admitted:
                    refused, outcome = admission, "rate-limited"
                else:
                    outcome = self._next_outcome(body)
            if refused is not None:
                response = error_response(429, "rate_limit_exceeded", refused.message, headers=refused.headers,
                                  error_type=refused.kind)
            else:
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                response, outcome = await respond(body, outcome, request.headers.get("Authorization", ""))
                if admission is not None:
                    response.headers.update(admission.headers)
            status = response.status
            return response
        finally:
            self._leave(status, outcome, refused)

    def _admit(self, body: dict[str, Any]) -> Admission | None:
        """The rate limits' decision (None without limits). Called under the lock."""
        if not self.limits.active:
            return None
        return self.limits.admit(prompt_tokens(body), requested_completion(body), str(body.get("model", "scripted")))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        async def respond(body, outcome, authorization):
            return await self._chat_response(body, outcome, authorization), outcome

        return await self._answer(request, respond)

    async def _chat_response(self, body: dict[str, Any], outcome: str, authorization: str) -> web.Response:
        if body.get("_invalid"):
            return error_response(400, "invalid_request_error", "request body is not a JSON object")
        if outcome == "429":
            retry = f"{self.retry_after:g}"
            return error_response(429, "rate_limit_exceeded", "Rate limit reached (scripted)",
                          headers={"Retry-After": retry, "retry-after-ms": f"{self.retry_after * 1000:g}"})
        if outcome == "500":
            return error_response(500, "server_error", "The server had an error (scripted)")
        if outcome == "401":
            token = authorization.removeprefix("Bearer ").strip()
            return error_response(401, "invalid_api_key", f"Incorrect API key provided: {token}")
        if outcome == "hang":
            await asyncio.sleep(self.hang_seconds)
            return error_response(504, "timeout", "hung (scripted)")
        if outcome == "garbage":
            return web.Response(status=200, text='{"id": "chatcmpl-garbage", "choices": [{"mess',
                                content_type="application/json")
        n = int(body.get("n") or 1)
        with self._lock:
            messages = [self._messages.popleft() for _ in range(min(n, len(self._messages)))] if outcome != "empty" else []
            texts = [""] if outcome == "empty" else [self._choice_text(body, i) for i in range(len(messages), n)]
        choices = [{"role": "assistant", "content": m.get("content"), **({"tool_calls": m["tool_calls"]} if m.get("tool_calls") else {})}
                   for m in messages] + [{"role": "assistant", "content": t} for t in texts]
        reasons = [m.get("finish_reason") or ("tool_calls" if m.get("tool_calls") else "stop") for m in messages]
        reasons += ["stop"] * len(texts)
        texts = [str(m.get("content") or "") for m in messages] + texts
        prompt_words = prompt_tokens(body)
        completion_words = sum(count_words(t) for t in texts)
        payload = {
            "id": f"chatcmpl-{self.total}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [
                {"index": i, "message": message, "finish_reason": reason, "logprobs": None}
                for i, (message, reason) in enumerate(zip(choices, reasons))
            ],
            "usage": {"prompt_tokens": prompt_words, "completion_tokens": completion_words,
                      "total_tokens": prompt_words + completion_words},
        }
        return web.json_response(payload)

    async def _embeddings(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._embeddings_response)

    async def _embeddings_response(self, body: dict[str, Any], outcome: str, authorization: str):
        """Faults answer as for chat; "empty" has no meaning for embeddings and counts as ok."""
        if outcome in ("429", "500", "401", "hang", "garbage"):
            return await self._chat_response(body, outcome, authorization), outcome
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        dimensions = int(body.get("dimensions") or 64)
        words = sum(count_words(t) for t in texts)
        response = web.json_response({
            "object": "list",
            "model": body.get("model", "scripted-embedding"),
            "data": [{"object": "embedding", "index": i, "embedding": embed_text(t, dimensions)}
                     for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": words, "total_tokens": words},
        })
        return response, "ok"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--reply-mode", choices=["echo", "fixed"], default="echo")
    parser.add_argument("--reply-text", default="ok", help="the reply of --reply-mode fixed")
    parser.add_argument("--rule", action="append", default=[], metavar="REGEX=TEXT",
                        help="reply TEXT when REGEX matches the last user message (repeatable)")
    parser.add_argument("--retry-after", type=float, default=0.1)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rps", type=float, default=None, help="requests per second (a token bucket)")
    parser.add_argument("--tpm", type=float, default=None,
                        help="tokens per minute: prompt tokens + max_tokens, charged at admission (a token bucket)")
    parser.add_argument("--rate-window", type=float, default=1.0, help="seconds of allowance each bucket holds")
    parser.add_argument("--header-style", choices=HEADER_STYLES, default="openai",
                        help="rate-limit headers as OpenAI (x-ratelimit-*) or Anthropic (anthropic-ratelimit-*) send them")
    parser.add_argument("--keyed-faults", action="store_true",
                        help="draw faults from (seed, prompt, attempt), not arrival order: the same in every run")
    for name in FAULTS[:-1]:
        parser.add_argument(f"--p{name}", type=float, default=0.0, help=f"probability of a {name!r} fault")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the scripted server only listens on loopback")
    reply = echo_reply if args.reply_mode == "echo" else fixed_reply(args.reply_text)
    server = ScriptedOpenAIServer(host=args.host, port=args.port, latency=args.latency, reply=reply,
                                  retry_after=args.retry_after, hang_seconds=args.hang_seconds, rps=args.rps,
                                  tpm=args.tpm, rate_window=args.rate_window, header_style=args.header_style)
    for rule in args.rule:
        pattern, _, text = rule.partition("=")
        server.add_rule(pattern, text)
    rates = {f"p{name}": getattr(args, f"p{name}") for name in FAULTS[:-1]}
    server.set_fault_rates(seed=args.seed, keyed=args.keyed_faults, **rates)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        print(server.url, flush=True)
        while not stop.wait(0.5):
            pass
        print(f"served {server.total} requests, peak concurrency {server.peak}, "
              f"statuses {dict(server.status_counts)}, outcomes {json.dumps(dict(server.outcomes))}", flush=True)
        print("counters " + json.dumps(server.counters()), flush=True)


if __name__ == "__main__":
    main()
