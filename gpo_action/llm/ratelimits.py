"""Rate limits: how fast the client may call one (model, endpoint, key), learned as it goes.

    gates = Gates(ceiling=16, configured={"openai/gpt-4o-mini": RateLimit(rpm=3000, tpm=200_000)})
    gate = gates.gate(model, params, env)           # one per (model, endpoint, key digest)
    estimate, tokens = gate.tokens_for(messages, params)
    ticket = await gate.acquire(tokens)             # waits: window, pause, pacing
    ...  one provider call  ...
    gate.release(ticket, ok=True, headers=raw.rate_headers)   # or limited=True for a 429

A gate holds three things, and a request goes out only when all three allow it:
- an **adaptive window** (AIMD): at most `size` requests in flight, halved on a 429 (once for the
  requests of one window: those sent before the halving do not halve it again), grown by one
  after `SUCCESS_RUN` successes in a row, never above the configured `concurrency`;
- a **pause**: after a 429 nothing is sent until its `retry-after` (or `retry-after-ms`) is over
  (at most the client's longest backoff wait, `retries.max_wait`; and not once the window has been
  halved `PAUSING_CUTS` times with no success, when the endpoint refuses everything);
- **pacing** by token buckets, so requests wait *before* a limit rather than after it: the
  `rate_limit: {rpm, tpm}` of gpo.yaml (one second's worth may go at once), and what the
  provider's headers announce on every answer: OpenAI's `x-ratelimit-remaining-requests/-tokens`
  with `x-ratelimit-reset-requests/-tokens`, Anthropic's `anthropic-ratelimit-requests-*`,
  `-tokens-*` (else `-input-tokens-*`). The remaining count sets the bucket's level, the time to
  reset gives its refill rate (what was used over the time to get it back); one request's worth is
  kept back, since a provider rounds what it reports. A learned wait longer than the client's
  longest backoff wait is not waited: then the 429s decide.

A request's tokens are estimated from its rendered messages (4 characters a token, then scaled by
how the provider's answers counted earlier prompts) plus its `max_tokens` (else the mean
completion seen so far on this gate). Every worker process's calls
are decided here, in the parent, so one gate is one budget across them all. The parsing is pure
(`rate_headers`, `read_signals`, the buckets, the window); the waiting is the only async part.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from gpo_action.llm.types import Message, ModelConfig, RateLimit

# What a provider answer says about limits: only these headers travel from a worker process.
RATE_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
RETRY_HEADERS = ("retry-after", "retry-after-ms")
LITELLM_PREFIX = "llm_provider-"   # how litellm passes a provider's raw headers on
CHARS_PER_TOKEN = 4
SUCCESS_RUN = 5  # successes in a row that grow the window by one
RESERVE_SECONDS = 0.1  # refill a learned level keeps back (see `Bucket._held`)
# Halvings with no success between them after which a 429 no longer pauses the whole gate: an
# endpoint refusing everything (a spent quota) would otherwise hold every request behind every
# other one's retry-after; each request's own backoff still honours it.
PAUSING_CUTS = 4
# The most one pause may last, whatever a header claims (a broken clock, a hostile endpoint).
MAX_PAUSE = 120.0


@dataclass(frozen=True)
class Quota:
    """One limit as a provider reports it: how much is left and how long until it is whole again."""

    remaining: float
    limit: float | None = None
    reset: float | None = None   # seconds


@dataclass(frozen=True)
class Signals:
    """What one answer's headers say (each None when it says nothing of it)."""

    retry_after: float | None = None
    requests: Quota | None = None
    tokens: Quota | None = None


# ---- parsing (pure) ------------------------------------------------------------------------
def rate_headers(source: Any) -> dict[str, str]:
    """The rate-limit headers of `source` (a mapping, httpx.Headers, or None), names lower-cased
    and litellm's `llm_provider-` prefix dropped; nothing else (no cookie, no request id)."""
    if not source:
        return {}
    try:
        items = list(source.items())
    except (AttributeError, TypeError, ValueError):
        return {}
    kept: dict[str, str] = {}
    for name, value in items:
        name = str(name).lower()
        if name.startswith(LITELLM_PREFIX):
            name = name[len(LITELLM_PREFIX):]
        if name.startswith(RATE_HEADER_PREFIXES) or name in RETRY_HEADERS:
            kept.setdefault(name, str(value)[:100])
    return kept


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s") or plain seconds, in seconds."""
    if text is None:
        return None
    text = text.strip().lower()
    try:
        seconds = float(text)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def parse_reset(text: str | None, now: float) -> float | None:
    """Seconds until a reset given as a duration, or as a time (RFC 3339, Anthropic's; or an HTTP
    date); `now` is the wall clock (time.time())."""
    seconds = parse_duration(text)
    if seconds is not None or not text:
        return seconds
    text = text.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError):
            return None
    return max(0.0, when - now)


def parse_retry_after(value: str | None, milliseconds: bool = False, now: float | None = None) -> float | None:
    """A Retry-After value (seconds, or an HTTP date, against the wall clock `now`) as non-negative
    seconds; None if unusable. The GitHub client reads its Retry-After with it too."""
    if not value:
        return None
    try:
        seconds = float(value) / (1000.0 if milliseconds else 1.0)
    except ValueError:
        if milliseconds:
            return None
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN check


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _quota(headers: Mapping[str, str], prefix: str, now: float) -> Quota | None:
    remaining = _number(headers.get(f"{prefix}-remaining"))
    if remaining is None:
        return None
    return Quota(remaining, _number(headers.get(f"{prefix}-limit")), parse_reset(headers.get(f"{prefix}-reset"), now))


def read_signals(headers: Mapping[str, str], now: float | None = None) -> Signals:
    """What `headers` (as `rate_headers` keeps them) say about limits; `now` is the wall clock."""
    now = time.time() if now is None else now
    retry_after = parse_retry_after(headers.get("retry-after-ms"), milliseconds=True, now=now)
    if retry_after is None:
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    requests = _suffixed(headers, "x-ratelimit", "requests", now) or _quota(headers, "anthropic-ratelimit-requests", now)
    tokens = (_suffixed(headers, "x-ratelimit", "tokens", now) or _quota(headers, "anthropic-ratelimit-tokens", now)
              or _quota(headers, "anthropic-ratelimit-input-tokens", now))
    return Signals(retry_after, requests, tokens)


def _suffixed(headers: Mapping[str, str], prefix: str, kind: str, now: float) -> Quota | None:
    """OpenAI's names put the kind last: x-ratelimit-remaining-requests, x-ratelimit-limit-tokens."""
    remaining = _number(headers.get(f"{prefix}-remaining-{kind}"))
    if remaining is None:
        return None
    return Quota(remaining, _number(headers.get(f"{prefix}-limit-{kind}")),
                 parse_reset(headers.get(f"{prefix}-reset-{kind}"), now))


def prompt_estimate(messages: Sequence[Message]) -> float:
    """A prompt's tokens before any answer says how this provider counts them: 4 characters a
    token, 4 more a message."""
    return sum(len(str(m.get("content") or "")) for m in messages) / CHARS_PER_TOKEN + 4 * len(messages)


def completion_allowance(params: Mapping[str, Any]) -> float | None:
    """The completion tokens a request may take (`max_tokens`, `max_completion_tokens`); None: not said."""
    most = params.get("max_tokens") or params.get("max_completion_tokens")
    return float(most) if isinstance(most, (int, float)) and most > 0 else None


def gate_key(model: ModelConfig, params: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, str, str]:
    """(model, endpoint, digest of the key): what one provider limit is counted against. The key
    itself is never kept, only 12 hex digits of its hash."""
    prefix = model.name.split("/", 1)[0].upper().replace("-", "_") if "/" in model.name else "OPENAI"
    endpoint = (params.get("api_base") or params.get("base_url") or env.get(f"{prefix}_API_BASE")
                or env.get(f"{prefix}_BASE_URL") or prefix.lower())
    key = str(params.get("api_key") or env.get(f"{prefix}_API_KEY") or "")
    return model.name, str(endpoint), hashlib.sha256(key.encode()).hexdigest()[:12]


# ---- state (pure, given a clock reading) ---------------------------------------------------
@dataclass
class Bucket:
    """A token bucket: `level` units, refilled at `rate` a second up to `capacity` (None: no
    refill known, the level comes back whole at `reset_at`). A request of `cost` goes when the
    level covers it (or the whole capacity, for one bigger than the bucket), and may leave the
    level below zero: the debt is waited for by the next one."""

    rate: float | None
    capacity: float
    level: float
    at: float
    reset_at: float | None = None
    reserve: bool = False  # a learned level: keep some back (see `delay`)
    seen: int = -1         # the newest request whose answer set the level (a learned level)

    def _refill(self, now: float) -> None:
        if self.rate is not None and now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        if self.reset_at is not None and now >= self.reset_at:
            self.level, self.reset_at = self.capacity, None
        self.at = max(self.at, now)

    def delay(self, cost: float, now: float) -> float:
        """Seconds until `cost` may be taken (0: now)."""
        self._refill(now)
        need = min(cost + self._held(cost), self.capacity) - self.level
        if need <= 1e-9:  # (float dust from the refill)
            return 0.0
        if self.rate:
            return need / self.rate
        return max(0.0, self.reset_at - now) if self.reset_at is not None else 0.0

    def _held(self, cost: float) -> float:
        """What a learned level keeps back: a provider rounds what it reports, and a request
        reaches it a little after it leaves the gate (litellm's own work, a busy worker), while
        refill is counted from when it left: one request's worth, or RESERVE_SECONDS of refill."""
        if not self.reserve:
            return 0.0
        return max(cost, (self.rate or 0.0) * RESERVE_SECONDS)

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.level -= cost

    def observe(self, quota: Quota, now: float, *, since: float | None = None, spent_since: float = 0.0) -> None:
        """A provider's figures replace the estimate: what it used over the time to reset is the
        refill rate, and its remaining is the level, as of when the answered request was counted
        (`since`): what refilled after that comes back, what was sent after it (`spent_since`)
        is taken again, since the answer could not count it."""
        self._refill(now)
        if quota.limit:
            self.capacity = max(1.0, quota.limit)
        if quota.reset and quota.limit and quota.limit > quota.remaining:
            self.rate = (quota.limit - quota.remaining) / quota.reset
        level = quota.remaining
        if since is not None and self.rate:
            level += max(0.0, now - since) * self.rate
        self.level = min(self.capacity, level) - spent_since
        self.reset_at = now + min(quota.reset, MAX_PAUSE) if quota.reset and self.rate is None else None


def paced(per_minute: float, now: float) -> Bucket:
    """A configured limit: its rate, one second's worth at once (providers enforce minutes in
    shorter slices)."""
    rate = per_minute / 60.0
    capacity = max(1.0, rate)
    return Bucket(rate, capacity, capacity, now)


@dataclass
class Window:
    """The adaptive window: requests allowed in flight (AIMD, see the module doc)."""

    ceiling: int
    size: float = 0.0
    in_flight: int = 0
    epoch: int = 0
    streak: int = 0
    cuts: int = 0  # halvings since the last success

    def __post_init__(self) -> None:
        self.size = self.size or float(self.ceiling)

    @property
    def open(self) -> bool:
        return self.in_flight < max(1, int(self.size))

    def opened(self) -> int:
        self.in_flight += 1
        return self.epoch

    def closed(self, epoch: int, *, ok: bool, limited: bool) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if limited:
            self.streak = 0
            if epoch == self.epoch:  # the first 429 of what was sent at this size
                self.size = max(1.0, self.size / 2)
                self.epoch += 1
                self.cuts += 1
        elif ok:
            self.cuts = 0
            self.streak += 1
            if self.streak >= SUCCESS_RUN:
                self.size = min(float(self.ceiling), self.size + 1)
                self.streak = 0


@dataclass(frozen=True)
class Ticket:
    """One admitted request: what it was counted as, for `Gate.release`: its window epoch, its
    tokens, when it went, and how much this gate had sent before it (requests, tokens)."""

    epoch: int
    tokens: float
    sent_at: float = 0.0
    sent_before: tuple[int, float] = (0, 0.0)


@dataclass
class GateStats:
    """What a gate did, for the client's note."""

    limited: int = 0          # answers that were 429


class Gate:
    """The limits of one (model, endpoint, key): window, pause and pacing (see the module doc)."""

    def __init__(self, name: str, ceiling: int, configured: RateLimit | None = None, *, max_pause: float = MAX_PAUSE,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.name = name   # the model's, for messages
        self.max_pause = min(max_pause, MAX_PAUSE)
        self.window = Window(ceiling)
        self._clock, self._wall = clock, wall
        now = clock()
        self._buckets: dict[str, Bucket] = {}
        if configured is not None and configured.rpm:
            self._buckets["rpm"] = paced(configured.rpm, now)
        if configured is not None and configured.tpm:
            self._buckets["tpm"] = paced(configured.tpm, now)
        self._pause_until = 0.0
        self._usage = (0, 0.0, 0, 0.0)  # answers seen, their prompt estimates, prompt and completion tokens
        self._waiters: set[asyncio.Future] = set()
        self._sent = (0, 0.0)  # requests and tokens sent so far
        self.stats = GateStats()

    def tokens_for(self, messages: Sequence[Message], params: Mapping[str, Any], n: int = 1) -> tuple[float, float]:
        """(the prompt estimate, the tokens a request counts against a limit): the prompt, scaled
        by how this provider's answers counted earlier prompts, plus what it may write
        (`max_tokens`, else the mean completion so far), n times."""
        estimate = prompt_estimate(messages)
        answers, estimated, counted, written = self._usage
        scale = counted / estimated if answers and estimated > 0 else 1.0
        completion = completion_allowance(params)
        completion = completion if completion is not None else (written / answers if answers else 0.0)
        return estimate, estimate * scale + completion * max(1, n)

    def note_usage(self, estimate: float, prompt_tokens: int, completion_tokens: float) -> None:
        """An answer's usage, against the prompt estimate it was sent with (see `tokens_for`)."""
        if prompt_tokens <= 0:
            return
        answers, estimated, counted, written = self._usage
        self._usage = (answers + 1, estimated + estimate, counted + prompt_tokens, written + completion_tokens)

    def delay(self, tokens: float, now: float) -> float:
        """Seconds until a request of `tokens` may go, by the pause and the buckets (0: now)."""
        wait = max(0.0, self._pause_until - now)
        for name, bucket in self._buckets.items():
            delay = bucket.delay(_cost(name, tokens), now)
            if bucket.reserve and delay > self.max_pause:
                delay = 0.0  # a learned wait past any the client would take (a spent quota, a bogus reset): the 429s decide
            wait = max(wait, delay)
        return wait

    async def acquire(self, tokens: float) -> Ticket:
        """Wait until a request of `tokens` may go, and count it as gone."""
        while True:
            now = self._clock()
            wait = self.delay(tokens, now)
            if wait <= 0 and self.window.open:
                for name, bucket in self._buckets.items():
                    bucket.take(_cost(name, tokens), now)
                ticket = Ticket(self.window.opened(), tokens, now, self._sent)
                self._sent = (self._sent[0] + 1, self._sent[1] + tokens)
                return ticket
            woken = asyncio.get_running_loop().create_future()
            self._waiters.add(woken)
            try:  # woken by a release (a slot, new headers), or when the wait is over
                # not wait_for: under 3.11 a cancel that meets the wake-up is lost (the task goes on)
                async with asyncio.timeout(wait if wait > 0 else None):
                    await woken
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(woken)

    def release(self, ticket: Ticket, *, ok: bool, limited: bool = False,
                headers: Mapping[str, str] | None = None, retry_after: float | None = None) -> None:
        """The request of `ticket` is answered: a success (`ok`), a 429 (`limited`), or another
        failure (neither); `headers` are its rate-limit headers. Synchronous, so a cancelled
        call releases too."""
        now = self._clock()
        self.window.closed(ticket.epoch, ok=ok, limited=limited)
        # a reset written as a time is counted from when the request left, as a duration is
        signals = read_signals(headers or {}, self._wall() - max(0.0, now - ticket.sent_at))
        if limited:
            self.stats.limited += 1
            wait = signals.retry_after if signals.retry_after is not None else retry_after
            if wait and self.window.cuts <= PAUSING_CUTS:
                self._pause_until = max(self._pause_until, now + min(wait, self.max_pause))
        for name, quota in (("requests", signals.requests), ("tokens", signals.tokens)):
            if quota is not None:
                bucket = self._buckets.get(name)
                if bucket is None:
                    bucket = self._buckets[name] = Bucket(None, max(1.0, quota.limit or quota.remaining),
                                                          quota.remaining, now, reserve=True)
                if ticket.sent_before[0] < bucket.seen:
                    continue  # an older request's answer: the level already stands on newer news
                bucket.seen = ticket.sent_before[0]
                later = (self._sent[0] - ticket.sent_before[0] - 1 if name == "requests"
                         else self._sent[1] - ticket.sent_before[1] - ticket.tokens)
                bucket.observe(quota, now, since=ticket.sent_at, spent_since=float(later))
        for woken in self._waiters:
            if not woken.done():
                woken.set_result(None)


def _cost(bucket: str, tokens: float) -> float:
    """What a request takes from a bucket: one from a request bucket, its tokens from a token one."""
    return 1.0 if bucket in ("rpm", "requests") else tokens


@dataclass
class Gates:
    """The gates of one client, by (model, endpoint, key digest)."""

    ceiling: int
    configured: Mapping[str, RateLimit] = field(default_factory=dict)
    max_pause: float = MAX_PAUSE   # the client's longest wait (gpo.yaml's retries.max_wait)
    _gates: dict[tuple[str, str, str], Gate] = field(default_factory=dict)

    def gate(self, model: ModelConfig, params: Mapping[str, Any], env: Mapping[str, str]) -> Gate:
        key = gate_key(model, params, env)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = Gate(model.name, self.ceiling, self.configured.get(model.name),
                                           max_pause=self.max_pause)
        return gate

    def all(self) -> list[Gate]:
        return list(self._gates.values())
