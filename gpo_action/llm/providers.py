"""Where a model string is answered: one registry from model-name prefix to provider factory.

    PROVIDERS: "" -> LiteLLMProvider, "replay/" -> ReplayProvider, "local/" -> LocalProvider, ...

`get_provider(model, base_dir)` picks the longest registered prefix of `model.name`; the empty
prefix (litellm, every provider it knows) catches the rest. Built-ins register with the same
`@register(prefix)` decorator an extension would use; their modules load once, on first lookup.
A prefix is registered once (a second registration is a ValueError, as for checkers);
`PROVIDERS.unregister(prefix)` takes one out again.

A provider answers one request (`acomplete`), and may embed a batch of texts (`aembed`; only the
litellm provider does), raising only `ProviderError` subclasses; retries,
concurrency and the cache belong to the client. litellm is imported inside the litellm provider,
never at module import: a fully cached run does not load it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from gpo_action.errors import (
    AuthError,
    BadResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from gpo_action.llm.ratelimits import rate_headers, read_signals
from gpo_action.llm.types import Message, ModelConfig
from gpo_action.registry import Registry
from gpo_action.secrets import remember_params, scrub


@dataclass(frozen=True)
class RawCompletion:
    """What one provider call returned. `cost` is None when no price is known for the model."""

    texts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    finish_reasons: list[str | None] = field(default_factory=list)  # per text; shorter: not told
    rate_headers: dict[str, str] = field(default_factory=dict)  # what the answer said of limits (`ratelimits`)


@dataclass(frozen=True)
class RawEmbedding:
    """What one embedding call returned: one vector per text, in order; `cost` None when unpriced."""

    vectors: list[list[float]] = field(default_factory=list)
    prompt_tokens: int = 0
    cost: float | None = 0.0


@runtime_checkable
class Provider(Protocol):
    """Answers requests for one model. `cacheable`: answers may go to the response cache;
    `supports_n`: one call can return n candidates. Optional capabilities (absent means False):
    `supports_prefill`, a last message of role "assistant" is continued, and the reply is the
    continuation only; `supports_stop`, the `stop` param (a list of strings) is honoured and the
    stop string is left out of the reply. A provider may also define a sync
    `prepare()`, which the client calls once before its first request goes out (heavy imports
    belong there, not in the factory, and not inside a timed call), and a `max_concurrency`
    (requests it can serve at once) that caps the client's workers for its model. A factory
    with `reads_env = True` is called with a third argument, the client's environment mapping
    (None: os.environ), so what it reads from the environment comes from the edge, not from
    os.environ deep inside (the local provider's GPO_LOCAL_THREADS, GPO_SMOLLM2_GGUF)."""

    cacheable: bool
    supports_n: bool

    async def acomplete(
        self,
        messages: Sequence[Message],
        params: Mapping[str, Any],
        n: int,
        timeout: float,
        *,
        sample: int = 0,
        tag: str = "",
    ) -> RawCompletion: ...


ProviderFactory = Callable[..., Provider]  # (ModelConfig, base_dir), plus env when it `reads_env`

PROVIDERS: Registry[ProviderFactory] = Registry("provider prefix")
BUILTIN_MODULES = ("gpo_action.llm.replay", "gpo_action.llm.local")
_builtins_loaded = False


def register(prefix: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Register a provider factory for model names starting with `prefix` ("" = the default);
    a prefix already registered is a ValueError."""
    return PROVIDERS.decorator(prefix)


def load_builtins() -> None:
    """Import the built-in provider modules once; they register themselves."""
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def get_provider(model: ModelConfig, base_dir: Path, env: Mapping[str, str] | None = None) -> Provider:
    """The provider for `model`: the longest registered prefix of its name wins. A factory that
    `reads_env` is given `env` (None: os.environ)."""
    load_builtins()
    matches = [prefix for prefix in PROVIDERS if model.name.startswith(prefix)]
    if not matches:
        known = ", ".join(repr(p) for p in sorted(PROVIDERS)) or "none"
        raise ProviderError(f"no provider for model {model.name!r}; registered prefixes: {known}")
    factory = PROVIDERS[max(matches, key=len)]
    if getattr(factory, "reads_env", False):
        return factory(model, Path(base_dir), env)
    return factory(model, Path(base_dir))


def provider_prefix(model_name: str) -> str:
    """The registered prefix that answers `model_name` ("" = litellm)."""
    load_builtins()
    return max((prefix for prefix in PROVIDERS if model_name.startswith(prefix)), key=len, default="")


def redact(text: str, params: Mapping[str, Any]) -> str:
    """`text` through the run's scrubber (`secrets`), which learns the secret params first: an error
    is scrubbed of every key, also one litellm found in the environment by itself."""
    remember_params(params)
    return scrub(text)


def count_words(text: str) -> int:
    return len(text.split())


# ---- litellm ---------------------------------------------------------------------------------

_litellm: Any = None


def import_litellm() -> Any:
    """Import and configure litellm once: local cost map, quiet logs, no retries of its own; in
    GitHub Actions, no `.env` file: litellm's import loads one (LITELLM_MODE "DEV", its default)
    from the folders above its package, the checkout when the virtualenv lies in it, so a pull
    request's `.env` would set OPENAI_BASE_URL, a proxy or a CA bundle for every call."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        if os.environ.get("GITHUB_ACTIONS"):
            os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm

        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        litellm.telemetry = False
        litellm.num_retries = 0
        # openai embeddings read `max_retries or litellm.DEFAULT_MAX_RETRIES`, so an explicit 0 is lost
        litellm.DEFAULT_MAX_RETRIES = 0
        litellm.turn_off_message_logging = True
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            logging.getLogger(name).setLevel(logging.ERROR)
        _litellm = litellm
    return _litellm


def litellm_provider(model_name: str) -> str | None:
    """The provider litellm routes a bare model name to ("gpt-4o-mini" -> "openai"); None when it cannot tell."""
    try:
        return str(import_litellm().get_llm_provider(model_name)[1])
    except Exception:  # noqa: BLE001  (litellm raises its own BadRequestError for names it does not know)
        return None


@register("")
class LiteLLMProvider:
    """Every model litellm knows (`openai/gpt-4o-mini`, `anthropic/...`, `ollama/...`)."""

    cacheable = True
    offloadable = True  # its calls may run in the client's worker processes (llm/worker_pool.py)

    # A trailing assistant message is continued by some providers (Anthropic) and answered after by
    # others (OpenAI), and litellm does not say which: never pre-fill through litellm.
    supports_prefill = False

    def __init__(self, model: ModelConfig, base_dir: Path):
        self.model = model.name
        self._priced: bool | None = None
        self._supported: list[str] | None = None

    def prepare(self) -> None:
        import_litellm()

    def mark_unpriced(self) -> None:
        """Report no cost for this model's calls, whatever litellm's price map says."""
        self._priced = False

    def _supported_params(self) -> list[str]:
        if self._supported is None:
            try:
                self._supported = list(import_litellm().get_supported_openai_params(model=self.model) or [])
            except Exception:  # noqa: BLE001  (unknown provider: assume no optional param)
                self._supported = []
        return self._supported

    @property
    def supports_n(self) -> bool:
        return "n" in self._supported_params()

    @property
    def supports_stop(self) -> bool:
        """Only where litellm lists `stop` for the model: some (OpenAI's reasoning models) refuse it."""
        return "stop" in self._supported_params()

    async def acomplete(
        self,
        messages: Sequence[Message],
        params: Mapping[str, Any],
        n: int,
        timeout: float,
        *,
        sample: int = 0,
        tag: str = "",
    ) -> RawCompletion:
        litellm = import_litellm()
        kwargs = {**params, "timeout": timeout, "max_retries": 0, "num_retries": 0}
        if n > 1:
            kwargs["n"] = n
        try:
            response = await litellm.acompletion(model=self.model, messages=[dict(m) for m in messages], **kwargs)
        except Exception as error:  # noqa: BLE001  (the one boundary where litellm errors are mapped)
            raise map_litellm_error(error, params) from None
        answers = [(choice_text(choice), getattr(choice, "finish_reason", None))
                   for choice in getattr(response, "choices", None) or []]
        answers = [(text, reason) for text, reason in answers if isinstance(text, str) and text.strip()]
        if not answers:
            raise BadResponse(f"{self.model} returned no completion text")
        usage = getattr(response, "usage", None)
        return RawCompletion(
            texts=[text for text, _ in answers],
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=self._cost(litellm, response),
            finish_reasons=[str(reason) if reason else None for _, reason in answers],
            rate_headers=rate_headers((getattr(response, "_hidden_params", None) or {}).get("additional_headers")),
        )

    async def aembed(self, texts: Sequence[str], params: Mapping[str, Any], timeout: float) -> RawEmbedding:
        """One `litellm.aembedding` call for `texts`; vectors in input order."""
        litellm = import_litellm()
        kwargs = {**params, "timeout": timeout, "max_retries": 0, "num_retries": 0}
        try:
            response = await litellm.aembedding(model=self.model, input=list(texts), **kwargs)
        except Exception as error:  # noqa: BLE001  (the one boundary where litellm errors are mapped)
            raise map_litellm_error(error, params) from None
        items = [item if isinstance(item, dict) else getattr(item, "__dict__", {}) for item in
                 (getattr(response, "data", None) or [])]
        items = sorted(items, key=lambda item: int(item.get("index", 0) or 0))
        vectors = [item.get("embedding") for item in items]
        if len(vectors) != len(texts) or not all(isinstance(v, list) and v for v in vectors):
            raise BadResponse(f"{self.model} returned {len(vectors)} embeddings for {len(texts)} texts")
        usage = getattr(response, "usage", None)
        return RawEmbedding(
            vectors=[[float(x) for x in vector] for vector in vectors],
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            cost=self._cost(litellm, response),
        )

    def _cost(self, litellm: Any, response: Any) -> float | None:
        if self._priced is False:
            return None
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if cost is None:
            try:
                cost = litellm.completion_cost(completion_response=response, model=self.model)
            except Exception:  # noqa: BLE001  (litellm raises several types for an unpriced model)
                cost = None
        self._priced = cost is not None
        return float(cost) if cost is not None else None


def choice_text(choice: Any) -> str | None:
    """A choice's text; a reply that only calls tools is its `tool_calls` as JSON (OpenAI's shape,
    as promptfoo shows it), so `is-valid-openai-tools-call` can grade it and the cache can keep it."""
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    if isinstance(content, str) and content.strip():
        return content
    calls = getattr(message, "tool_calls", None) or []
    shaped = []
    for call in calls:
        function = getattr(call, "function", None)
        shaped.append({"id": getattr(call, "id", None), "type": getattr(call, "type", None) or "function",
                       "function": {"name": getattr(function, "name", None),
                                    "arguments": getattr(function, "arguments", None)}})
    return json.dumps(shaped, ensure_ascii=False) if shaped else content


def map_litellm_error(error: BaseException, params: Mapping[str, Any]) -> ProviderError:
    """Translate a litellm/openai exception into our ProviderError tree (secrets redacted)."""
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    message = redact(_short_message(error), params)
    kind = type(error).__name__
    if kind in ("Timeout", "APITimeoutError") or isinstance(error, TimeoutError):
        return ProviderTimeout(f"timed out: {message}", status=None)
    if status == 429 or kind == "RateLimitError":
        return RateLimited(f"rate limited (429): {message}", retry_after=retry_after_seconds(error),
                           headers=rate_headers(getattr(error, "litellm_response_headers", None)
                                                or getattr(getattr(error, "response", None), "headers", None)))
    if status in (401, 403) or kind in ("AuthenticationError", "PermissionDeniedError"):
        return AuthError(f"authentication failed ({status}): {message}", status=status)
    if _caused_by_json_error(error) or kind in ("APIResponseValidationError", "JSONSchemaValidationError"):
        return BadResponse(f"malformed response: {message}", status=None)
    if status is not None and status >= 500:
        return ServerError(f"server error ({status}): {message}", status=status)
    if kind == "APIConnectionError":
        return ServerError(f"connection failed: {message}", status=None)
    if status == 408:
        return ProviderTimeout(f"timed out (408): {message}", status=status)
    if status is not None:
        return ProviderError(f"request refused ({status}): {message}", status=status)
    return ProviderError(f"{kind}: {message}", status=None)


def _short_message(error: BaseException, limit: int = 400) -> str:
    text = str(getattr(error, "message", None) or error)
    # litellm prefixes "litellm.RateLimitError: RateLimitError: OpenAIException - "; keep the tail
    head, sep, tail = text.rpartition("Exception - ")
    if sep and "litellm." in head:
        text = tail
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _caused_by_json_error(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, json.JSONDecodeError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def retry_after_seconds(error: BaseException) -> float | None:
    """Seconds from the Retry-After (or retry-after-ms) header of a failed response, if any."""
    for source in (getattr(error, "litellm_response_headers", None), getattr(getattr(error, "response", None), "headers", None),
                   getattr(error, "headers", None)):
        seconds = read_signals(rate_headers(source)).retry_after
        if seconds is not None:
            return seconds
    return None
