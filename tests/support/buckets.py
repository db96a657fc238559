"""The scripted server's rate limits: token buckets, and the headers a real provider sends about them.

    limits = RateLimits(rps=50, tpm=54_000, header_style="openai")
    decision = limits.admit(prompt_tokens=2, max_tokens=16)   # -> Admission
    decision.admitted, decision.kind, decision.retry_after, decision.headers

Every limit is a token bucket that holds `window` seconds of allowance (default 1 s) and refills
continuously; it starts full. `rps` R: capacity R x window requests (at least 1), refilled at R
per second.
`tpm` T: capacity T x window / 60 tokens, refilled at T / 60 per second. A request is admitted only
when every bucket holds its cost, and only then is the cost taken (a refused request costs nothing).

Token costs, at admission (as OpenAI reserves them): the request's prompt tokens, as the server
counts them for `usage` (words of the messages' contents), plus its `max_tokens` (or
`max_completion_tokens`; 0 when it gives neither). In the "openai" style one bucket takes the sum;
in the "anthropic" style there are two buckets of limit T each, as Anthropic's ITPM and OTPM: input
(prompt tokens) and output (`max_tokens`). A request costing more than a bucket's capacity can never
be admitted: it is refused as "Request too large" with no retry-after.

Headers (only for the limits that are set):
- "openai": `x-ratelimit-limit-requests` (the bucket's capacity), `x-ratelimit-remaining-requests`
  (whole units left, after this request's cost), `x-ratelimit-reset-requests` (time until the
  bucket is full again, in OpenAI's Go-style duration: "20ms", "1s", "1.5s", "6m0s"), and the same
  three for `-tokens`; on a refusal also `retry-after` (whole seconds, rounded up, at least 1) and
  `retry-after-ms` (exact).
- "anthropic": `anthropic-ratelimit-requests-limit/-remaining/-reset`, `-input-tokens-*`,
  `-output-tokens-*` and `-tokens-*` (the more restrictive of input and output: the one with fewer
  tokens left), resets as RFC 3339 UTC times with milliseconds ("2026-12-03T05:40:12.345Z"); on a
  refusal also `retry-after` (whole seconds, rounded up, at least 1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

HEADER_STYLES = ("openai", "anthropic")


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers write it (Go's time.Duration): "0s",
    "20ms", "1s", "1.5s", "6m0s", "1h0m0s"; rounded to the millisecond."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rfc3339(moment: float) -> str:
    """A Unix time as an RFC 3339 UTC time with milliseconds, as Anthropic's reset headers."""
    stamp = datetime.fromtimestamp(moment, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@dataclass
class TokenBucket:
    """`capacity` units, refilled at `rate` per second up to capacity; `level` as of `stamp`."""

    name: str  # "requests", "tokens", "input-tokens", "output-tokens"
    capacity: float
    rate: float
    level: float = field(default=-1.0)
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if self.level < 0:
            self.level = self.capacity

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until `cost` fits (0: now; inf: never, it is over capacity). Refill first."""
        if cost > self.capacity:
            return math.inf
        return max(0.0, (cost - self.level) / self.rate)

    def reset(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.level) / self.rate


@dataclass(frozen=True)
class Admission:
    """What the limiter decided about one request."""

    admitted: bool
    kind: str | None = None  # refused by "requests" or "tokens" (None when admitted)
    retry_after: float | None = None  # seconds until it would fit (None: admitted, or never fits)
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""  # the error message of a refusal


class RateLimits:
    """The buckets of one server. Not thread-safe: the server calls it under its own lock."""

    def __init__(self, rps: float | None = None, tpm: float | None = None, *, window: float = 1.0,
                 header_style: str = "openai", clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        if header_style not in HEADER_STYLES:
            raise ValueError(f"unknown header style {header_style!r}; known: {', '.join(HEADER_STYLES)}")
        for name, value in (("rps", rps), ("tpm", tpm), ("window", window)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be above 0, got {value}")
        self.rps, self.tpm, self.window, self.style = rps, tpm, window, header_style
        self.clock, self.wall = clock, wall
        now = clock()
        # at least one request, or a slow rate in a short window would refuse everything
        self.requests = TokenBucket("requests", max(1.0, rps * window), rps, stamp=now) if rps else None
        self.token_buckets: list[TokenBucket] = []
        if tpm:
            names = ("tokens",) if header_style == "openai" else ("input-tokens", "output-tokens")
            self.token_buckets = [TokenBucket(n, tpm * window / 60, tpm / 60, stamp=now) for n in names]

    @property
    def active(self) -> bool:
        return self.requests is not None or bool(self.token_buckets)

    def _costs(self, prompt_tokens: int, max_tokens: int) -> list[tuple[TokenBucket, float]]:
        costs: list[tuple[TokenBucket, float]] = [(self.requests, 1.0)] if self.requests else []
        for bucket in self.token_buckets:
            cost = {"tokens": prompt_tokens + max_tokens, "input-tokens": prompt_tokens,
                    "output-tokens": max_tokens}[bucket.name]
            costs.append((bucket, float(cost)))
        return costs

    def admit(self, prompt_tokens: int, max_tokens: int, model: str = "scripted") -> Admission:
        """Take the request's costs from every bucket if all of them hold it; else refuse it."""
        now = self.clock()
        costs = self._costs(prompt_tokens, max_tokens)
        for bucket, _ in costs:
            bucket.refill(now)
        waits = [(bucket.wait(cost), bucket, cost) for bucket, cost in costs]
        blocked = [w for w in waits if w[0] > 0]
        if not blocked:
            for bucket, cost in costs:
                bucket.level -= cost
            return Admission(True, headers=self.headers())
        wait, bucket, cost = max(blocked, key=lambda w: w[0])
        kind = "requests" if bucket.name == "requests" else "tokens"
        unit = "requests per second" if kind == "requests" else "tokens per min (TPM)"
        limit = self.rps if kind == "requests" else self.tpm
        if math.isinf(wait):
            message = (f"Request too large for {model} on {unit}: Limit {limit:g}, Requested {cost:g}. "
                       "The input or output tokens must be reduced in order to run successfully.")
            return Admission(False, kind, None, self.headers(), message)
        message = (f"Rate limit reached for {model} on {unit} (scripted): Limit {limit:g}, "
                   f"Used {round(bucket.capacity - bucket.level):g}, Requested {cost:g}. "
                   f"Please try again in {openai_duration(wait)}.")
        headers = self.headers()
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        if self.style == "openai":
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return Admission(False, kind, wait, headers, message)

    def headers(self) -> dict[str, str]:
        """The limit headers as the buckets stand now (call after `admit`'s refill)."""
        buckets = ([self.requests] if self.requests else []) + self.token_buckets
        if self.style == "openai":
            return {f"x-ratelimit-{field}-{b.name}": value for b in buckets
                    for field, value in (("limit", f"{b.capacity:g}"), ("remaining", str(math.floor(b.level))),
                                         ("reset", openai_duration(b.reset())))}
        now = self.wall()
        headers: dict[str, str] = {}
        shown = list(buckets)
        if self.token_buckets:
            tightest = min(self.token_buckets, key=lambda b: b.level)
            shown.append(TokenBucket("tokens", tightest.capacity, tightest.rate, tightest.level, tightest.stamp))
        for b in shown:
            headers[f"anthropic-ratelimit-{b.name}-limit"] = f"{b.capacity:g}"
            headers[f"anthropic-ratelimit-{b.name}-remaining"] = str(math.floor(b.level))
            headers[f"anthropic-ratelimit-{b.name}-reset"] = rfc3339(now + b.reset())
        return headers
