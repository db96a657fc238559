"""Embeddings: `client.embed(model, texts)` returns one vector per text (sync, on the client's loop).

Each distinct text is looked up in the cache under `embedding_key`; the rest go out in batches of
`EMBED_BATCH` texts, one provider call each, retried like completions and counted in `usage`.
Unlike `complete`, a failure after retries is raised (a `ProviderError`), as is a provider that
cannot embed (`replay/`, `local/`) or a cache-only model whose vectors are not cached.

`EmbeddingMixin` is mixed into `LLMClient` (`client.py`) and uses what completions use: its lock,
provider table, cache lookup and loop (`_lock`, `_provider`, `_lookup`, `_run`, `skip_reason`),
and one provider call with its retries and accounting (`_retry`, i.e. `retries.retry`; `_gated`, the
rate-limit gate around `_call`; `_account`).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

from gpo_action.errors import ProviderError
from gpo_action.llm.cache import embedding_key
from gpo_action.llm.providers import Provider, RawEmbedding, provider_prefix, redact
from gpo_action.llm.ratelimits import CHARS_PER_TOKEN
from gpo_action.llm.types import BUDGET_EXHAUSTED, LLMResponse, ModelConfig, canonical_json, split_usage

if TYPE_CHECKING:
    from gpo_action.llm.retries import CallLimit

# Texts per embedding call.
EMBED_BATCH = 64


class EmbeddingMixin:
    """`embed`, for `LLMClient` (see the module doc for what it uses of the client)."""

    def embed(self, model: ModelConfig, texts: Sequence[str], *, limit: CallLimit | None = None) -> list[list[float]]:
        """One embedding vector per text, in order; see the module doc. Raises ProviderError, also
        when `limit` has no call left for a batch (cache hits cost nothing)."""
        with self._lock:
            provider = self._provider(model)
            keys = [embedding_key(model, text) for text in texts]
            firsts = {key: text for key, text in zip(keys, texts)}
            found: dict[str, list[float]] = {}
            if provider.cacheable:
                for key, response in self._lookup(list(firsts)).items():
                    try:
                        found[key] = [float(x) for x in json.loads(response.text or "")]
                    except (ValueError, TypeError):
                        continue  # not a vector: embed it again
                self.usage.cache_hits += len(found)
            missing = [key for key in firsts if key not in found]
            if missing:
                if getattr(provider, "aembed", None) is None:
                    raise ProviderError(f"embeddings not supported by {provider_prefix(model.name)!r} models ({model.name})")
                reason = self.skip_reason(model)
                if reason is not None:
                    raise ProviderError(f"skipped: {reason}; the response cache has no embedding for {len(missing)} texts")
                prepare = getattr(provider, "prepare", None)
                if prepare is not None:
                    prepare()
                chunks = [missing[i:i + EMBED_BATCH] for i in range(0, len(missing), EMBED_BATCH)]
                params = dict(model.params)
                for chunk, raw in zip(chunks, self._run(self._embed_all(model, provider, params,
                                                                        [[firsts[k] for k in c] for c in chunks], limit))):
                    shares = split_usage(raw.prompt_tokens, 0, raw.cost or 0.0, len(chunk))
                    for key, vector, (tokens, _, cost) in zip(chunk, raw.vectors, shares):
                        found[key] = vector
                        if provider.cacheable and self.cache is not None:
                            self.cache.put(key, LLMResponse(text=canonical_json(vector), prompt_tokens=tokens, cost=cost))
            return [found[key] for key in keys]

    async def _embed_all(self, model: ModelConfig, provider: Provider, params: dict[str, Any],
                         chunks: list[list[str]], limit: CallLimit | None = None) -> list[RawEmbedding]:
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def one(texts: list[str]) -> RawEmbedding:
            async with gate:
                return await self._embed_chunk(model, provider, params, texts, limit)

        return list(await asyncio.gather(*(one(texts) for texts in chunks)))

    async def _embed_chunk(self, model: ModelConfig, provider: Provider, params: dict[str, Any],
                           texts: list[str], limit: CallLimit | None = None) -> RawEmbedding:
        """One batch of texts, retrying retryable errors; the last error is raised after retries."""
        got: list[RawEmbedding] = []
        gate = self.gates.gate(model, params, os.environ if self.env is None else self.env)
        tokens = sum(len(text) for text in texts) / CHARS_PER_TOKEN  # (an embedding writes nothing)

        async def step() -> bool:
            raw = await self._gated(gate, tokens, lambda: provider.aembed(texts, params, self.timeout))  # type: ignore[attr-defined]
            got.append(replace(raw, cost=self._account(model.name, raw.prompt_tokens, 0, raw.cost)))
            return True

        tries = await self._retry(limit, step)
        if got:
            return got[0]
        if tries.exhausted:
            raise ProviderError(f"{BUDGET_EXHAUSTED}: no call left for an embedding batch")
        error, attempts = tries.error, tries.attempts
        self.usage.errors += 1
        error.message = redact(f"embedding failed: {error.message} (after {attempts} "
                               f"attempt{'s' * (attempts != 1)})", params)
        error.args = (error.message,)
        raise error
