"""What goes into the LLM client and what comes out: plain frozen dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

Message = Mapping[str, str]  # {"role": ..., "content": ...}

# Keys of model params that are secrets or transport details: never part of a cache key, never logged.
SECRET_PARAMS = frozenset({"api_key", "token", "azure_ad_token", "aws_secret_access_key", "aws_session_token"})

# `LLMResponse.error_type` of a request for a model that cannot run here (no key): answered only
# from the cache, never dispatched (see `LLMClient.skip_uncached`). Not a provider failure.
SKIPPED = "Skipped"

# `LLMResponse.error_type` of a request that a `CallLimit` kept from being (re)dispatched.
BUDGET_EXHAUSTED = "BudgetExhausted"


@dataclass(frozen=True)
class ModelConfig:
    """A model as configured: a litellm model string (or `replay/...`, `local/...`) plus params."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def public_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in SECRET_PARAMS}


@dataclass(frozen=True)
class RateLimit:
    """A model's configured limits (gpo.yaml's `rate_limit`): requests and tokens per minute."""

    rpm: float | None = None
    tpm: float | None = None


@dataclass(frozen=True)
class LLMRequest:
    """One completion to obtain. `sample` tells repeats apart; `tag` (a case id) is only for messages."""

    model: ModelConfig
    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    sample: int = 0
    tag: str = ""

    def merged_params(self) -> dict[str, Any]:
        return {**self.model.params, **self.params}


@dataclass(frozen=True)
class LLMResponse:
    """The outcome of one request: a text, or an error after retries. Never raised."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    attempts: int = 0
    seconds: float = 0.0  # the provider call's own latency, kept by the cache for a cached answer
    error: str | None = None
    error_type: str | None = None
    finish_reason: str | None = None  # the provider's ("stop", "length", "tool_calls", ...); None: not told
    priced: bool = True  # False: no price was known for the model, so `cost` is 0 by default, not a figure

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LLMResponse":
        return cls(**data)


@dataclass
class Usage:
    """Running totals of one client; read by reports and budgets."""

    calls: int = 0           # requests sent to a provider (after cache), retries included
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tokens": self.tokens}


def split_usage(prompt_tokens: int, completion_tokens: int, cost: float, parts: int) -> list[tuple[int, int, float]]:
    """Share one call's usage among its `parts` candidates; the totals are kept exactly."""
    if parts <= 0:
        return []
    return [
        (prompt_tokens // parts + (i < prompt_tokens % parts),
         completion_tokens // parts + (i < completion_tokens % parts),
         cost / parts)
        for i in range(parts)
    ]


def canonical_json(value: Any) -> str:
    """The one serialisation used for content hashes: sorted keys, no whitespace, UTF-8 kept."""
    return _CANONICAL(value)


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str), with
# one encoder rather than one per call (a suite's every case id is a hash of one)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode
